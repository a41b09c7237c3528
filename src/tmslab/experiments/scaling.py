"""§6.5 (F6-scaling): superposition yields robust neural scaling (Liu, Liu & Gore, NeurIPS 2025).

The ReLU-output model trained on power-law feature frequencies p_i ∝ i^−(1+α) (one active feature per sample on
average, values U(0, 2)) with a *signed* weight decay γ on W: γ = +1 (decay) keeps the model in weak
superposition — it represents about the m most frequent features and its loss is the expected loss of the
activated-but-unrepresented ones, ∝ m^−α — while γ = −1 (weight growth) forces strong superposition: nearly
every feature represented, squared overlaps between their directions ∝ 1/m, and loss ∝ 1/m whatever α.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tmslab import metrics
from tmslab.config import Device, TrainConfig, density_law
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, figure

SRC = "§6.5, F6-scaling"
ALPHAS = (0.5, 1.0)
#: The authors' exp-10 grid: m = ⌊exp(linspace(ln 10, ln 100, 6))⌋.
HIDDEN = (10, 15, 25, 39, 63, 100)
GAMMAS = (-1.0, 1.0)
FULL = dict(n_features=1000, steps=3000, batch_size=1024, warmup_steps=300, eval_samples=100_000)
#: The paper's exp-10 schedule (20,000 steps × batch 2,048, 10% warm-up): `ScalingLaws(size=PAPER_SCHEDULE)`.
PAPER_SCHEDULE = dict(FULL, steps=20_000, batch_size=2048, warmup_steps=2000)
QUICK_HIDDEN = (4, 8)
QUICK = dict(n_features=100, steps=150, batch_size=128, warmup_steps=15, eval_samples=4000)
VALUE_MAX = 2.0
#: A feature is *represented* when ‖W_i‖ > 0.5 (tmslab's LEARNED_NORM): under decay an unused feature's norm falls
#: towards 0 and under growth every norm is pulled to 1, so 0.5 is the midpoint between the two fixed points;
#: an isolated feature with ‖W_i‖ = 0.5 is reconstructed at ‖W_i‖² = 1/4 of its value. The table also reports
#: the counts at 0.3 and 0.7, to show the split does not hinge on the threshold.
REPRESENTED = metrics.LEARNED_NORM


def _name(gamma: float, m: int) -> str:
    return f"gamma{gamma:+g}-m{m}"


def predicted_loss(p: list[float], m: int, value_max: float = VALUE_MAX) -> float:
    """Weak superposition (§6.5): the model represents the m most frequent features and every other feature
    costs its activation probability times E[v²] = v_max²/3 when active; MSE averaged over the n features."""
    tail = math.fsum(p[m:])
    return tail * value_max**2 / 3 / len(p)


def unrepresented_loss(p: list[float], represented: torch.Tensor, value_max: float = VALUE_MAX) -> float:
    """The same decomposition over the features the model actually left unrepresented (`represented` [features]
    bool): the loss if every represented feature is reconstructed exactly and every other costs E[v²] when
    active. The paper's Fig. 5a plots the loss against this ("activated but unlearned")."""
    tail = float(torch.tensor(p, dtype=torch.float64)[~represented.cpu()].sum())
    return tail * value_max**2 / 3 / len(p)


def fitted_exponent(m: list[int], y: list[float]) -> float:
    """−slope of the least-squares line through (ln m, ln y): y ∝ m^−exponent."""
    slope = np.polyfit(np.log(m), np.log(y), 1)[0]
    return float(-slope)


def squared_overlap(W: torch.Tensor, represented: torch.Tensor) -> float:
    """Mean of (Ŵ_i·Ŵ_j)² over pairs i ≠ j of represented features (W [hidden, features])."""
    V = W[:, represented].double()
    V = V / V.norm(dim=0, keepdim=True)
    G = (V.T @ V) ** 2
    k = G.shape[0]
    return float((G.sum() - G.diagonal().sum()) / (k * (k - 1))) if k > 1 else float("nan")


@register
class ScalingLaws(Experiment):
    name = "scaling-laws"
    title = "Superposition yields robust neural scaling (Liu, Liu & Gore 2025)"
    claim = (
        "With weight growth (γ = −1) nearly all features are represented in strong superposition and the loss "
        "falls as 1/m for any feature-frequency exponent; with weight decay (γ = +1) about m features are "
        "represented and the loss is that of the activated-but-unrepresented features, ∝ m^−α."
    )
    spec_ref = SRC
    notes = (
        "Setup as the authors' exp-10: ReLU output model, W ~ N(0,1)/√m, b ~ N(0,1), p_i ∝ i^−(1+α) normalised "
        "to Σp = 1, values U(0, 2), AdamW peak lr 0.01 with 10% linear warm-up then cosine to 0.05×, signed decay "
        "γ on W only (growth before the Adam step), b undecayed, loss = MSE averaged over the n features (eval "
        "loss / n, on 100,000 fixed-seed samples). Fidelity (ours, for the 15-minute CPU budget): n = 1000, "
        "m ∈ {10, 15, 25, 39, 63, 100}, γ ∈ {−1, +1}, α ∈ {0.5, 1}, 3,000 steps × batch 1,024 instead of the "
        "paper's 20,000 × 2,048 and its 10-value γ grid; the sparse engine (tmslab's `sparse`). 'Represented': "
        "‖W_i‖ > 0.5 (midpoint of the decay and growth fixed points 0 and 1; counts at 0.3 and 0.7 in the "
        "table). Prediction: (v_max²/3)·Σ_{i>m} p_i / n, the m most frequent features represented (the spec's "
        "reading); beside it the same sum over the features the model actually leaves unrepresented (the paper's "
        "Fig. 5a, 'activated but unlearned'). Exponents are least-squares slopes of ln loss against ln m over the "
        "6 widths; one seed per cell, as the paper. The authors' code (exp-10.py, adamw.py) was compared item by "
        "item: decay W(1 − lr·γ) before the Adam step on W only, growth per feature, init, data, MSE scale, "
        "schedule shape all agree; only steps × batch (20,000 × 2,048) and the 10-value γ grid differ. Their own "
        "γ = +1 panels at data exponents 1.5–2 (Fig. 3b, 4b; read off the published figures, no analysis code is "
        "public) show ≈ 1–2% of features represented and fitted loss exponents ≈ 0–0.3 — close to what we measure "
        "— so the rows 'represented ≈ m' and 'loss within 20% of the top-m prediction' fail here as recorded. At the "
        "paper's own schedule (20,000 × 2,048, trained on a GPU with examples/scaling_schedule.py) they fail as well "
        "(represented / m 0.05–0.8, loss 2–26× the prediction; γ = +0.1 keeps ≈ m): docs/scaling.md."
    )

    def __init__(self, gammas: tuple[float, ...] = GAMMAS, size: dict[str, Any] | None = None,
                 device: Device = "cpu") -> None:
        """`tms reproduce` uses the defaults. `gammas` adds rows to the tables and figures (the checks are the
        spec's, at γ = −1 and +1, and need both); `size` replaces FULL (e.g. PAPER_SCHEDULE); `device` "cuda"
        trains on the GPU (examples/scaling_schedule.py)."""
        if not {-1.0, 1.0} <= set(gammas):
            raise ValueError(f"gammas must include -1 and 1 (the checks' settings), got {gammas}.")
        self.gammas = tuple(sorted(gammas))
        self.size = FULL if size is None else size
        self.device = device

    def _grid(self, quick: bool) -> tuple[dict[str, Any], tuple[int, ...]]:
        return (QUICK, QUICK_HIDDEN) if quick else (self.size, HIDDEN)

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        size, hidden = self._grid(quick)
        return {
            _name(g, m): TrainConfig(
                n_hidden=m, density=[f"power:{a:g}" for a in ALPHAS], value_max=VALUE_MAX, weight_decay=g,
                decay_bias=False, init="paper", lr=1e-2, schedule="cosine-floor", lr_floor=0.05, sparse=True,
                seed=15, device=self.device, **size,
            )
            for g in self.gammas for m in hidden
        }

    def analyze(self, ctx: Context) -> Analysis:
        _, hidden = self._grid(ctx.quick)
        rows = []
        for g in self.gammas:
            for m in hidden:
                run = ctx.runs[_name(g, m)]
                n = run.config.n_features
                norms = metrics.feature_norms(run.W)
                for c, a in enumerate(ALPHAS):
                    rep = norms[c] > REPRESENTED
                    p = density_law(f"power:{a:g}", n)
                    rows.append({
                        "gamma": g, "alpha": a, "m": m, "loss": float(run.eval_loss[c]) / n,
                        "predicted_weak": predicted_loss(p, m), "unrepresented_loss": unrepresented_loss(p, rep),
                        "represented": int(rep.sum()),
                        "represented_0.3": int((norms[c] > 0.3).sum()), "represented_0.7": int((norms[c] > 0.7).sum()),
                        "fraction_represented": float(rep.float().mean()),
                        "squared_overlap": squared_overlap(run.W[c], rep),
                    })
        summary = self._summary(rows, hidden)
        checks = self._checks(summary, ctx.quick)
        return Analysis(checks, self._figures(rows, summary, hidden), {"per_model": rows, "per_regime": summary})

    def _summary(self, rows: list[dict[str, Any]], hidden: tuple[int, ...]) -> list[dict[str, Any]]:
        out = []
        for g in self.gammas:
            for a in ALPHAS:
                sel = [r for r in rows if r["gamma"] == g and r["alpha"] == a]
                ms = [r["m"] for r in sel]
                overlaps = [r["squared_overlap"] for r in sel]
                out.append({
                    "gamma": g, "alpha": a,
                    "loss_exponent": fitted_exponent(ms, [r["loss"] for r in sel]),
                    "predicted_exponent": fitted_exponent(ms, [r["predicted_weak"] for r in sel]),
                    "overlap_exponent": fitted_exponent(ms, overlaps) if all(o > 0 for o in overlaps) else math.nan,
                    "min_fraction_represented": min(r["fraction_represented"] for r in sel),
                    "represented_over_m": [round(r["represented"] / r["m"], 3) for r in sel],
                    "loss_over_prediction": [round(r["loss"] / r["predicted_weak"], 3) for r in sel],
                    "loss_over_unrepresented": [round(r["loss"] / r["unrepresented_loss"], 3)
                                                if r["unrepresented_loss"] > 0 else math.nan for r in sel],
                })
        return out

    @staticmethod
    def _checks(summary: list[dict[str, Any]], quick: bool) -> list[Check]:
        checks = []

        def add(name: str, measured: Any, expected: str, ok: bool, note: str = "") -> None:
            if quick:
                checks.append(Check(name, measured, expected, ok, SRC, note, "claim", "not evaluated",
                                    "needs full fidelity (n = 1000, 6 widths, 3,000 steps)"))
            else:
                checks.append(Check(name, measured, expected, ok, SRC, note, "claim"))

        for s in summary:
            a = s["alpha"]
            if s["gamma"] not in GAMMAS:  # rows of a wider γ grid: tables and figures only
                continue
            if s["gamma"] < 0:
                add(f"γ = −1, α = {a:g}: smallest fraction of features represented (over m)",
                    round(s["min_fraction_represented"], 4), "≥ 0.9", s["min_fraction_represented"] >= 0.9,
                    "‖W_i‖ > 0.5")
                add(f"γ = −1, α = {a:g}: fitted loss exponent", round(s["loss_exponent"], 3), "[0.8, 1.2]",
                    0.8 <= s["loss_exponent"] <= 1.2, "strong superposition: loss ∝ 1/m whatever α")
                add(f"γ = −1, α = {a:g}: exponent of the mean squared overlap (Ŵ_i·Ŵ_j)² of represented features",
                    round(s["overlap_exponent"], 3), "[0.8, 1.2]", 0.8 <= s["overlap_exponent"] <= 1.2)
            else:
                rom = s["represented_over_m"]
                add(f"γ = +1, α = {a:g}: represented features / m at every m", rom, "all in [0.5, 2]",
                    all(0.5 <= v <= 2 for v in rom), "'represented ≈ m (within a factor 2)'")
                diff = s["loss_exponent"] - s["predicted_exponent"]
                add(f"γ = +1, α = {a:g}: loss exponent − prediction's exponent "
                    f"({s['loss_exponent']:.3f} − {s['predicted_exponent']:.3f})", round(diff, 3), "[−0.2, 0.2]",
                    abs(diff) <= 0.2, "prediction: the activated-but-unrepresented loss on the same m grid")
                lop = s["loss_over_prediction"]
                add(f"γ = +1, α = {a:g}: loss / prediction at every m", lop, "all in [0.8, 1.2]",
                    all(0.8 <= v <= 1.2 for v in lop))
                # The weak-regime mechanism itself, on the features the model left unrepresented (however many):
                # the paper's Fig. 5a. It holds even where "represented ≈ m" does not (the two rows above).
                lou = s["loss_over_unrepresented"]
                add(f"γ = +1, α = {a:g}: loss / loss of the features it leaves unrepresented, at every m", lou,
                    "all in [0.8, 1.2]", all(0.8 <= v <= 1.2 for v in lou),
                    "(v_max²/3)·Σ p_i over features with ‖W_i‖ ≤ 0.5, / n: weak superposition's loss is that of "
                    "the activated-but-unrepresented features (the paper's Fig. 5a)")
        return checks

    def _figures(self, rows: list[dict[str, Any]], summary: list[dict[str, Any]], hidden: tuple[int, ...]) -> list[Any]:
        figs = []
        ms = list(hidden)
        for a in ALPHAS:
            series: dict[str, Any] = {}
            dash: dict[str, str] = {}
            for g in self.gammas:
                sel = [r for r in rows if r["gamma"] == g and r["alpha"] == a]
                loss = [r["loss"] for r in sel]
                series[f"γ = {g:+g}"] = (ms, loss)
                expo = next(s["loss_exponent"] for s in summary if s["gamma"] == g and s["alpha"] == a)
                fit = np.exp(np.polyval(np.polyfit(np.log(ms), np.log(loss), 1), np.log(ms)))
                label = f"γ = {g:+g} fit: loss ∝ m^({-expo:.2f})"
                series[label] = (ms, fit.tolist())
                dash[label] = "dash"
            pred = [r["predicted_weak"] for r in rows if r["gamma"] == GAMMAS[-1] and r["alpha"] == a]
            series["weak prediction (unrepresented features' loss)"] = (ms, pred)
            dash["weak prediction (unrepresented features' loss)"] = "dot"
            figs.append(figure(
                f"loss-vs-m-alpha-{a:g}", "lines", None, series, xlabel="hidden dimensions m",
                ylabel="loss (MSE per feature)", log_x=True, log_y=True, dash=dash,
                title=f"p_i ∝ i^−{1 + a:g} (α = {a:g})",
                caption=f"Loss against width, α = {a:g}: weight growth (γ = −1) gives ≈ 1/m; weight decay (γ = +1) "
                        "follows the loss of the activated-but-unrepresented features (dotted)."))
        frac = {f"α = {a:g}, m = {m}": (list(self.gammas), [r["fraction_represented"] for r in rows
                                                       if r["alpha"] == a and r["m"] == m]) for a in ALPHAS for m in ms}
        figs.append(figure("represented-vs-gamma", "lines", None, frac, xlabel="signed weight decay γ",
                           ylabel="fraction of features with ‖W_i‖ > 0.5",
                           caption="γ controls how many features are represented: nearly all under growth "
                                   "(γ = −1), about m under decay (γ = +1)."))
        ov: dict[str, Any] = {f"γ = {g:+g}, α = {a:g}": (ms, [r["squared_overlap"] for r in rows
                                                             if r["gamma"] == g and r["alpha"] == a])
                              for g in self.gammas for a in ALPHAS}
        ov["1/m"] = (ms, [1 / m for m in ms])
        figs.append(figure("overlap-vs-m", "lines", None, ov, xlabel="hidden dimensions m",
                           ylabel="mean (Ŵ_i·Ŵ_j)² of represented features", log_x=True, log_y=True,
                           dash={"1/m": "dot"},
                           caption="Squared overlaps between represented feature directions fall as 1/m in strong "
                                   "superposition."))
        return figs
