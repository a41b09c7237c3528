"""§6.4 (F5-SLT): k-gon critical points, dynamical transitions and learning coefficients (Chen et al. 2023).

In the high-sparsity limit (one feature active, value U[0, 1]) the population loss of ReLU(WᵀWx + b) with two
hidden dimensions has the regular k-gons as critical points. Training trajectories on one-hot data plateau near
their losses and jump to lower-loss, higher-k ones; the local learning coefficient orders them as the theory does.
Every loss below is the exact population loss `theory.one_hot_loss` of saved weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tmslab import theory
from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, figure

SRC = "§6.4, F5-SLT"
NEEDS_FULL = "needs full fidelity"

#: λ published for c = 6 (Chen et al. 2023, Table A.1, as transcribed in public third-party code: the paper's
#: own table could not be read for this work). Our Hessian-rank derivation (theory.critical_points) agrees.
PAPER_LLC_C6 = {"5-gon": 7.0, "5⁺-gon": 8.5, "6-gon": 8.5}


def plateaus(steps: Tensor, loss: Tensor, min_span: float = 0.05, rel_change: float = 0.01) -> list[dict[str, Any]]:
    """Plateaus of a loss trajectory: maximal runs of records, spanning ≥ `min_span` of training, over which the
    loss stays within `rel_change` (relative) of the run's median. Returns {start, end, loss} per plateau."""
    loss = loss.double()
    span = float(steps[-1] - steps[0])
    out, i, T = [], 0, len(loss)
    while i < T:
        j = i
        while j + 1 < T and abs(float(loss[j + 1] - loss[i])) <= rel_change * float(loss[i]):
            j += 1
        if float(steps[j] - steps[i]) >= min_span * span:
            out.append({"start": int(steps[i]), "end": int(steps[j]), "loss": float(loss[i : j + 1].median())})
        i = j + 1
    return out


def nearest(loss: float, points: list[theory.CriticalPoint]) -> tuple[theory.CriticalPoint, float]:
    """The critical point with the loss nearest to `loss`, and the relative gap."""
    p = min(points, key=lambda q: abs(q.loss - loss))
    return p, abs(loss - p.loss) / max(p.loss, 1e-12)


def exact_losses(W: Tensor, b: Tensor) -> Tensor:
    """theory.one_hot_loss over any leading dims of W [..., 2, c], b [..., c]."""
    return theory.one_hot_loss(W.double(), b.double())


@register
class SLT(Experiment):
    name = "slt"
    title = "Singular learning theory on TMS: k-gon critical points, transitions and learning coefficients"
    claim = (
        "In the one-hot limit the regular k-gons are critical points with closed-form loss; SGD/Adam trajectories "
        "plateau near them and jump to lower-loss, higher-k ones; their local learning coefficients order them."
    )
    spec_ref = "§6.4, F5-SLT"
    notes = (
        "Table: tmslab.theory.critical_points (multi-start Newton on h_k; λ = (3c − zero modes)/2 for minimally "
        "singular minima off every ReLU kink, else —). Published λ for c = 6 (5-gon 7, 5⁺-gon 8.5, 6-gon 8.5) come "
        "from a third-party transcription of the paper's Table A.1; no published λ was found for other c. "
        "Training: one-hot data, uniform importance, notebook recipe (AdamW 1e-3, batch 1024), weights recorded "
        "along training; trajectories are scored with the exact population loss. LLC: devinterp 1.3.x SGLD, "
        "full batch on n one-hot samples, nβ = n/log n, step size and localisation chosen by a sweep whose loss "
        "traces are saved (tables.calibration). The Bayesian transition (posterior fractions vs n) is not done."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        if not quick:
            from tmslab.slt import require_devinterp

            require_devinterp()  # before any training: the full run estimates LLCs
        base = dict(n_hidden=2, density=[1.0], distribution="one-hot", seed=3)
        steps, every, seeds = (600, 20, 2) if quick else (20_000, 50, 8)
        ev = 10_000 if quick else 100_000
        return {
            "c6": TrainConfig(n_features=6, restarts=seeds, steps=steps, record_every=every, eval_samples=ev, **base),
            "c5": TrainConfig(n_features=5, restarts=seeds, steps=steps, eval_samples=ev, **base),
        }

    def analyze(self, ctx: Context) -> Analysis:
        table = {c: theory.critical_points(c) for c in range(4, 9)}
        checks: list[Check] = []
        p5 = [p for p in table[5] if p.k == 5][0]
        p6 = [p for p in table[6] if p.k == 6 and p.plus == 0][0]
        checks.append(Check("L(5, 5) and L(6, 6) of the solved k-gons", [round(p5.loss, 5), round(p6.loss, 5)],
                            "[0.01583, 0.04819] to 4 decimals", round(p5.loss, 4) == 0.0158 and
                            round(p6.loss, 4) == 0.0482, SRC, "published values (see notes)", kind="sanity"))
        # Best-of-k training ends at the lowest critical loss.
        for c in (5, 6):
            run = ctx.runs[f"c{c}"]
            final = exact_losses(run.W, run.b)
            lowest = table[c][0]
            rel = float(final.min()) / lowest.loss - 1
            if ctx.quick:
                checks.append(Check(f"best-of-{len(final)} final loss at c = {c} vs lowest L(k, c) ({lowest.label})",
                                    round(float(final.min()), 5), "within 1%", False, SRC, kind="claim",
                                    status="not evaluated", reason=NEEDS_FULL))
            else:
                checks.append(Check(f"best-of-{len(final)} final loss at c = {c} vs lowest L(k, c) ({lowest.label})",
                                    round(rel, 4), "relative gap ≤ 0.01", abs(rel) <= 0.01, SRC,
                                    f"exact loss {float(final.min()):.5f} vs {lowest.loss:.5f}", kind="claim"))
        # Trajectories at c = 6: plateaus and their nearest critical points.
        run = ctx.runs["c6"]
        h = run.history
        steps = h["step"]
        traj = exact_losses(h["W"], h["b"])  # [records, seeds]
        found = []
        for s in range(traj.shape[1]):
            for p in plateaus(steps, traj[:, s]):
                q, gap = nearest(p["loss"], table[6])
                found.append({**p, "seed": s, "nearest": q.label, "critical_loss": q.loss, "gap": gap})
        worst = max((f["gap"] for f in found), default=float("nan"))
        if ctx.quick:
            checks.append(Check("every plateau's loss vs its nearest critical point", len(found), "gap ≤ 2%", False,
                                SRC, kind="claim", status="not evaluated", reason=NEEDS_FULL))
        else:
            checks.append(Check("every plateau's loss vs its nearest critical point (c = 6)", round(worst, 4),
                                "largest relative gap ≤ 0.02", bool(found) and worst <= 0.02, SRC,
                                f"{len(found)} plateaus over {traj.shape[1]} seeds", kind="claim"))
        tables: dict[str, Any] = {
            "critical_points": {str(c): [p.to_dict() for p in pts] for c, pts in table.items()},
            "plateaus": found,
        }
        checks += self._llc(ctx, table, tables)
        checks.append(Check("Bayesian transition 5-gon → 6-gon near n ≈ 601 (c = 6)", "—", "n_cr within 20%", False,
                            SRC, kind="claim", status="not evaluated", reason="stretch goal not implemented"))
        figs = [self._levels_figure(table), self._trajectory_figure(steps, traj, table[6])]
        return Analysis(checks, figs, tables)

    def _llc(self, ctx: Context, table: dict[int, list[theory.CriticalPoint]], tables: dict[str, Any]) -> list[Check]:
        name = "LLC estimates (devinterp SGLD) of the 5-gon and 6-gon at c = 6 vs the paper's 7 and 8.5"
        if ctx.quick:
            return [Check(name, "—", "each within 20%, ordered", False, SRC, kind="claim", status="not evaluated",
                          reason=NEEDS_FULL)]
        from tmslab import slt

        x = slt.one_hot_data(5000, 6, seed=0)
        pts = {p.label: p for p in table[6] if p.label in PAPER_LLC_C6}
        W6, b6 = pts["6-gon"].weights()
        chosen, sweep = slt.calibrate(W6[0], b6[0], x, [3e-5, 1e-4, 3e-4], [10.0, 100.0], chains=2, draws=300,
                                      burnin=100)
        tables["calibration"] = [{"lr": r.lr, "localization": r.localization, "llc": r.llc,
                                  "plateaued": r.plateaued(), "loss_trace": r.loss_trace.mean(0).tolist()}
                                 for r in sweep]
        est = {}
        for label, p in pts.items():
            W, b = p.weights()
            e = slt.estimate_llc(W[0], b[0], x, chosen.lr, chosen.localization, chains=4, draws=400, burnin=200)
            est[label] = {"llc": e.llc, "std": e.llc_std, "paper": PAPER_LLC_C6[label], "derived": p.llc}
        for c in range(5, 9):  # the c-gon at c (no published λ found: compared with the derived value)
            p = [q for q in table[c] if q.k == c][0]
            W, b = p.weights()
            xc = slt.one_hot_data(5000, c, seed=0)
            e = slt.estimate_llc(W[0], b[0], xc, chosen.lr, chosen.localization, chains=4, draws=400, burnin=200)
            est[f"{c}-gon (c = {c})"] = {"llc": e.llc, "std": e.llc_std, "paper": None, "derived": p.llc}
        tables["llc"] = est
        rel = [abs(est[k]["llc"] / PAPER_LLC_C6[k] - 1) for k in ("5-gon", "6-gon")]
        ordered = est["5-gon"]["llc"] < est["6-gon"]["llc"]
        return [
            Check(name, [round(est[k]["llc"], 2) for k in ("5-gon", "6-gon")], "each within 20%, 5-gon < 6-gon",
                  max(rel) <= 0.2 and ordered, SRC, f"SGLD lr {chosen.lr:g}, localisation {chosen.localization:g}",
                  kind="claim"),
        ]

    def _levels_figure(self, table: dict[int, list[theory.CriticalPoint]]) -> Any:
        cs = list(table)
        series = {}
        for k in range(4, 9):
            for plus in range(0, 2):
                ys = [next((p.loss for p in table[c] if p.k == k and p.plus == plus and p.solution == 0),
                           float("nan")) for c in cs]
                series[f"{k}{'⁺' * plus}-gon"] = torch.tensor(ys)
        return figure("levels", "lines", torch.tensor(cs, dtype=torch.float64), series, xlabel="features c",
                      ylabel="L(k, c)", caption="Loss levels L(k, c) of the k-gon critical points (and k⁺ with one "
                      "positive-bias dead feature) for c = 4 … 8, from the closed form.")

    def _trajectory_figure(self, steps: Tensor, traj: Tensor, points: list[theory.CriticalPoint]) -> Any:
        series = {f"seed {s}": traj[:, s] for s in range(traj.shape[1])}
        return figure("trajectories", "lines", steps[1:], {k: v[1:] for k, v in series.items()}, xlabel="step",
                      ylabel="exact one-hot loss", log_x=True, log_y=True, markers=False,
                      hlines={p.label: p.loss for p in points},
                      caption="Exact population loss along training on one-hot data (c = 6) for each seed, with the "
                              "critical points' loss levels.")
