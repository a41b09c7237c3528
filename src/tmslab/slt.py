"""Local learning coefficients of one-hot TMS models with devinterp (Chen et al. 2023, paper-spec §6.4, F5).

Optional: needs the `tmslab[slt]` extra (devinterp 1.3.x, whose generic `estimate_learning_coeff_with_summary`
takes any model, loader and evaluate function; devinterp 2.x expects token datasets and per-token losses).

The loss is the paper's: L = E‖x − f(x)‖², summed over the c outputs and averaged over samples (the same
convention as `theory.one_hot_loss`, whose H = 3c·L), so the estimate λ̂ = nβ(E_w[L_n(w)] − L_n(w*)) with
nβ = n/log n is on the scale of the paper's λ. Sampling is full-batch on n fixed one-hot samples: the initial
loss is then exact, not a multi-batch estimate whose noise nβ would amplify.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tmslab.config import ConfigError


class SLTExtraMissing(ConfigError):
    """devinterp is not installed."""


def require_devinterp() -> Any:
    """The devinterp module, or a one-line actionable error."""
    try:
        import devinterp.slt.sampler  # noqa: F401
        from devinterp.optim.sgld import SGLD  # noqa: F401
    except ImportError:
        raise SLTExtraMissing("LLC estimation needs devinterp 1.3.x: pip install 'tmslab[slt]'") from None
    import devinterp

    return devinterp


class OneHotTMS(nn.Module):
    """f(x) = ReLU(WᵀW x + b) with W [2, c], b [c] as parameters (float64), for devinterp's sampler."""

    def __init__(self, W: Tensor, b: Tensor) -> None:
        super().__init__()
        self.W = nn.Parameter(W.detach().clone().double())
        self.b = nn.Parameter(b.detach().clone().double())

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x @ (self.W.T @ self.W) + self.b)


def one_hot_data(n: int, c: int, seed: int) -> Tensor:
    """n samples x = t·e_i, i uniform over c features, t ~ U[0, 1] (the high-sparsity limit, §6.4)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(c, (n,), generator=g)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.zeros(n, c, dtype=torch.float64)
    x[torch.arange(n), idx] = t
    return x


def _evaluate(model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
    x = batch[0]
    return ((model(x) - x) ** 2).sum(-1).mean(), {}


@dataclass
class LLCEstimate:
    """One devinterp estimate: the mean and spread over chains, and the loss traces [chains, draws]."""

    llc: float
    llc_std: float
    init_loss: float
    loss_trace: Tensor
    lr: float
    localization: float
    n: int

    def plateaued(self, tol: float = 0.1) -> bool:
        """The chain-mean loss trace has levelled off: finite, above the start, and its last quarter's mean
        within `tol` of its third quarter's, relative to the rise (devinterp's calibration criterion)."""
        m = self.loss_trace.mean(0)
        if not bool(torch.isfinite(m).all()):
            return False
        q = len(m) // 4
        rise = float(m[-q:].mean()) - self.init_loss
        return rise > 0 and abs(float(m[-q:].mean() - m[-2 * q : -q].mean())) <= tol * rise


def estimate_llc(
    W: Tensor, b: Tensor, x: Tensor, lr: float, localization: float, chains: int = 4, draws: int = 400,
    burnin: int = 200, seed: int = 0,
) -> LLCEstimate:
    """λ̂ at (W [2, c], b [c]) on the samples x [n, c] with devinterp's SGLD (full batch, nβ = n/log n)."""
    require_devinterp()
    import warnings

    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    from torch.utils.data import DataLoader, TensorDataset

    n = x.shape[0]
    nbeta = n / math.log(n)
    model = OneHotTMS(W, b)
    loader = DataLoader(TensorDataset(x.double()), batch_size=n, shuffle=False)
    with torch.no_grad():
        init = float(_evaluate(model, (x.double(),))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # devinterp's deprecation and "more draws than batches" notices
        out = estimate_learning_coeff_with_summary(
            model, loader, evaluate=_evaluate, sampling_method=SGLD,
            optimizer_kwargs={"lr": lr, "localization": localization, "nbeta": nbeta},
            num_draws=draws, num_chains=chains, num_burnin_steps=burnin, init_loss=init, seed=seed, verbose=False,
        )  # fmt: skip
    trace = torch.as_tensor(out["loss/trace"], dtype=torch.float64)
    return LLCEstimate(float(out["llc/mean"]), float(out["llc/std"]), init, trace, lr, localization, n)


def calibrate(
    W: Tensor, b: Tensor, x: Tensor, lrs: list[float], localizations: list[float], **kwargs: Any
) -> tuple[LLCEstimate, list[LLCEstimate]]:
    """Sweep SGLD step size × localisation at one point (devinterp's recommendation): keep the settings whose
    loss trace plateaus, and among them the largest step (fastest mixing) with the weakest localisation (least
    bias). Returns (chosen, every estimate) — the traces are what to save and look at."""
    runs = [estimate_llc(W, b, x, lr, g, **kwargs) for g in localizations for lr in lrs]
    ok = [r for r in runs if r.plateaued()]
    if not ok:
        raise RuntimeError("no SGLD setting in the sweep gave a plateauing loss trace; widen the grid.")
    return max(ok, key=lambda r: (r.lr, -r.localization)), runs
