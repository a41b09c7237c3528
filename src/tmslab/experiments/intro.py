"""§2.1 (E1, E1b): n = 5 features in m = 2 dimensions — superposition appears as sparsity grows.

Dense: the two most important features get orthogonal dimensions, the rest are dropped (bias = their
mean). Sparse: all five share the plane as a regular pentagon with a slightly negative bias.
"""

from __future__ import annotations

import math

import torch

from tmslab import metrics, population, theory
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
    superseded,
    within,
)

#: The notebook's 10 densities, 20^(−linspace(0, 1, 10)), plus the paper figure's 80% sparsity (0.2)
#: and the 0.1 of the spec's antipodal-pair check.
NOTEBOOK_DENSITIES = notebook_densities(10)
DENSITIES = sorted({*NOTEBOOK_DENSITIES, 0.2, 0.1}, reverse=True)
SRC = "§2.1, E1"

#: A *learned* feature also has about unit norm (paper-spec §7.2 D20: the counts must fail on an untrained model).
#: A feature the model stores reconstructs a lone x_i = 1 as ReLU(‖W_i‖² + b_i) ≈ 1 with b_i between 0 (a
#: dedicated dimension) and ≈ −0.3 (superposed; §2.1 and §7.1 D1: b ≈ −0.25), so ‖W_i‖ ∈ [1, 1.16]; the band
#: allows ±20% (partly trained features). Xavier's init ‖W_i‖² = 2/(n+m)·χ²_m puts only a few features in it
#: (n = 20, m = 5: 15% of them; n = 80–100, m = 20: 0–3%), while > half of them pass the bare ‖W_i‖ > 0.5.
UNIT_NORM = (0.8, 1.25)
UNIT_WORDS = f"‖W_i‖ ∈ [{UNIT_NORM[0]:g}, {UNIT_NORM[1]:g}]"


def unit_norm_count(W: torch.Tensor) -> torch.Tensor:
    """Features at about unit norm (UNIT_NORM), per model: W [..., m, n] → [...]."""
    norms = metrics.feature_norms(W)
    return ((norms >= UNIT_NORM[0]) & (norms <= UNIT_NORM[1])).sum(-1)


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


def learned_count(norms: torch.Tensor, k: int, label: str) -> Check:
    """`k` features learned (‖W_i‖ > 0.5, the spec's count), each at about unit norm (UNIT_NORM). D20: five
    Xavier-init features in two dimensions (‖W_i‖² = (2/7)·χ²_2) all pass ‖W_i‖ > 0.5 in 12% of seeds — the best of
    16 init restarts did at full fidelity — but sit in [0.8, 1.25] in < 0.3%."""
    learned = norms > 0.5
    n = int(learned.sum())
    unit = bool(((norms[learned] >= UNIT_NORM[0]) & (norms[learned] <= UNIT_NORM[1])).all())
    return Check(f"{label}: learned features (‖W_i‖ > 0.5), each at unit norm ({UNIT_WORDS})", n,
                 f"{k}, all at unit norm", n == k and unit, SRC,
                 f"‖W_i‖ = {[round(v, 3) for v in norms.tolist()]}; the pentagon's optimum has 1.13–1.17, two "
                 "antipodal pairs ≈ 1")


def norm_bias_gap(W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖W_i‖² − (1 − b_i): how far an isolated x_i = 1 is from being reconstructed exactly (W [m, n], b [n])."""
    return W.double().square().sum(0) - (1 - b.double())


def cyclic_order(W: torch.Tensor) -> tuple[int, ...]:
    """The order of the features of W [2, 5] around the origin, feature 0 first, read in the direction that puts
    the smaller neighbour of feature 0 second (a rotation or reflection of the plane does not change it)."""
    ring = torch.argsort(metrics.feature_angles(W[None])[0]).tolist()
    ring = ring[ring.index(0):] + ring[: ring.index(0)]
    return tuple(ring) if ring[1] < ring[-1] else (0, *ring[:0:-1])


def _rows(v: list[float], k: int) -> torch.Tensor:
    return torch.tensor([list(v)] * k, dtype=torch.float64)


#: L-BFGS iterations for the ideal-start optima: 100 reach the same optimum as 500 to 1e-10 in loss (n = 5).
ITERATIONS = 100


def ideal_pentagon_optimum(
    order: tuple[int, ...], importance: list[float], density: list[float], points: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """§7.1 D1: the exact population-loss optimum from an *ideal* regular pentagon (norm 1.13, b = −0.25, [R]) with
    the features in cyclic `order` — never from trained weights: (W [2, 5], b [5], loss)."""
    W0 = torch.zeros(1, 2, 5, dtype=torch.float64)
    W0[0][:, list(order)] = theory.regular_polygon(5)[0] * 1.13
    W, b, loss = population.minimise(W0, torch.full((1, 5), -0.25).double(), _rows(importance, 1),
                                     _rows(density, 1), points=points, iterations=ITERATIONS)
    return W[0], b[0], float(loss[0])


def ideal_pairs_optimum(importance: list[float], density: list[float], points: int) -> tuple[float, str]:
    """The exact optimum from each ideal square of two antipodal pairs of features 0–3, feature 4 (the least
    important) dropped with its bias at its mean: (lowest loss, which pairs) — the pentagon's rival of §7.1 D2,
    compared without trained weights. Dropping a more important feature only costs more."""
    quads = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2))  # pairs (q[0], q[1]) and (q[2], q[3])
    W0 = torch.zeros(len(quads), 2, 5, dtype=torch.float64)
    for k, quad in enumerate(quads):
        for f, angle in zip(quad, (0.0, math.pi, math.pi / 2, -math.pi / 2), strict=True):
            W0[k, :, f] = torch.tensor([math.cos(angle), math.sin(angle)])
    b0 = torch.zeros(len(quads), 5, dtype=torch.float64)
    b0[:, 4] = density[4] / 2
    K = len(quads)
    _, _, loss = population.minimise(W0, b0, _rows(importance, K), _rows(density, K), points=points,
                                     iterations=ITERATIONS)
    k = int(loss.argmin())
    q = quads[k]
    return float(loss[k]), f"pairs ({q[0]}, {q[1]}), ({q[2]}, {q[3]})"


def pentagon_checks(
    W: torch.Tensor, b: torch.Tensor, label: str, importance: list[float], density: list[float], points: int
) -> tuple[list[Check], dict[str, object]]:
    """E1 at density ≤ 0.05 for one model: a regular pentagon, norms ≈ 1.1, negative bias, and (§7.1 D1)
    ‖W_i‖² − (1 − b_i) within 0.02 of the exact optimum reached from an ideal pentagon in the model's cyclic order."""
    norms = metrics.feature_norms(W[None])[0]
    gaps = metrics.angular_gaps(W[None])[0]
    order = cyclic_order(W)
    W_opt, b_opt, loss_opt = ideal_pentagon_optimum(order, importance, density, points)
    optimum = norm_bias_gap(W_opt, b_opt)
    trained = norm_bias_gap(W, b)
    exact = ", ".join(f"{v:.4f}" for v in optimum.tolist())
    checks = [
        learned_count(norms, 5, label),
        all_within(f"{label}: consecutive angular gaps (°)", gaps, 69, 75, SRC, "72° ± 3°: a regular pentagon"),
        all_within(f"{label}: ‖W_i‖", norms, 1.08, 1.2, SRC, "[R] best-of-16 gives 1.12–1.17"),
        all_within(f"{label}: b_i", b, -0.32, -0.18, SRC, "negative bias cuts off positive interference"),
        all_within(f"{label}: |‖W_i‖² − (1 − b_i) − the exact optimum's|", (trained - optimum).abs(), 0, 0.02,
                   "§2.1, E1; §7.1 D1",
                   f"the optimum: the exact population loss (tmslab.population, {points} nodes per active set) "
                   "minimised from an ideal regular pentagon (norm 1.13, b = −0.25) with the features in the trained "
                   f"model's cyclic order {order} — a discrete choice; no trained value enters. Its values: [{exact}], "
                   f"L = {loss_opt:.6f}"),
        superseded(all_within(f"{label}: ‖W_i‖² − (1 − b_i) (the spec's first tolerance)", trained, -0.05, 0.05, SRC),
                   f"§7.1 D1: withdrawn — the exact optimum itself has [{exact}] (max |·| "
                   f"{float(optimum.abs().max()):.4f}); replaced by the comparison with that optimum"),
    ]
    return checks, {"cyclic_order": list(order), "optimum_gap": optimum.tolist(), "optimum_loss": loss_opt}


def antipodal_checks(W: torch.Tensor, b: torch.Tensor, density: float, label: str) -> list[Check]:
    """Four features as two antipodal pairs (90° gaps), the fifth dropped with bias E[x] = density/2."""
    norms = metrics.feature_norms(W[None])[0]
    learned = norms > 0.5
    dead = [i for i in range(W.shape[1]) if not learned[i]]
    gaps = metrics.angular_gaps(W[None])[0]
    mean = density / 2
    return [
        learned_count(norms, 4, label),
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
    return [
        learned_count(norms, 5, label),
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
    quick_not_evaluated = (
        # 3,000 steps leave the dropped features of the dense model partly learned (‖W_i‖ ≈ 0.2, b ≈ 0.3–0.44),
        # and 4 restarts at density 0.2 reach the pentagon rather than the two antipodal pairs.
        "density 1: ‖W_i‖ of the other features", "density 1: b_i of the dropped features",
        "density 0.2 (paper: 80% sparsity)",
    )
    notes = (
        "Importance 0.9^i as in the notebook; densities are the notebook's 20^(−linspace(0,1,10)) plus 0.2 and 0.1. "
        "Best of 16 restarts by evaluation loss on 100,000 fresh samples (the paper: 'fitting each model multiple "
        "times and taking the solution with the lowest loss'). As the spec notes, with 0.9^i the pentagon appears "
        "at density ≤ 0.05 rather than the figure's 0.1. Our best-of-16 with paired evaluation finds the paper's "
        "picture at the paper's sparsities: two antipodal pairs at density 0.2 (80% sparsity) and a pentagon at 0.1 "
        "(90%). Per paper-spec §7.1: D1 — the spec's '‖W_i‖² ≈ 1 − b_i within 0.05' at density 0.05 is kept as a "
        "superseded row (the exact optimum itself misses it) and replaced by agreement within 0.02 with the exact "
        "population-loss optimum reached from an ideal regular pentagon (never from the trained weights); D2 — the "
        "antipodal pairs are checked at density 0.2, and the spec's 'pairs at density 0.1' row is kept as superseded, "
        "with the exact losses of the polished ideal pentagon and square as its evidence."
        " D20 (null models): a 'learned features' count also needs each counted feature at unit norm (‖W_i‖ ∈ "
        "[0.8, 1.25]): the best of 16 Xavier inits at density 0.05 with uniform importance had all five features "
        "above 0.5."
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
    def _pairs_at_01(W: torch.Tensor, importance: list[float], density: list[float], points: int) -> list[Check]:
        """§7.1 D2: the spec's first E1 row (two antipodal pairs at density 0.1) kept as a superseded row, and
        the loss comparison behind it made between polished ideal shapes (issue 12 §3), not between restarts."""
        order = cyclic_order(W)
        l_pent = ideal_pentagon_optimum(order, importance, density, points)[2]
        l_pairs, which = ideal_pairs_optimum(importance, density, points)
        label = metrics.describe_polytopes(metrics.polytopes(W[None])[0])
        ratio = l_pairs / l_pent
        return [
            at_least("density 0.1: exact-optimum loss, best two-antipodal-pairs square / best pentagon", ratio, 1.0,
                     "§2.1, E1; §7.1 D2", f"ideal shapes polished to the nearest critical point of the exact "
                     f"population loss ({points} nodes): the pentagon in the trained model's cyclic order {order} "
                     f"L = {l_pent:.6f}, the best of the three squares ({which}) L = {l_pairs:.6f}", kind="sanity"),
            superseded(Check("density 0.1: best model is two antipodal pairs, the fifth feature dropped (spec E1 row)",
                             label, "2 × antipodal pair", label == "2 × antipodal pair", SRC),
                       f"§7.1 D2: withdrawn — at density 0.1 two antipodal pairs are a local optimum whose exact loss "
                       f"is {(ratio - 1) * 100:.0f}% above the pentagon's ({l_pairs:.5f} vs {l_pent:.5f}); the paper's "
                       "figure has the pairs at 80% sparsity, checked at density 0.2"),
        ]

    def analyze(self, ctx: Context) -> Analysis:
        points = 128 if ctx.quick else 1024
        run = ctx.runs["importance-0.9"]
        best = run.best_indices()
        dens = [run.config.density[c] for c in range(run.config.n_configs)]
        W, b = run.W.double(), run.b.double()
        at = {d: best[i] for i, d in enumerate(dens)}
        imp, den = run.config.config_importance, run.config.config_density
        checks = dense_checks(W[at[1.0]], b[at[1.0]])
        c05, c10 = dens.index(0.05), dens.index(0.1)
        pent, optimum = pentagon_checks(W[at[0.05]], b[at[0.05]], "density 0.05", imp(c05), den(c05), points)
        checks += pent
        # The paper's figure: 80% sparsity → two antipodal pairs, 90% → pentagon (§7.1 D2).
        checks += antipodal_checks(W[at[0.2]], b[at[0.2]], 0.2, "density 0.2 (paper: 80% sparsity)")
        checks += regular_pentagon(W[at[0.1]], "density 0.1 (paper: 90% sparsity)")
        checks += self._pairs_at_01(W[at[0.1]], imp(c10), den(c10), points)

        uni = ctx.runs["uniform-0.05"]
        k = uni.best_indices()[0]
        Wu, bu = uni.W.double(), uni.b.double()
        pent, optimum_u = pentagon_checks(Wu[k], bu[k], "E1b uniform importance", uni.config.config_importance(0),
                                          uni.config.config_density(0), points)
        checks += pent
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
        return Analysis(checks, figs, {"uniform_restart_geometry": labels, "density_0.05_optimum": optimum,
                                       "uniform_0.05_optimum": optimum_u})
