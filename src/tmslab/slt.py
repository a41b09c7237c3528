"""Local learning coefficients of one-hot TMS models with devinterp (Chen et al. 2023, paper-spec §6.4, F5).

Optional: needs the `tmslab[slt]` extra (devinterp 1.3.x, whose generic `estimate_learning_coeff_with_summary`
takes any model, loader and evaluate function; devinterp 2.x expects token datasets and per-token losses).

The loss is the paper's: L = E‖x − f(x)‖², summed over the c outputs (the convention of `theory.one_hot_loss`,
whose H = 3c·L). The learning coefficient does not depend on the loss's scale (a factor on L rescales the
posterior, not the volume exponent), but the estimate's localisation bias does: see `laplace_llc`. Sampling is
full batch — on n fixed one-hot samples (nβ = n/log n) or on the exact population loss (x = None, nβ given).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


class _FullBatch(torch.utils.data.Dataset):
    """A dataset of one item: the full batch (x,)."""

    def __init__(self, x: Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[Tensor]:
        return (self.x,)


def _first(items: list[Any]) -> Any:
    return items[0]


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
    n: int  # samples (0: the exact population loss)
    nbeta: float

    def plateaued(self, tol: float = 0.1) -> bool:
        """The chain-mean loss trace has levelled off: finite, above the start, and its last quarter's mean
        within `tol` of its third quarter's, relative to the rise (devinterp's calibration criterion)."""
        m = self.loss_trace.mean(0)
        if not bool(torch.isfinite(m).all()):
            return False
        q = len(m) // 4
        rise = float(m[-q:].mean()) - self.init_loss
        return rise > 0 and abs(float(m[-q:].mean() - m[-2 * q : -q].mean())) <= tol * rise


def _population_loss(model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
    from tmslab.theory import one_hot_loss

    return one_hot_loss(model.W, model.b), {}


def estimate_llc(
    W: Tensor,
    b: Tensor,
    x: Tensor | None,
    lr: float,
    localization: float,
    chains: int = 4,
    draws: int = 400,
    burnin: int = 200,
    seed: int = 0,
    nbeta: float | None = None,
) -> LLCEstimate:
    """λ̂ at (W [2, c], b [c]) with devinterp's SGLD: λ̂ = nβ(E_w[L(w)] − L(w*)).

    With samples x [n, c]: L is the empirical loss, full batch, nβ = n/log n unless given. With x = None: L is
    the exact population loss `theory.one_hot_loss` (the function whose learning coefficient the theory
    predicts, free of sampling noise), and nβ must be given; it then only sets the scale at which the
    posterior resolves the loss (large nβ: the quadratic directions resolve fully).
    """
    require_devinterp()
    import warnings

    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    from torch.utils.data import DataLoader

    if x is None:
        if nbeta is None:
            raise ValueError("nbeta is required when sampling the population loss (x = None).")
        n, evaluate, batch = 0, _population_loss, (torch.zeros(1, dtype=torch.float64),)
    else:
        n, evaluate, batch = x.shape[0], _evaluate, (x.double(),)
        nbeta = n / math.log(n) if nbeta is None else nbeta
    model = OneHotTMS(W, b)
    # One item, the whole batch, passed through as is: a TensorDataset + batch_size=n would index and collate
    # n rows per step (≈ 100× the cost of the 30-parameter model's forward pass).
    loader = DataLoader(_FullBatch(batch[0]), batch_size=1, collate_fn=_first)
    with torch.no_grad():
        init = float(evaluate(model, batch)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # devinterp's deprecation and "more draws than batches" notices
        out = estimate_learning_coeff_with_summary(
            model, loader, evaluate=evaluate, sampling_method=SGLD,
            optimizer_kwargs={"lr": lr, "localization": localization, "nbeta": nbeta},
            num_draws=draws, num_chains=chains, num_burnin_steps=burnin, init_loss=init, seed=seed, verbose=False,
        )  # fmt: skip
    trace = torch.as_tensor(out["loss/trace"], dtype=torch.float64)
    return LLCEstimate(float(out["llc/mean"]), float(out["llc/std"]), init, trace, lr, localization, n, nbeta)


def laplace_llc(hessian_eigenvalues: Tensor, nbeta: float, localization: float) -> float:
    """What λ̂ converges to for a quadratic loss with these Hessian eigenvalues h_i under localisation γ:
    Σ_i ½·nβh_i/(nβh_i + γ) (a Gaussian posterior). Equals (number of positive eigenvalues)/2 only when
    nβh_i ≫ γ: the gap is the localisation bias of the estimate, a diagnostic for the chosen (nβ, γ)."""
    h = hessian_eigenvalues[hessian_eigenvalues > 1e-7 * hessian_eigenvalues.abs().max()].double()
    return float(0.5 * (nbeta * h / (nbeta * h + localization)).sum())


def calibrate(
    W: Tensor, b: Tensor, x: Tensor | None, lrs: list[float], localizations: list[float], **kwargs: Any
) -> tuple[LLCEstimate, list[LLCEstimate]]:
    """Sweep SGLD step size × localisation at one point (devinterp's recommendation): keep the settings whose
    loss trace plateaus, and among them the largest step (fastest mixing) with the weakest localisation (least
    bias). Returns (chosen, every estimate) — the traces are what to save and look at."""
    runs = [estimate_llc(W, b, x, lr, g, **kwargs) for g in localizations for lr in lrs]
    ok = [r for r in runs if r.plateaued()]
    if not ok:
        raise RuntimeError("no SGLD setting in the sweep gave a plateauing loss trace; widen the grid.")
    return max(ok, key=lambda r: (r.lr, -r.localization)), runs


# ---- The Bayesian posterior as the number of samples grows (Chen et al. 2023 §5) ---------------------------------


class EmpiricalOneHotLoss:
    """The empirical loss L_n(w) = (1/n)·Σ_p ‖x_p − ReLU(WᵀW x_p + b)‖² of one-hot datasets, exactly, in O(c² log n)
    per evaluation (paper-spec §7.2 D15: the paper's MCMC ran on data, not on the population loss).

    `datasets` holds one dataset per posterior (replica): feature indices `idx` and magnitudes `t`, both [D, N],
    with `sizes` [D] the number of points of each (the first sizes[d] entries of row d). A one-hot point x = t·e_i
    makes output j equal ReLU(G_ji t + b_j), so the sum over the points of feature i of the squared error of output
    j is Σ over the t where G_ji t + b_j > 0 of ((G_ji − e) t + b_j)² plus Σ over the others of e·t² (e = 1 on the
    own output, else 0): per feature the t are sorted once, and the active set — one side of the root −b_j/G_ji —
    is a prefix or suffix, whose Σ1, Σt, Σt² are prefix sums. The gradient is exact almost everywhere (the active
    set changes only where a point's term is continuous). Calling it with `rows` [batch] evaluates theta [batch, 3c]
    (W [2, c] then b [c], flattened) on dataset rows[i] — the cross terms a replica exchange between two datasets
    needs.
    """

    def __init__(self, idx: Tensor, t: Tensor, sizes: Tensor, c: int) -> None:
        D, N = idx.shape
        self.c, self.sizes = c, sizes.to(torch.float64)
        valid = torch.arange(N)[None, :] < sizes[:, None]
        counts = torch.stack([((idx == i) & valid).sum(1) for i in range(c)], 1)  # [D, c]
        M = int(counts.max()) if counts.numel() else 0
        srt = torch.full((D, c, M), math.inf, dtype=torch.float64)
        for i in range(c):
            vals = torch.where((idx == i) & valid, t.double(), torch.full_like(t, math.inf, dtype=torch.float64))
            srt[:, i] = vals.sort(1).values[:, :M]
        finite = torch.isfinite(srt)
        z = torch.zeros(D, c, 1, dtype=torch.float64)
        zero = torch.zeros_like(srt)
        # prefix[..., m] = Σ over the m smallest t of (1, t, t²): [D, c, M + 1, 3]
        powers = torch.stack([finite.double(), torch.where(finite, srt, zero), torch.where(finite, srt**2, zero)], -1)
        self.prefix = torch.cat([z[..., None].expand(D, c, 1, 3), powers.cumsum(2)], 2)
        self.sorted = srt.contiguous()
        self.total = self.prefix[:, :, -1]  # [D, c, 3]

    @classmethod
    def sample(cls, sizes: list[int] | Tensor, c: int, seeds: list[int], nested: bool = True) -> EmpiricalOneHotLoss:
        """One dataset per seed and size, rows seed-major (row = seed_index·len(sizes) + size_index), each point drawn
        like `one_hot_data` (feature uniform over c, magnitude U[0, 1]).

        nested: each seed draws one stream of max(sizes) points and its dataset of size n is the stream's first n
        points — a learner seeing more data. Every dataset is still n i.i.d. points, so the expected posterior at
        each n is the same as with independent draws; what changes is that neighbouring n share their data, which
        a replica exchange between them needs (their posteriors overlap). nested=False: an independent stream per
        (seed, size), from generator seed·100,003 + size_index."""
        sizes = torch.as_tensor(sizes, dtype=torch.long)
        N = int(sizes.max())
        idx, t = [], []
        for seed in seeds:
            for r in range(len(sizes)):
                if nested and r > 0:
                    idx.append(idx[-1])
                    t.append(t[-1])
                    continue
                g = torch.Generator().manual_seed(seed if nested else seed * 100_003 + r)
                idx.append(torch.randint(c, (N,), generator=g))
                t.append(torch.rand(N, generator=g, dtype=torch.float64))
        return cls(torch.stack(idx), torch.stack(t), sizes.repeat(len(seeds)), c)

    def __call__(self, theta: Tensor, rows: Tensor) -> Tensor:
        c = self.c
        W, b = theta[:, : 2 * c].view(-1, 2, c), theta[:, 2 * c :]
        G = W.transpose(1, 2) @ W  # [batch, j (output), i (active feature)]
        beta = b[:, :, None].expand_as(G)
        e = torch.eye(c, dtype=torch.float64)
        safe = torch.where(G == 0, torch.ones_like(G), G)
        root = (-beta / safe).detach()
        srt = self.sorted[rows]  # [batch, i, M]
        below = torch.searchsorted(srt, root.transpose(1, 2).contiguous()).transpose(1, 2)  # [batch, j, i]: #t < root
        feature = torch.arange(c)[None, None, :]
        at = self.prefix[rows[:, None, None], feature, below]  # [batch, j, i, 3]: Σ (1, t, t²) over t < root
        tot = self.total[rows][:, None].expand(-1, c, -1, -1)  # [batch, j, i, 3]
        pos, neg = (G > 0)[..., None], (G < 0)[..., None]
        flat_on = ((G == 0) & (beta > 0))[..., None]
        active = torch.where(pos, tot - at, torch.where(neg, at, torch.where(flat_on, tot, torch.zeros_like(tot))))
        a = G - e
        per = a**2 * active[..., 2] + 2 * a * beta * active[..., 1] + beta**2 * active[..., 0]
        per = per + e * (tot[..., 2] - active[..., 2])
        return per.sum((1, 2)) / self.sizes[rows]


@dataclass
class PosteriorDraws:
    """Draws of the posteriors p_n(w) ∝ φ(w)·exp(−n·L(w)) at every n of a ladder.

    `theta` [draws, ladders, rungs, params]: `ladders` independent replica-exchange runs, each with one replica
    per n (`rungs`); `accept` the mean MALA acceptance after burn-in; `swap_rate` [rungs − 1] the acceptance of
    exchanges between neighbouring n."""

    n: Tensor
    theta: Tensor
    accept: float
    swap_rate: Tensor


def replica_exchange(
    loss: Callable[..., Tensor],
    dim: int,
    ns: Tensor,
    ladders: int = 8,
    steps: int = 4000,
    burnin: int = 2000,
    thin: int = 80,
    prior_std: float = 1.0,
    seed: int = 0,
    per_replica: bool = False,
    init: Tensor | None = None,
) -> PosteriorDraws:
    """Sample p_n(w) ∝ N(w; 0, prior_std²)·exp(−n·L(w)) for every n in `ns` at once: one Metropolis-adjusted
    Langevin (MALA) chain per n, and after every step an exchange of the states of neighbouring n (alternately
    the even and the odd pairs) — parallel tempering with n as the inverse temperature. The small-n posteriors are
    broad and cross between basins freely; the exchanges carry those crossings up to large n, where a single chain
    would stay in the basin it started in. Step sizes adapt towards 57% acceptance during burn-in, then stay fixed
    (the chain is then exactly reversible for its target).

    `loss` maps theta [batch, dim] to [batch] and must be differentiable. With `per_replica`, it is
    `loss(theta, rows)`: replica r = ladder·len(ns) + rung has its own loss (its own dataset, e.g.
    `EmpiricalOneHotLoss`), and an exchange of states w_i, w_j is accepted with probability
    min(1, exp(n_i L_i(w_i) + n_j L_j(w_j) − n_i L_i(w_j) − n_j L_j(w_i))) — for one shared L this is
    exp((n_i − n_j)(L(w_i) − L(w_j))). `init` [ladders·rungs, dim]: the starting states (default: prior draws).
    """
    g = torch.Generator().manual_seed(seed)
    ns = ns.double()
    rungs = len(ns)
    n = ns.repeat(ladders)  # replica r = ladder·rungs + rung
    count = n.shape[0]
    own = torch.arange(count)

    def value(theta: Tensor, rows: Tensor) -> Tensor:
        return loss(theta, rows) if per_replica else loss(theta)

    def loss_and_grad(theta: Tensor) -> tuple[Tensor, Tensor]:
        theta = theta.detach().requires_grad_(True)
        L = value(theta, own)
        (grad,) = torch.autograd.grad(L.sum(), theta)
        return L.detach(), grad

    def energy(theta: Tensor, L: Tensor, grad_L: Tensor) -> tuple[Tensor, Tensor]:
        """−log p_n up to a constant, and its gradient: cheap given L and ∇L, which move with the state."""
        return n * L + 0.5 * (theta**2).sum(-1) / prior_std**2, n[:, None] * grad_L + theta / prior_std**2

    theta = prior_std * torch.randn(count, dim, generator=g, dtype=torch.float64) if init is None else init.double()
    L, grad_L = loss_and_grad(theta)
    E, grad = energy(theta, L, grad_L)
    eps = 0.2 / n  # the loss's curvature grows ∝ n; adapted below
    kept, accepted = [], 0.0
    swaps, tries = torch.zeros(rungs - 1, dtype=torch.float64), torch.zeros(rungs - 1, dtype=torch.float64)
    for step in range(steps):
        noise = torch.randn(count, dim, generator=g, dtype=torch.float64)
        prop = theta - eps[:, None] * grad + (2 * eps).sqrt()[:, None] * noise
        L2, grad_L2 = loss_and_grad(prop)
        E2, grad2 = energy(prop, L2, grad_L2)
        forward = ((prop - theta + eps[:, None] * grad) ** 2).sum(-1) / (4 * eps)
        backward = ((theta - prop + eps[:, None] * grad2) ** 2).sum(-1) / (4 * eps)
        u = torch.rand(count, generator=g, dtype=torch.float64)
        ok = u.log() < E - E2 + forward - backward
        theta, grad_L = torch.where(ok[:, None], prop, theta), torch.where(ok[:, None], grad_L2, grad_L)
        L = torch.where(ok, L2, L)
        if step < burnin:
            eps = eps * torch.exp(0.05 * (ok.double() - 0.574))
        else:
            accepted += float(ok.double().mean())
        k = torch.arange(step % 2, rungs - 1, 2)
        i = (torch.arange(ladders)[:, None] * rungs + k).flatten()
        j = i + 1
        u = torch.rand(len(i), generator=g, dtype=torch.float64)
        if per_replica:
            with torch.no_grad():
                Lij, Lji = value(theta[j], i), value(theta[i], j)  # w_j under i's data, w_i under j's
            log_ratio = n[i] * (L[i] - Lij) + n[j] * (L[j] - Lji)
        else:
            log_ratio = (n[i] - n[j]) * (L[i] - L[j])
        swap = u.log() < log_ratio
        tries[k] += ladders
        swaps.index_add_(0, k.repeat(ladders), swap.double())
        order = torch.arange(count)
        order[i[swap]], order[j[swap]] = j[swap], i[swap]
        theta, L, grad_L = theta[order], L[order], grad_L[order]  # a state keeps its loss; its n changes
        if per_replica and bool(swap.any()):
            L, grad_L = loss_and_grad(theta)  # a state that moved now sees its new replica's data
        E, grad = energy(theta, L, grad_L)
        if step >= burnin and (step - burnin) % thin == thin - 1:
            kept.append(theta.view(ladders, rungs, dim).clone())
    return PosteriorDraws(ns, torch.stack(kept), accepted / max(1, steps - burnin), swaps / tries.clamp(min=1))


def descend(loss: Callable[[Tensor], Tensor], theta: Tensor, steps: int = 1500, lr: float = 0.02) -> Tensor:
    """Each row of `theta` [batch, dim] moved downhill on `loss` by Adam: the local minimum whose basin a
    posterior draw lies in (how draws are assigned to phases)."""
    x = theta.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss(x).sum().backward()
        opt.step()
    return x.detach()
