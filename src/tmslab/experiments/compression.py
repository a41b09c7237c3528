"""§2.13 (E19): nonlinear compression beats linear compression.

Two dense values x, y ∈ [0, 1) are stored in one number t = (⌊Zx⌋ + y)/Z and decoded as x' = (⌊Zt⌋ + ½)/Z,
y' = frac(Zt); every floor's jump is replaced by a linear ramp of width ε, so the scheme is a small ReLU
network. Even ε = 0.1, Z = 3 beats the best linear compression (summed MSE 1/12).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tmslab import theory
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, all_within, at_most, figure, within

SRC = "§2.13, E19"
ZS = [2, 3, 4, 6]
MC_SEED = 13


def relu_ramp_floor(u: Tensor, Z: int, width: float) -> Tensor:
    """⌊u⌋ on [0, Z) with each jump j = 1..Z−1 a linear ramp of `width` centred on j, written as a ReLU layer:
    two ReLUs per jump, ReLU((u−j)/w + ½) − ReLU((u−j)/w − ½) (the paper's count of 2 ReLUs per segment)."""
    j = torch.arange(1, Z, dtype=torch.float64)
    z = (u[..., None] - j) / width
    return (torch.relu(z + 0.5) - torch.relu(z - 0.5)).sum(-1)


def relu_codec_mse(Z: int, eps: float, n_samples: int, seed: int = MC_SEED) -> tuple[float, float]:
    """(mean, standard error) of the summed squared error of the ReLU-network codec on U[0,1)² samples."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n_samples, generator=g, dtype=torch.float64), torch.rand(n_samples, generator=g,
                                                                                dtype=torch.float64)
    w = Z * eps
    t = (relu_ramp_floor(Z * x, Z, w) + y) / Z
    q = relu_ramp_floor(Z * t, Z, w)
    err = (x - (q + 0.5) / Z) ** 2 + (y - (Z * t - q)) ** 2
    return float(err.mean()), float(err.std() / math.sqrt(n_samples))


@register
class NonlinearCompression(Experiment):
    name = "nonlinear-compression"
    title = "Nonlinear compression beats linear compression (appendix)"
    claim = (
        "Storing two dense values in one as t = (⌊Zx⌋ + y)/Z, with the discontinuities replaced by ramps of width ε, "
        "has lower error than any linear compression, already at ε = 0.1, Z = 3."
    )
    spec_ref = "§2.13, E19"
    notes = (
        "No training: the scheme is evaluated in closed form, so every check here is a sanity check (paper-spec "
        "§7.1 D9), not a reproduced claim. Our reading (theory.compression_mse): every floor, in "
        "the encoder ⌊Zx⌋ and the decoder ⌊Zt⌋, becomes a linear ramp of width ε (in units of x and t, so ε ≤ 1/Z) "
        "centred on the jump; x is decoded to the bin middle. The MSE is summed over x and y, on dense U[0,1)² by "
        "midpoint integration on a 1200² grid (quick: 240², 6 values of ε). Independently, the same codec written "
        "as an explicit ReLU network (2 ReLUs per ramp) is evaluated by Monte Carlo (10^6 samples; quick 10^5) at "
        "Z = 3, ε = 0.1. Z ∈ {2, 3, 4, 6}, ε on 12 points from 0 to 1/Z."
    )

    def fidelity(self, quick: bool) -> str:
        grid = 240 if quick else 1200
        return (f"no training: the codec's MSE by midpoint integration on a {grid}² grid of (x, y), plus a "
                "Monte-Carlo check of the ReLU-network version")

    def analyze(self, ctx: Context) -> Analysis:
        grid = 240 if ctx.quick else 1200
        n_mc = 100_000 if ctx.quick else 1_000_000
        keep = theory.linear_compression_mse("keep-one", grid)
        avg = theory.linear_compression_mse("average", grid)
        curves, limits = {}, []
        for Z in ZS:
            k = 6 if ctx.quick else 12
            eps = [i / ((k - 1) * Z) for i in range(k)]
            curves[f"Z = {Z}"] = (eps, [theory.compression_mse(Z, e, grid) for e in eps])
            limits.append(curves[f"Z = {Z}"][1][0] * 12 * Z**2)
        z3 = theory.compression_mse(3, 0.1, grid)
        mc, se = relu_codec_mse(3, 0.1, n_mc)
        checks: list[Check] = [
            within("linear baseline, keep one value (summed MSE)", keep, 1 / 12 - 1e-4, 1 / 12 + 1e-4, SRC,
                   "[D] 1/12; midpoint rule on the grid is exact to O(1/grid²)"),
            within("linear baseline, the average (summed MSE)", avg, 1 / 12 - 1e-4, 1 / 12 + 1e-4, SRC, "[D] 1/12"),
            all_within("ε → 0 MSE × 12Z² for Z = 2, 3, 4, 6", limits, 0.999, 1.001, SRC,
                       "[D] exact quantisation of x with mid-bin decoding: 1/(12Z²); grid a multiple of Z"),
            at_most("Z = 3, ε = 0.1: summed MSE", z3, 1 / 12, SRC, "[P] beats linear compression (1/12)"),
            within("ReLU-network codec, Monte Carlo − closed form (Z = 3, ε = 0.1), in standard errors",
                   (mc - z3) / se, -4, 4, SRC, "an independent implementation of the same scheme"),
        ]
        for c in checks:  # closed forms and their Monte-Carlo cross-check: nothing trained (§7.1 D9)
            c.kind = "sanity"
        figs = [
            figure("mse-vs-eps", "lines", None, curves, xlabel="ramp width ε", ylabel="summed MSE",
                   log_y=True, hlines={"linear compression (keep one / average) 1/12": 1 / 12},
                   caption="Summed MSE of the nonlinear codec against the ramp width ε, one curve per Z; every point "
                           "below the dotted line beats linear compression."),
        ]
        tables = {"mse": {k: [[round(e, 5), round(v, 6)] for e, v in zip(*c, strict=True)] for k, c in curves.items()},
                  "z3_eps0.1": {"closed_form": z3, "relu_monte_carlo": mc, "standard_error": se},
                  "linear": {"keep_one": keep, "average": avg}}
        return Analysis(checks, figs, tables)
