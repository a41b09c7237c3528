"""§2.6.4(i) (E7): perturbing one feature of the pentagon — a first-order phase change.

n = 5, m = 2, uniform importance, every feature at one base density (a regular pentagon) except
feature 0, whose density is scaled by a relative factor from 1/8 up. Denser, it pushes its neighbours away;
about 2.5× sparser, the pentagon snaps to two digons (a square of two antipodal pairs) with feature 0
dropped. Every restart is kept: the best loss of each geometry against the relative density gives
two curves that cross at the transition. Also holds the m = 2 canonicalisation shared with
`correlated`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tmslab import metrics, population, theory
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, at_least, figure, superseded, within
from tmslab.experiments.phase import json_safe, load_grid
from tmslab.population import population_loss

SRC = "§2.6.4(i), E7"
VARIED = 0
PENTAGON, DIGON, OTHER = "pentagon", "digon (square)", "other"
#: Two learned features form an antipodal pair when their cosine is below this.
ANTIPODAL_COS = -0.9


def canonicalise(W: Tensor, order: list[int] | None = None, norm_threshold: float = metrics.LEARNED_NORM) -> Tensor:
    """Rotate and reflect m = 2 solutions W [K, 2, n] to one orientation (§2.6.4: "rotated/flipped to align").

    The first learned feature in `order` (default 0, 1, …, n−1; learned: ‖W_i‖ > norm_threshold, else the
    longest) is turned to point straight up; then the picture is mirrored left–right if needed so that the
    next learned feature in `order` not collinear with it lies on the right. WᵀW — the whole model — is
    unchanged, and the result does not depend on the orientation of the input.
    """
    W = W.double()
    K, m, n = W.shape
    if m != 2:
        raise ValueError(f"canonicalise needs m = 2 hidden dimensions, got {m}.")
    order = list(range(n)) if order is None else list(order)
    out = torch.empty_like(W)
    norms = W.norm(dim=1)
    for k in range(K):
        learned = [i for i in order if norms[k, i] > norm_threshold]
        ref = learned[0] if learned else int(norms[k].argmax())
        a = math.atan2(W[k, 1, ref].item(), W[k, 0, ref].item())
        t = math.pi / 2 - a
        R = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64)
        V = R @ W[k]
        for i in learned[1:] if learned else []:
            if abs(V[0, i].item()) > 1e-6 * norms[k, i].item():
                if V[0, i] < 0:
                    V[0] = -V[0]
                break
        out[k] = V
    return out


def geometry(W: Tensor, varied: int = VARIED) -> list[str]:
    """Per model W [K, 2, 5]: 'pentagon' (all five features ‖W_i‖ > 0.5), 'digon (square)' (four learned as
    two antipodal pairs, cos < −0.9, the varied feature not learned) or 'other'."""
    W = W.double()
    norms = metrics.feature_norms(W)
    G = metrics.gram(W)
    out = []
    for k in range(W.shape[0]):
        learned = torch.nonzero(norms[k] > metrics.LEARNED_NORM).flatten().tolist()
        if len(learned) == W.shape[2]:
            out.append(PENTAGON)
            continue
        cos = G[k] / (norms[k][:, None] * norms[k][None, :]).clamp_min(1e-12)
        paired = all(any(cos[i, j] < ANTIPODAL_COS for j in learned if j != i) for i in learned)
        out.append(DIGON if len(learned) == 4 and varied not in learned and paired else OTHER)
    return out


def crossing(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The x (interpolated linearly in log x) where a − b changes sign from positive to negative as x grows,
    using consecutive points where both curves exist; of several such changes the middle one; NaN if none."""
    d = a - b
    found = []
    for i in range(len(x) - 1):
        if np.isfinite(d[i]) and np.isfinite(d[i + 1]) and d[i] > 0 >= d[i + 1]:
            t = d[i] / (d[i] - d[i + 1])
            found.append(float(np.exp(np.log(x[i]) + t * (np.log(x[i + 1]) - np.log(x[i])))))
    return found[len(found) // 2] if found else math.nan


def exact_optimum_curves(rel: np.ndarray, base: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Each geometry's loss at the nearest critical point of the population loss, per relative density: a
    regular pentagon (norm 1.13, b = −0.25) and the square of two antipodal pairs with feature 0 at zero,
    each polished with `population.minimise`; NaN where the polish leaves that geometry."""
    curves = []
    pent_W = theory.regular_polygon(5)[0] * 1.13
    square = torch.zeros(2, 5, dtype=torch.float64)
    square[:, 1:] = theory.regular_polygon(4)[0]
    density = torch.full((len(rel), 5), base, dtype=torch.float64)
    density[:, VARIED] = torch.as_tensor(rel) * base
    ones = torch.ones(len(rel), 5, dtype=torch.float64)
    for kind, W0, b0 in ((PENTAGON, pent_W, -0.25), (DIGON, square, 0.0)):
        W, b, loss = population.minimise(W0.expand(len(rel), 2, 5), torch.full((len(rel), 5), b0).double(),
                                         ones, density, points=points)
        keep = torch.tensor([g == kind for g in geometry(W)])
        curves.append(torch.where(keep, loss, torch.nan).numpy())
    return curves[0], curves[1]


@dataclass(frozen=True)
class Setup:
    """One sweep of feature 0's relative density around a base density."""

    base: float
    top: float  # largest relative density (the smallest is 1/8)
    points: int  # three per octave at full fidelity
    label: str


#: The paper's ~2.5× holds at base density 0.1 (S = 0.9, the intro figure's pentagon); the spec's 0.05 is
#: kept as a second sweep. See `Perturb.notes`.
SETUPS = {
    "base-0.1": Setup(0.1, 4.0, 16, "base density 0.1"),
    "base-0.05": Setup(0.05, 8.0, 19, "base density 0.05 (the spec's)"),
}


@register
class Perturb(Experiment):
    name = "perturb"
    title = "Perturbing one feature of the pentagon: a first-order phase change (n = 5, m = 2)"
    claim = (
        "Making one feature denser deforms the pentagon (its neighbours move away); making it about 2.5× sparser "
        "snaps the pentagon into two digons with that feature dropped — where the loss curves of the two "
        "geometries cross."
    )
    spec_ref = "§2.6.4(i), E7"
    notes = (
        "Feature 0's density is the base density × a relative factor on log-spaced values from 1/8 (three per "
        "octave); the others stay at the base; importance 1. 20 restarts per value with the notebook recipe "
        "(10,000 steps × 1024, lr 1e-3), all kept. Each restart is labelled pentagon (five features ‖W_i‖ > 0.5), "
        "digon (four features in two antipodal pairs, cos < −0.9, feature 0 not learned) or other. Losses are the "
        "population loss computed exactly over active sets (midpoint rule over values, `tmslab.population`), not "
        "sampled, so that nearby geometries can be ranked. The loss curves are each geometry's best loss per "
        "relative density; the crossing is interpolated in log relative density. The dashed curves are the exact "
        "optima: a regular pentagon and the square, each polished to the nearest critical point of the population "
        "loss (L-BFGS). Canonicalised: the varied feature (or the first learned one) points up, mirrored so the "
        "next learned feature lies on the right. The spec's 'relative density ≥ ~0.5' and '≤ ~0.3' are taken at "
        "face value (grid points ≥ 0.5 and ≤ 0.3).\n\n"
        "Choice of base density. The spec reads the paper's baseline as density 0.05; the sweep grid is unverified. "
        "At 0.05 the exact optima cross at a relative density of ≈ 0.27 (≈ 1/3.7), and training agrees (20,000 "
        "steps or no weight decay do not move it): the paper's '~2.5× sparser' cannot come from that baseline. At "
        "base density 0.1 — sparsity 0.9, the sparsity of the paper's intro pentagon — the exact crossing is ≈ 0.42 "
        "(≈ 1/2.4), the paper's number. The checks are therefore taken at base 0.1, with relative densities 1/8 to 4 "
        "so that feature 0 stays at density ≤ 0.4 as in the spec's grid: above ≈ 6× (density > 0.6) the exact optimum "
        "is no longer a pentagon (one feature partly drops). The spec's baseline 0.05 (1/8 to 8) is run too: its "
        "geometry checks, the E1b seed count and the agreement of the trained and exact crossings are checked there, "
        "and its crossing is reported."
        " D20: the denser-feature gap row is judged only where the best model is a pentagon (random init "
        "directions gave gaps of 78°)."
    )

    def sweeps(self, quick: bool) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "base": {
                    "n_features": 5,
                    "n_hidden": 2,
                    "density": setup.base,
                    "steps": 1_500 if quick else 10_000,
                    "batch_size": 512 if quick else 1024,
                    "eval_samples": 10_000 if quick else 50_000,
                },
                "grid": {"density_of": {"feature": VARIED, "relative": {
                    "log_range": [0.125, setup.top], "points": (setup.points + 2) // 3 if quick else setup.points}}},
                "restarts": 4 if quick else 20,
            }
            for name, setup in SETUPS.items()
        }

    def analyze(self, ctx: Context) -> Analysis:
        checks, figs, tables = [], [], {}
        for name, setup in SETUPS.items():
            c, f, t = self._analyze_setup(ctx, name, setup)
            checks += c
            figs += f
            tables[name] = t
        return Analysis(checks, figs, json_safe(tables))

    def _analyze_setup(self, ctx: Context, name: str, setup: Setup) -> tuple[list[Check], list[Any], dict[str, Any]]:
        g = load_grid(ctx, name)
        P, R = g.n_points, g.restarts
        loss = g.per_point(population_loss(g.W, g.b, g.importance, g.density))
        rel = (g.per_point(g.density)[:, 0, VARIED] / setup.base).numpy()
        order = np.argsort(rel)
        rel, loss = rel[order], loss[order]
        W = g.per_point(g.W)[order]
        geo = [geometry(W[p]) for p in range(P)]

        def best_of(kind: str | None) -> tuple[np.ndarray, list[int | None]]:
            vals, idx = np.full(P, np.nan), []
            for p in range(P):
                ks = [k for k in range(R) if kind is None or geo[p][k] == kind]
                k = min(ks, key=lambda k: loss[p, k].item()) if ks else None
                idx.append(k)
                if k is not None:
                    vals[p] = loss[p, k].item()
            return vals, idx

        pent, pent_idx = best_of(PENTAGON)
        dig, dig_idx = best_of(DIGON)
        _, best_idx = best_of(None)
        best_geo = [geo[p][best_idx[p]] for p in range(P)]
        cross = crossing(rel, pent, dig)  # the pentagon's loss falls below the digon's
        exact_pent, exact_dig = exact_optimum_curves(rel, setup.base, points=256 if ctx.quick else 512)
        exact_cross = crossing(rel, exact_pent, exact_dig)
        # the best-of-k transition: between the last digon and the first pentagon of the best solutions
        last_dig = max((rel[p] for p in range(P) if best_geo[p] == DIGON), default=math.nan)
        first_pent = min((rel[p] for p in range(P) if best_geo[p] == PENTAGON and rel[p] > last_dig), default=math.nan)
        transition = math.sqrt(last_dig * first_pent)
        step = float(np.median(np.diff(np.log(rel)))) if P > 1 else math.nan

        def steps_apart(a: float, b: float) -> float:
            return abs(math.log(a / b)) / step if math.isfinite(a * b * step) else math.nan

        Wb = torch.stack([W[p, best_idx[p]] for p in range(P)])
        norms = metrics.feature_norms(Wb)
        gaps = metrics.neighbour_gaps(Wb, VARIED)
        hi = [p for p in range(P) if rel[p] >= 0.5 - 1e-9]
        lo = [p for p in range(P) if rel[p] <= 0.3]
        denser = [p for p in range(P) if rel[p] > 1 + 1e-9]
        pent_hi = sum(best_geo[p] == PENTAGON for p in hi)
        dig_lo = sum(best_geo[p] == DIGON and norms[p, VARIED] < 0.1 for p in lo)
        # D20: the gaps only mean "neighbours pushed away" in a pentagon; random init directions have gaps > 72°
        # about as often as not (78° in our quick init), so a denser point whose best model is no pentagon fails.
        denser_pent = all(best_geo[p] == PENTAGON for p in denser)
        min_gap = float(np.nanmin(gaps[denser].numpy())) if denser and denser_pent else math.nan
        at = f"{setup.label}: "
        checks = [
            Check(at + "relative density ≥ 0.5: best solution is a pentagon (5 features ‖W_i‖ > 0.5)",
                  f"{pent_hi} of {len(hi)}", "all", pent_hi == len(hi) > 0, SRC),
            Check(at + "relative density > 1: best is a pentagon, smallest neighbour gap of the denser feature (°)",
                  min_gap, "pentagon, > 72", math.isfinite(min_gap) and min_gap > 72, SRC,
                  "the other features repel from the denser one; the spec's row is about the pentagon, so each "
                  "denser point's best model must be one (D20: NaN if not) — "
                  f"best geometries {[best_geo[p] for p in denser]}"),
            Check(at + "relative density ≤ 0.3: best is a square of two antipodal pairs, ‖W_0‖ < 0.1",
                  f"{dig_lo} of {len(lo)}", "all", dig_lo == len(lo) > 0, SRC),
            Check(at + "trained vs exact-optimum crossing: distance in grid steps (log scale)",
                  steps_apart(cross, exact_cross), "≤ 1", steps_apart(cross, exact_cross) <= 1 + 1e-9, SRC,
                  f"trained {cross:.3f}, exact optimum {exact_cross:.3f}: the trained fits reach the optimum's losses"),
        ]
        transition_checks = [
            within(at + "crossing of the pentagon and digon loss curves (relative density)", cross, 0.3, 0.5, SRC,
                   "paper: ~1/2.5 = 0.4"),
            within(at + "best-of-k transition (geometric mean of last digon and first pentagon)", transition,
                   0.3, 0.5, SRC),
        ]
        if name == "base-0.1":
            checks += transition_checks + [
                Check(at + "transition at the crossing: distance between them in grid steps (log scale)",
                      steps_apart(transition, cross), "≤ 1", steps_apart(transition, cross) <= 1 + 1e-9, SRC,
                      "first-order transition: the optimum switches where the two curves cross"),
            ]
        else:
            # §7.1 D4: the spec's first setting, kept visible with its evidence.
            checks += [superseded(c, f"§7.1 D4: the transition is checked at base density 0.1; at base {setup.base:g} "
                                     f"the exact optima cross at {exact_cross:.3f} (≈ 1/{1 / exact_cross:.1f}), so the "
                                     "paper's ~1/2.5 cannot come from this baseline")
                       for c in transition_checks]
            checks.append(at_least(at + "restarts reaching a pentagon at relative density 1", float(sum(
                k == PENTAGON for k in geo[int(np.argmin(np.abs(np.log(rel))))])), R / 2, SRC,
                "E1b: at least half of the seeds reach the pentagon at uniform density 0.05"))
        figs = self._figures(name, setup, rel, W, loss, geo, (pent, dig, exact_pent, exact_dig),
                             pent_idx, dig_idx, cross)
        counts = {f"{rel[p]:.3g}": {k: geo[p].count(k) for k in (PENTAGON, DIGON, OTHER)} for p in range(P)}
        tables = {
            "base_density": setup.base,
            "relative_density": rel.tolist(),
            "best_geometry": best_geo,
            "best_loss_pentagon": pent,
            "best_loss_digon": dig,
            "exact_loss_pentagon": exact_pent,
            "exact_loss_digon": exact_dig,
            "crossing": cross,
            "exact_crossing": exact_cross,
            "transition": transition,
            "geometry_counts": counts,
        }
        return checks, figs, tables

    @staticmethod
    def _figures(name, setup, rel, W, loss, geo, curves, pent_idx, dig_idx, cross) -> list[Any]:
        P, R = loss.shape
        pent, dig, exact_pent, exact_dig = curves
        figs = []
        for kind, idx in ((PENTAGON, pent_idx), (DIGON, dig_idx)):
            ps = [p for p in range(P) if idx[p] is not None]
            if not ps:
                continue
            Wc = canonicalise(torch.stack([W[p, idx[p]] for p in ps]))
            colour = np.zeros((len(ps), W.shape[-1]))
            colour[:, VARIED] = np.log2(rel[ps])
            figs.append(figure(f"{name}-{kind.split()[0]}-solutions", "arrows_2d", Wc, colour,
                               [f"×{rel[p]:.2g}" for p in ps], ncols=min(10, len(ps)),
                               title=f"{setup.label}: best {kind} solution per relative density of feature 0",
                               caption=f"Best {kind} fit at each relative density, canonicalised; colour = log2 "
                                       "relative density of each feature (the varied one is yellow when denser, dark "
                                       "when sparser)."))
        every = {k: ([], []) for k in (PENTAGON, DIGON, OTHER)}
        for p in range(P):
            for k in range(R):
                every[geo[p][k]][0].append(rel[p])
                every[geo[p][k]][1].append(loss[p, k].item())
        series: dict[str, Any] = {}
        dash = {}
        for label, ys, style in (("pentagon (best fit)", pent, None), ("digon (best fit)", dig, None),
                                 ("pentagon (exact optimum)", exact_pent, "dash"),
                                 ("digon (exact optimum)", exact_dig, "dash")):
            ok = np.isfinite(ys)
            if ok.any():
                series[label] = (rel[ok], ys[ok])
                if style:
                    dash[label] = style
        for k, (xs, ys) in every.items():
            if xs:
                series[f"{k}: every fit"] = (np.array(xs), np.array(ys))
                dash[f"{k}: every fit"] = "markers"
        vl = {f"crossing {cross:.2f}": cross} if math.isfinite(cross) else {}
        figs.append(figure(f"{name}-loss-per-geometry", "lines", None, series, xlabel="relative density of feature 0",
                           ylabel="loss (exact)", log_x=True, log_y=True, dash=dash, vlines=vl,
                           title=f"{setup.label}: the pentagon–digon transition is a loss-curve crossover",
                           caption="Each geometry's best loss against the relative density, every restart kept as a "
                                   "dot, and (dashed) the exact optimum of each geometry; the optimum switches where "
                                   "the curves cross (first-order transition)."))
        return figs
