"""§2.1 (E1, E1b): n = 5 features in m = 2 dimensions — superposition appears as sparsity grows.

Dense: the two most important features get orthogonal dimensions, the rest are dropped (bias = their
mean). Sparse: all five share the plane as a regular pentagon with a slightly negative bias.
"""

from __future__ import annotations

import torch

from tmslab import metrics, population
from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import (
    Analysis,
    Check,
    Context,
    Experiment,
    all_within,
    at_least,
    figure,
    notebook_densities,
    within,
)
from tmslab.io import Run

#: The notebook's 10 densities, 20^(−linspace(0, 1, 10)), plus the paper figure's 80% sparsity (0.2)
#: and the 0.1 of the spec's antipodal-pair check.
NOTEBOOK_DENSITIES = notebook_densities(10)
DENSITIES = sorted({*NOTEBOOK_DENSITIES, 0.2, 0.1}, reverse=True)
SRC = "§2.1, E1"


def dense_checks(W: torch.Tensor, b: torch.Tensor, label: str = "density 1") -> list[Check]:
    """E1 at density 1 for one model W [2, 5], b [5]: top-2 features orthogonal at norm 1, rest dropped."""
    norms = metrics.feature_norms(W[None])[0]
    kept = [i for i in range(W.shape[1]) if 0.9 <= norms[i] <= 1.1]
    rest = [i for i in range(W.shape[1]) if i not in kept]
    checks = [Check(f"{label}: features with ‖W_i‖ ∈ [0.9, 1.1] are the top two", kept, "[0, 1]", kept == [0, 1], SRC)]
    if len(kept) == 2:
        cos = (W[:, 0] @ W[:, 1] / (norms[0] * norms[1])).clamp(-1, 1)
        checks.append(within(f"{label}: angle between them (°)", torch.rad2deg(torch.arccos(cos)).item(), 85, 95, SRC))
    checks.append(all_within(f"{label}: ‖W_i‖ of the other features", norms[rest], 0, 0.1, SRC))
    checks.append(
        all_within(f"{label}: b_i of the dropped features (= E[x_i] = 0.5)", b[rest], 0.45, 0.55, SRC,
                   "an unrepresented feature is best predicted by its mean")
    )
    return checks


def norm_bias_gap(W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖W_i‖² − (1 − b_i): how far an isolated x_i = 1 is from being reconstructed exactly (W [m, n], b [n])."""
    return W.double().square().sum(0) - (1 - b.double())


def optimum_gap(W: torch.Tensor, b: torch.Tensor, importance: list[float], density: list[float]) -> torch.Tensor:
    """norm_bias_gap at the nearest critical point of the exact population loss (tmslab.population)."""
    W_opt, b_opt, _ = population.minimise_one(W, b, importance, density, points=4096)
    return norm_bias_gap(W_opt, b_opt)


def pentagon_checks(W: torch.Tensor, b: torch.Tensor, label: str, optimum: torch.Tensor) -> list[Check]:
    """E1 at density ≤ 0.05 for one model: a regular pentagon, norms ≈ 1.1, negative bias, ‖W‖² ≈ 1 − b.
    `optimum` is norm_bias_gap at the exact population-loss optimum next to W, reported beside that check."""
    norms = metrics.feature_norms(W[None])[0]
    gaps = metrics.angular_gaps(W[None])[0]
    exact = ", ".join(f"{v:.4f}" for v in optimum.tolist())
    return [
        Check(f"{label}: learned features (‖W_i‖ > 0.5)", int((norms > 0.5).sum()), "5",
              int((norms > 0.5).sum()) == 5, SRC),
        all_within(f"{label}: consecutive angular gaps (°)", gaps, 69, 75, SRC, "72° ± 3°: a regular pentagon"),
        all_within(f"{label}: ‖W_i‖", norms, 1.08, 1.2, SRC, "[R] best-of-16 gives 1.12–1.17"),
        all_within(f"{label}: b_i", b, -0.32, -0.18, SRC, "negative bias cuts off positive interference"),
        all_within(f"{label}: ‖W_i‖² − (1 − b_i)", norm_bias_gap(W, b), -0.05, 0.05, SRC,
                   "the spec's tolerance, kept although it is tight: an isolated x_i = 1 is reconstructed as "
                   "ReLU(‖W_i‖² + b_i) ≈ 1, but the loss integrates over x_i ∈ [0, 1], so the optimum need not "
                   f"make it exact. At the exact optimum of the population loss next to this model: [{exact}]; "
                   "the one-hot limit (S → 1) gives 0.088."),
    ]


def antipodal_checks(W: torch.Tensor, b: torch.Tensor, density: float, label: str) -> list[Check]:
    """Four features as two antipodal pairs (90° gaps), the fifth dropped with bias E[x] = density/2."""
    norms = metrics.feature_norms(W[None])[0]
    learned = norms > 0.5
    dead = [i for i in range(W.shape[1]) if not learned[i]]
    gaps = metrics.angular_gaps(W[None])[0]
    mean = density / 2
    return [
        Check(f"{label}: learned features (‖W_i‖ > 0.5)", int(learned.sum()), "4", int(learned.sum()) == 4, SRC),
        all_within(f"{label}: ‖W_i‖ of learned features", norms[learned], 0.9, 1.1, SRC),
        all_within(f"{label}: consecutive angular gaps (°)", gaps, 85, 95, SRC, "two antipodal pairs at 90°"),
        all_within(f"{label}: ‖W_i‖ of the dropped feature", norms[dead], 0, 0.1, SRC),
        all_within(f"{label}: b of the dropped feature (= E[x] = {mean:g})", b[dead], 0.8 * mean, 1.2 * mean, SRC,
                   "±20%, the spec's tolerance at density 0.1 (0.05 ± 0.01)"),
    ]


def regular_pentagon(W: torch.Tensor, label: str) -> list[Check]:
    """The paper's claim alone: five learned features at 72° gaps."""
    norms = metrics.feature_norms(W[None])[0]
    gaps = metrics.angular_gaps(W[None])[0]
    n = int((norms > 0.5).sum())
    return [
        Check(f"{label}: learned features (‖W_i‖ > 0.5)", n, "5", n == 5, SRC),
        all_within(f"{label}: consecutive angular gaps (°)", gaps, 69, 75, SRC, "72° ± 3°: a regular pentagon"),
    ]


@register
class Intro(Experiment):
    name = "intro"
    title = "As sparsity increases, models use superposition (n = 5, m = 2)"
    claim = (
        "Dense features: the model keeps the two most important in orthogonal dimensions and drops the rest; "
        "as features get sparser it stores more of them in superposition, ending in a regular pentagon."
    )
    spec_ref = "§2.1, E1, E1b"
    notes = (
        "Importance 0.9^i as in the notebook; densities are the notebook's 20^(−linspace(0,1,10)) plus 0.2 and 0.1. "
        "Best of 16 restarts by evaluation loss on 100,000 fresh samples (the paper: 'fitting each model multiple "
        "times and taking the solution with the lowest loss'). As the spec notes, with 0.9^i the pentagon appears "
        "at density ≤ 0.05 rather than the figure's 0.1. Our best-of-16 with paired evaluation finds the paper's "
        "picture at the paper's sparsities: two antipodal pairs at density 0.2 (80% sparsity) and a pentagon at 0.1 "
        "(90%), whose loss is ≈ 20% below the two-antipodal-pairs solution the spec's run settled in. So the checks "
        "test the paper's "
        "claims at 0.2 and 0.1, the spec's norm/bias ranges at 0.05, and record the loss gap at 0.1."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        common = dict(n_features=5, n_hidden=2, steps=3_000 if quick else 10_000, restarts=4 if quick else 16,
                      eval_samples=20_000 if quick else 100_000)
        return {
            "importance-0.9": TrainConfig(density=[1.0, 0.2, 0.1, 0.05] if quick else DENSITIES,
                                          importance_decay=0.9, **common),
            "uniform-0.05": TrainConfig(density=[0.05], **common),
        }

    @staticmethod
    def _spec_discrepancy(run: Run, config: int) -> Check:
        """The spec's E1 expects two antipodal pairs at density 0.1; compare that geometry's best loss with the
        pentagon's among this configuration's restarts (both usually occur)."""
        R = run.config.restarts
        rows = range(config * R, (config + 1) * R)
        W, loss = run.W.double(), run.eval_loss
        labels = {k: metrics.describe_polytopes(metrics.polytopes(W[k][None])[0]) for k in rows}
        best = {g: min((float(loss[k]) for k in rows if labels[k] == g), default=float("nan"))
                for g in ("pentagon", "2 × antipodal pair")}
        gap = best["2 × antipodal pair"] - best["pentagon"]
        return Check(
            "density 0.1: loss(two antipodal pairs) − loss(pentagon), best restart of each", round(gap, 6), "> 0",
            gap > 0, "§2.1, E1 (spec discrepancy)",
            f"best pentagon L = {best['pentagon']:.5f}, best two-antipodal-pairs L = {best['2 × antipodal pair']:.5f} "
            "(the spec's [R] best-of-16 reached only the latter: 0.02546). The spec's E1 expects two antipodal pairs "
            "at density 0.1; the pentagon has the lower loss, as in the paper's figure at 90% sparsity.",
        )

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["importance-0.9"]
        best = run.best_indices()
        dens = [run.config.density[c] for c in range(run.config.n_configs)]
        W, b = run.W.double(), run.b.double()
        at = {d: best[i] for i, d in enumerate(dens)}
        checks = dense_checks(W[at[1.0]], b[at[1.0]])
        c05 = dens.index(0.05)
        checks += pentagon_checks(W[at[0.05]], b[at[0.05]], "density 0.05", optimum_gap(
            W[at[0.05]], b[at[0.05]], run.config.config_importance(c05), run.config.config_density(c05)))
        # The paper's figure: 80% sparsity → two antipodal pairs, 90% → pentagon.
        checks += antipodal_checks(W[at[0.2]], b[at[0.2]], 0.2, "density 0.2 (paper: 80% sparsity)")
        checks += regular_pentagon(W[at[0.1]], "density 0.1 (paper: 90% sparsity)")
        checks.append(self._spec_discrepancy(run, dens.index(0.1)))

        uni = ctx.runs["uniform-0.05"]
        k = uni.best_indices()[0]
        Wu, bu = uni.W.double(), uni.b.double()
        checks += pentagon_checks(Wu[k], bu[k], "E1b uniform importance", optimum_gap(
            Wu[k], bu[k], uni.config.config_importance(0), uni.config.config_density(0)))
        D = metrics.feature_dimensionality(Wu[k][None])[0]
        checks.append(all_within("E1b: D_i of the best restart", D, 0.38, 0.42, "§2.1, E1b", "pentagon: D = 2/5"))
        labels = [metrics.describe_polytopes(c) for c in metrics.polytopes(Wu)]
        reached = sum(lab == "pentagon" for lab in labels)
        checks.append(
            at_least("E1b: restarts reaching the pentagon", reached, uni.config.restarts / 2, "§2.1, E1b",
                     f"[R]: 15 of 16 at 20k steps, 9–16 of 16 across settings; accept half ({uni.config.restarts} run)")
        )
        imp = run.config.config_importance(0)
        figs = [
            figure("arrows", "arrows_2d", W[best], imp, [f"density {d:g}" for d in dens],
                   caption="Best restart per density: feature directions W_i in the hidden plane, "
                           "colour = importance."),
            figure("uniform-restarts", "arrows_2d", Wu, None, [f"seed {r}: {lab}" for r, lab in enumerate(labels)],
                   caption="E1b: every restart at density 0.05 with uniform importance, labelled by geometry."),
        ]
        return Analysis(checks, figs, {"uniform_restart_geometry": labels})
