"""§6.4 (F5-SLT): k-gon critical points, dynamical transitions and learning coefficients (Chen et al. 2023).

In the high-sparsity limit (one feature active, value U[0, 1]) the population loss of ReLU(WᵀWx + b) with two
hidden dimensions has the regular k-gons as critical points. Training trajectories on one-hot data plateau near
their losses and jump to lower-loss, higher-k ones; the local learning coefficient orders them as the theory does;
and the Bayesian posterior moves from low-λ to low-loss k-gons as the number of samples n grows.
Every loss of trained weights below is their exact population loss `theory.one_hot_loss`, from the saved weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from tmslab import theory
from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, figure, superseded

SRC = "§6.4, F5-SLT"
NEEDS_FULL = "needs full fidelity"

#: λ published for c = 6 (Chen et al. 2023, Table A.1, as transcribed in public third-party code: the paper's
#: own table could not be read for this work). Our Hessian-rank derivation (theory.critical_points) agrees.
PAPER_LLC_C6 = {"5-gon": 7.0, "5⁺-gon": 8.5, "6-gon": 8.5}

# LLC estimation settings (full fidelity). SGLD samples the exact population loss, whose learning coefficient
# the theory predicts. nβ sets how finely the posterior resolves the loss: the smallest Hessian eigenvalue at
# these points is ≈ 0.02, so nβ = 1e5 with localisation γ = 100 leaves a localisation bias of ≲ 2%
# (slt.laplace_llc, recorded per point); γ = 100 keeps the chains' spread 1/√γ = 0.1 inside the flat dead-feature
# directions, whose bias we set to −1/2 (every b ≤ 0 is the same critical set with the same λ; at −1/(2c) the
# chains cross b = 0 and slide towards the lower-loss k⁺ point). Steps: ε·nβ·h_max must stay well below 1.
LLC_NBETA = 1e5
LLC_LOCALIZATION = 100.0
LLC_LRS = [1e-6, 2e-6]
LLC_CHAINS = {"chains": 4, "draws": 600, "burnin": 300}
DEAD_BIAS = -0.5

# The Bayesian transition (Chen et al. §5): posteriors p_n(w) ∝ φ(w)·exp(−n·L(w)) at c = 6 for n on a geometric
# ladder, sampled by replica exchange over n (slt.replica_exchange) on the exact population loss L — the function
# whose free energy n·L(w*) + λ·log n the prediction uses (the paper samples on n data points; see notes). Prior
# φ = N(0, 1) on each of the 18 parameters (the paper's is not recorded in the spec). Each draw is assigned to the
# critical point its basin leads to (Adam descent, nearest critical loss within 2%; else "other").
BAYES_NS = torch.logspace(1, math.log10(3000), 24, dtype=torch.float64)
BAYES_RUN = {"ladders": 8, "steps": 4000, "burnin": 2000, "thin": 80, "prior_std": 1.0}
BAYES_SEED = 0
#: The paper's predicted 5-gon → 6-gon crossing at c = 6 (its MCMC saw the switch between n = 600 and 700).
PAPER_N_CR = 601

#: Seeds of the first best-of-k setting (kept as a row at c = 6) and of c = 5.
FIRST_SEEDS = 8
#: Seeds at c = 6. Measured basins of this recipe (seed 3, 64 seeds, 20,000 steps): 59 end at the 5⁺-gon, 3 at the
#: 6-gon, 2 at the 4⁺⁺-gon — the lowest point's basin is ≈ 5%, so best-of-8 finds it with probability ≈ 0.32 and
#: best-of-256 misses it with probability ≈ 0.953^256 ≈ 5·10⁻⁶ (c = 5: 45 of 64 reach the 5-gon; 8 suffice).
SEEDS_C6 = 256


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


def nearest_indices(losses: Tensor, points: list[theory.CriticalPoint]) -> tuple[Tensor, Tensor]:
    """For every loss in `losses` (any shape): the index of the critical point with the nearest loss (the first
    on a tie), and the relative gap |loss − L_p| / L_p."""
    crit = torch.tensor([p.loss for p in points], dtype=torch.float64)
    losses = losses.double()
    idx = (losses[..., None] - crit).abs().argmin(-1)
    return idx, (losses - crit[idx]).abs() / crit[idx].clamp(min=1e-12)


def nearest(loss: float, points: list[theory.CriticalPoint]) -> tuple[theory.CriticalPoint, float]:
    """The critical point with the loss nearest to `loss`, and the relative gap."""
    idx, gap = nearest_indices(torch.tensor(loss), points)
    return points[int(idx)], float(gap)


def crossing(ns: Tensor, lead: Tensor) -> float:
    """The n where `lead` (one value per n) first turns positive and stays so, interpolated linearly in log n;
    nan when it never does or is positive from the start."""
    pos = (lead > 0).tolist()
    for r in range(1, len(pos)):
        if all(pos[r:]) and not pos[r - 1]:
            a, b = float(lead[r - 1]), float(lead[r])
            u = a / (a - b)
            return float(torch.exp(torch.log(ns[r - 1]) + u * (torch.log(ns[r]) - torch.log(ns[r - 1]))))
    return float("nan")


def free_energy_crossing(delta_loss: float, delta_llc: float) -> float:
    """The n > e where n·ΔL = Δλ·log n (free energies n·L + λ·log n equal), by bisection on log n."""
    lo, hi = 1.0, 30.0  # log n
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.exp(mid) * delta_loss < delta_llc * mid else (lo, mid)
    return math.exp(lo)


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
        "Training: one-hot data, uniform importance, notebook recipe (AdamW 1e-3, batch 1024, 20,000 steps), weights "
        "recorded along training; trajectories are scored with the exact population loss. Best-of-k: 8 seeds at "
        "c = 5; 256 at c = 6, because the 6-gon's basin under this recipe is small (64 seeds: 59 end at the "
        "5⁺-gon, 3 at the 6-gon, 2 at the 4⁺⁺-gon; best-of-8 finds it with probability ≈ 0.32) — the best-of-8 row "
        "is kept, superseded, and tables.basins counts where every seed ends. LLC: devinterp 1.3.x SGLD on the "
        "exact population loss (the function whose λ the theory gives), nβ = 1e5, localisation 100, step size "
        "chosen by a sweep whose loss traces are saved (tables.calibration); dead features at bias −1/2; each "
        "estimate is recorded beside its Laplace prediction Σ ½·nβh/(nβh + γ) from the exact Hessian (the "
        "localisation bias). On n = 5,000 samples with nβ = n/log n and γ = 100 the estimates fall where the "
        "Laplace prediction puts them (5-gon 4.5 vs 4.3, 5⁺-gon 5.4 vs 5.3, 6-gon ≈ 5 vs 4.9): the earlier low "
        "readings were localisation bias, not a loss-scale error. "
        "Bayesian transition: posteriors p_n ∝ N(0, 1)·exp(−n·L) of the exact population loss L at c = 6, for 24 "
        "n from 10 to 3,000, sampled by replica exchange over n (MALA within each n; exchanges carry the small-n "
        "posteriors' basin crossings up to large n); each draw is assigned to the critical point its basin leads "
        "to, and n_cr is where the 6-gon's share first overtakes the 5-gon's for good. The paper samples on n "
        "data points and its prior is not in the spec; the population loss removes data noise, which is what its "
        "prediction n·ΔL = Δλ·log n assumes. The prior matters at these n: the same sampler with prior N(0, 3²) "
        "(BAYES_RUN['prior_std'] = 3) puts the crossing near n ≈ 870, with the ladders mixing poorly there (the "
        "6-gon's lead varies by 0.7 between ladders) — the O(1) terms of the free energy (the prior's density at "
        "each k-gon) shift n_cr by hundreds."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        if not quick:
            from tmslab.slt import require_devinterp

            require_devinterp()  # before any training: the full run estimates LLCs
        base = dict(n_hidden=2, density=[1.0], distribution="one-hot", seed=3)
        steps, every, seeds = (600, 20, 2) if quick else (20_000, 50, FIRST_SEEDS)
        ev = 10_000 if quick else 100_000
        return {
            "c6": TrainConfig(n_features=6, restarts=2 if quick else SEEDS_C6, steps=steps, record_every=every,
                              eval_samples=ev, **base),
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
        # Best-of-k training ends at the lowest critical loss; where each seed ends (the basins) is recorded.
        basins: dict[str, dict[str, int]] = {}
        for c in (5, 6):
            run = ctx.runs[f"c{c}"]
            final = exact_losses(run.W, run.b)
            lowest = table[c][0]
            ends = [nearest(float(v), table[c])[0].label for v in final]
            basins[str(c)] = {lab: ends.count(lab) for lab in dict.fromkeys(ends)}
            for k in sorted({len(final), min(FIRST_SEEDS, len(final))}, reverse=True):
                best = float(final[:k].min())
                rel = best / lowest.loss - 1
                name = f"best-of-{k} final loss at c = {c} vs lowest L(k, c) ({lowest.label})"
                if ctx.quick:
                    check = Check(name, round(best, 5), "within 1%", False, SRC, kind="claim",
                                  status="not evaluated", reason=NEEDS_FULL)
                else:
                    check = Check(name, round(rel, 4), "relative gap ≤ 0.01", abs(rel) <= 0.01, SRC,
                                  f"exact loss {best:.5f} vs {lowest.loss:.5f}; ends of all {len(final)} seeds: "
                                  f"{basins[str(c)]}", kind="claim")
                    if k < len(final):  # the first setting, kept visible (issue 12): its seeds are the first k
                        check = superseded(check, f"the first setting (best-of-{k}); the {lowest.label}'s basin "
                                                  f"is small here ({basins[str(c)].get(lowest.label, 0)} of "
                                                  f"{len(final)} seeds end there), so {len(final)} seeds are used")
                checks.append(check)
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
            "basins": basins,
        }
        checks += self._llc(ctx, table, tables)
        checks.append(self._bayes(ctx, table[6], tables))
        figs = [self._levels_figure(table), self._trajectory_figure(steps, traj, table[6])]
        if "bayesian" in tables:
            figs.append(self._bayes_figure(tables["bayesian"]))
        return Analysis(checks, figs, tables)

    def _llc(self, ctx: Context, table: dict[int, list[theory.CriticalPoint]], tables: dict[str, Any]) -> list[Check]:
        name = "LLC estimates (devinterp SGLD) of the 5-, 5⁺- and 6-gon at c = 6 vs the paper's 7, 8.5, 8.5"
        name_c = "LLC estimates of the c-gon, c = 5 … 8, vs the derived λ = (3c − zero modes)/2"
        if ctx.quick:
            return [Check(n, "—", "each within 20%, ordered", False, SRC, kind="claim", status="not evaluated",
                          reason=NEEDS_FULL) for n in (name, name_c)]
        from tmslab import slt

        def point(c: int, label: str) -> tuple[theory.CriticalPoint, Tensor, Tensor]:
            p = next(q for q in table[c] if q.label == label)
            W, b = theory.kgon_weights(p.k, c, p.length, p.bias, p.plus, dead_bias=DEAD_BIAS)
            return p, W[0], b[0]

        _, W6, b6 = point(6, "6-gon")
        chosen, sweep = slt.calibrate(W6, b6, None, LLC_LRS, [LLC_LOCALIZATION], nbeta=LLC_NBETA, **LLC_CHAINS)
        tables["calibration"] = [{"lr": r.lr, "localization": r.localization, "nbeta": r.nbeta, "llc": r.llc,
                                  "plateaued": r.plateaued(), "loss_trace": r.loss_trace.mean(0).tolist()}
                                 for r in sweep]
        est: dict[str, dict[str, Any]] = {}
        points = [(6, lab) for lab in PAPER_LLC_C6] + [(c, f"{c}-gon") for c in (4, 5, 7, 8)]  # 6-gon: above
        for c, label in points:
            p, W, b = point(c, label)
            e = slt.estimate_llc(W, b, None, chosen.lr, chosen.localization, nbeta=LLC_NBETA, **LLC_CHAINS)
            laplace = slt.laplace_llc(theory.hessian_modes(W, b)[2], LLC_NBETA, chosen.localization)
            est[f"{label} (c = {c})"] = {"llc": e.llc, "std": e.llc_std, "derived": p.llc, "laplace": laplace,
                                         "paper": PAPER_LLC_C6.get(label) if c == 6 else None,
                                         "plateaued": e.plateaued(), "loss_trace": e.loss_trace.mean(0).tolist()}
        tables["llc"] = est
        six = [est[f"{lab} (c = 6)"] for lab in PAPER_LLC_C6]
        rel6 = [abs(r["llc"] / r["paper"] - 1) for r in six]
        ordered6 = six[0]["llc"] < min(six[1]["llc"], six[2]["llc"])  # 5-gon below 5⁺-gon and 6-gon (7 < 8.5)
        cg = [est[f"{c}-gon (c = {c})"] for c in range(5, 9)]
        relc = [abs(r["llc"] / r["derived"] - 1) for r in cg]
        orderedc = all(cg[i]["llc"] < cg[i + 1]["llc"] for i in range(len(cg) - 1))
        how = (f"devinterp SGLD on the exact population loss, nβ = {LLC_NBETA:g}, localisation "
               f"{chosen.localization:g}, step {chosen.lr:g} (calibrated), {LLC_CHAINS['chains']} chains × "
               f"{LLC_CHAINS['draws']} draws")
        return [
            Check(name, [round(r["llc"], 2) for r in six], "each within 20%, 5-gon below the other two",
                  max(rel6) <= 0.2 and ordered6, SRC, how, kind="claim"),
            Check(name_c, [round(r["llc"], 2) for r in cg], f"within 20% of {[r['derived'] for r in cg]}, increasing",
                  max(relc) <= 0.2 and orderedc, SRC, how + "; no published λ found for these", kind="claim"),
        ]

    def _bayes(self, ctx: Context, points: list[theory.CriticalPoint], tables: dict[str, Any]) -> Check:
        name = f"Bayesian transition 5-gon → 6-gon near n ≈ {PAPER_N_CR} (c = 6)"
        if ctx.quick:
            return Check(name, "—", "n_cr within 20%", False, SRC, kind="claim", status="not evaluated",
                         reason=NEEDS_FULL)
        from tmslab import slt

        c = 6

        def loss(theta: Tensor) -> Tensor:  # the 3c parameters of a draw, flattened: W [2, c] then b [c]
            return exact_losses(theta[:, : 2 * c].view(-1, 2, c), theta[:, 2 * c :])

        post = slt.replica_exchange(loss, 3 * c, BAYES_NS, seed=BAYES_SEED, **BAYES_RUN)
        ends = loss(slt.descend(loss, post.theta.reshape(-1, 3 * c))).view(post.theta.shape[:3])
        label, gap = nearest_indices(ends, points)  # [draws, ladders, rungs]
        label = torch.where(gap <= 0.02, label, -1)
        fraction = {p.label: (label == i).double().mean((0, 1)) for i, p in enumerate(points)}
        fraction["other"] = (label == -1).double().mean((0, 1))
        i6, i5 = (next(i for i, p in enumerate(points) if p.label == lab) for lab in ("6-gon", "5-gon"))
        lead = ((label == i6).double() - (label == i5).double()).mean(0)  # [ladders, rungs]: 6-gon's lead
        n_cr = crossing(BAYES_NS, lead.mean(0))
        g = torch.Generator().manual_seed(BAYES_SEED)
        boot = [crossing(BAYES_NS, lead[torch.randint(len(lead), (len(lead),), generator=g)].mean(0))
                for _ in range(200)]  # fmt: skip
        lo, hi = (float(torch.tensor(boot).nanquantile(q)) for q in (0.16, 0.84))
        found = math.isfinite(n_cr)
        p5, p6 = points[i5], points[i6]
        predicted = free_energy_crossing(p5.loss - p6.loss, PAPER_LLC_C6["6-gon"] - PAPER_LLC_C6["5-gon"])
        tables["bayesian"] = {
            "n": BAYES_NS.tolist(), "fractions": {k: v.tolist() for k, v in fraction.items()},
            "six_minus_five_per_ladder": lead.tolist(), "n_cr": n_cr if found else None,
            "n_cr_68": [x if math.isfinite(x) else None for x in (lo, hi)],
            "predicted_n_cr": predicted, "accept": post.accept, "swap_rate": post.swap_rate.tolist(),
            "settings": {**BAYES_RUN, "seed": BAYES_SEED},
        }  # fmt: skip
        how = (f"replica exchange over {len(BAYES_NS)} n from 10 to 3,000 on the exact population loss, prior "
               f"N(0, {BAYES_RUN['prior_std']:g}²), "
               f"{BAYES_RUN['ladders']} ladders × {BAYES_RUN['steps']:,} MALA steps (acceptance {post.accept:.2f}, "
               f"exchanges ≥ {float(post.swap_rate.min()):.2f}); draws labelled by the critical point their basin "
               f"leads to; 68% bootstrap over ladders [{lo:.0f}, {hi:.0f}]; n·ΔL = Δλ·log n with our L and the "
               f"paper's λ predicts {predicted:.0f}; the paper's MCMC on data saw the switch between 600 and 700")
        return Check(name, round(n_cr) if found else "no crossing", f"within 20% of {PAPER_N_CR}",
                     found and abs(n_cr / PAPER_N_CR - 1) <= 0.2, SRC, how,
                     kind="claim")

    def _bayes_figure(self, bayes: dict[str, Any]) -> Any:
        shown = {k: torch.tensor(v) for k, v in bayes["fractions"].items() if max(v) >= 0.05}
        marks = {"paper's n_cr": PAPER_N_CR, "n·ΔL = Δλ·log n": bayes["predicted_n_cr"]}
        if bayes["n_cr"] is not None:
            marks["measured"] = bayes["n_cr"]
        return figure("bayesian", "lines", torch.tensor(bayes["n"]), shown, xlabel="samples n", log_x=True,
                      ylabel="posterior fraction", vlines=marks,
                      caption="Fraction of posterior draws (c = 6) in each critical point's basin as n grows: the "
                              "posterior moves to lower-loss, higher-λ k-gons (Chen et al. §5).")

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
        final = traj[-1]
        shown = list(range(min(FIRST_SEEDS, traj.shape[1])))
        shown += [s for s in final.argsort()[:2].tolist() if s not in shown]  # the lowest ends, too
        series = {f"seed {s}": traj[:, s] for s in shown}
        return figure("trajectories", "lines", steps[1:], {k: v[1:] for k, v in series.items()}, xlabel="step",
                      ylabel="exact one-hot loss", log_x=True, log_y=True, markers=False,
                      hlines={p.label: p.loss for p in points},
                      caption="Exact population loss along training on one-hot data (c = 6) for the first "
                              f"{min(FIRST_SEEDS, traj.shape[1])} seeds and the two that end lowest (of "
                              f"{traj.shape[1]}), with the critical points' loss levels.")
