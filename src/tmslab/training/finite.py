"""Training on finite datasets (Henighan et al. 2023, paper-spec §6.1): full-batch AdamW on T samples.

Each instance k gets its own dataset of T_k samples, drawn once (seed + k, on a stream separate from the
initialisation) and optionally rescaled to unit norm. The data are ~99% zeros, so they are held in
coordinate form — (point, feature, value) triples, `SparseDataset` — never as a dense T × n tensor, and
saved with the run in that form (io.DATASET) so every metric can be recomputed from disk.

The loss and its gradient are written out by hand. With z = WᵀW x + b and r = ReLU(z), the paper's
L = (1/T) Σ_t Σ_i (x_ti − r_ti)² splits into a dense part Σ r² over every (point, feature) and a sparse
correction Σ (x² − 2 x r) over the active entries; ∂L/∂z is (2/T)·r densely plus −(2/T)·x·1[z > 0] on the
active entries. Two implementations: a fused numba pass per data point (training._finite_kernel, the default;
it visits only the features that can fire at that point) and a PyTorch one — batched matmuls in cache-sized
chunks with index gathers and index_add_ for the sparse part — used where numba is missing. The gradient is
handed to torch.optim.AdamW, so the optimiser is PyTorch's own; both paths and a whole training run are
tested against autograd on the dense model (tests/test_finite.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tmslab.config import EVAL_SEED, TrainConfig
from tmslab.models import ToyModel

#: Offset of the data streams from the init seeds (ToyModel.reset_parameters uses seed·7 and seed·7 + 1).
DATA_STREAM = 1_000_003

#: Elements of one dense chunk [instances, features, points]: ≈ 1 MiB of float32, so a chunk's six passes
#: (matmul, ReLU, square-sum, two matmuls, row sum) stay in cache.
CHUNK_ELEMENTS = 1 << 18

#: Points sampled per block when drawing a dataset, bounding the dense Bernoulli draw to ≈ 16 MiB.
SAMPLE_ELEMENTS = 1 << 22


@dataclass
class SparseDataset:
    """Datasets of several instances in coordinate form; the points of instance k are the
    `sizes[k]` consecutive global point indices starting at `offsets[k]`."""

    sizes: Int[Tensor, " instances"]
    row: Int[Tensor, " nnz"]
    """Global point index of each non-zero."""
    col: Int[Tensor, " nnz"]
    """Feature index of each non-zero."""
    value: Float[Tensor, " nnz"]
    n_features: int

    @property
    def n_instances(self) -> int:
        return int(self.sizes.numel())

    @property
    def offsets(self) -> Int[Tensor, " instances"]:
        return torch.cumsum(self.sizes, 0) - self.sizes

    @property
    def n_points(self) -> int:
        return int(self.sizes.sum())

    def point_instance(self) -> Int[Tensor, " points"]:
        return torch.repeat_interleave(torch.arange(self.n_instances, device=self.sizes.device), self.sizes)

    def to(self, device: torch.device | str) -> SparseDataset:
        """The same datasets on `device` (the PyTorch path trains on the GPU with them)."""
        return SparseDataset(self.sizes.to(device), self.row.to(device), self.col.to(device), self.value.to(device),
                             self.n_features)

    def instance(self, k: int) -> SparseDataset:
        """Instance k's dataset alone (its points renumbered from 0)."""
        start, size = int(self.offsets[k]), int(self.sizes[k])
        keep = (self.row >= start) & (self.row < start + size)
        return SparseDataset(self.sizes[k : k + 1].clone(), self.row[keep] - start, self.col[keep],
                             self.value[keep], self.n_features)

    def dense(self, k: int) -> Float[Tensor, "points features"]:
        """Instance k's dataset as a dense [T, n] tensor — for tests and small T only."""
        one = self.instance(k)
        x = torch.zeros(int(one.sizes[0]), self.n_features)
        x[one.row, one.col] = one.value
        return x

    def tensors(self) -> dict[str, Tensor]:
        return {"sizes": self.sizes, "row": self.row, "col": self.col, "value": self.value,
                "n_features": torch.tensor([self.n_features])}

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> SparseDataset:
        missing = sorted({"sizes", "row", "col", "value", "n_features"} - set(t))
        if missing:
            raise ValueError(f"a sparse dataset needs tensors sizes, row, col, value, n_features; missing {missing}.")
        return cls(t["sizes"].long(), t["row"].long(), t["col"].long(), t["value"].float(), int(t["n_features"][0]))


def concat(parts: list[SparseDataset]) -> SparseDataset:
    """Datasets of several instances, in order, as one."""
    shift = 0
    rows = []
    for p in parts:
        rows.append(p.row + shift)
        shift += p.n_points
    return SparseDataset(torch.cat([p.sizes for p in parts]), torch.cat(rows), torch.cat([p.col for p in parts]),
                         torch.cat([p.value for p in parts]), parts[0].n_features)


def sample_dataset(
    size: int, density: Float[Tensor, " features"], seed: int, unit_norm: bool = False
) -> SparseDataset:
    """T = `size` samples of §1.1's distribution (x_i = 0 with probability 1 − density_i, else U[0, 1)), drawn
    once from `seed` in blocks of points so that no dense [T, n] tensor exists; with `unit_norm` each sample
    is rescaled to ‖x‖ = 1 (§6.1; an all-zero sample stays zero)."""
    n = density.numel()
    g = torch.Generator().manual_seed(seed)
    block = max(1, SAMPLE_ELEMENTS // n)
    rows, cols = [], []
    for start in range(0, size, block):
        b = min(block, size - start)
        # The notebook keeps a feature where rand <= density (§1.1 [NB]).
        r, c = torch.nonzero(torch.rand(b, n, generator=g) <= density, as_tuple=True)
        rows.append(r + start)
        cols.append(c)
    row, col = torch.cat(rows), torch.cat(cols)
    value = torch.rand(row.numel(), generator=g)
    if unit_norm:
        norm2 = torch.zeros(size).index_add_(0, row, value**2)
        value = value / norm2.sqrt()[row]
    return SparseDataset(torch.tensor([size]), row, col, value, n)


def datasets(config: TrainConfig) -> SparseDataset:
    """Every instance's training set: configuration c's size and density, drawn from seed + k."""
    parts = []
    for k in range(config.n_instances):
        c = k // config.restarts
        parts.append(sample_dataset(config.config_dataset_size(c), torch.tensor(config.config_density(c)),
                                    DATA_STREAM + config.instance_seed(k), config.dataset_unit_norm))
    return concat(parts)


def test_datasets(config: TrainConfig, samples: int | None = None) -> SparseDataset:
    """Fresh test samples: `samples` (default config.eval_samples) per configuration, drawn with the fixed
    evaluation seed and shared by the configuration's restarts (paired comparisons, as `training.evaluate`)."""
    samples = config.eval_samples if samples is None else samples
    per_config = [sample_dataset(samples, torch.tensor(config.config_density(c)), EVAL_SEED + c,
                                 config.dataset_unit_norm) for c in range(config.n_configs)]
    return concat([per_config[k // config.restarts] for k in range(config.n_instances)])


def _groups(sizes: Tensor) -> list[tuple[int, int, int]]:
    """(first instance, last instance + 1, T) of each run of consecutive instances with equal T."""
    out: list[tuple[int, int, int]] = []
    for k, t in enumerate(sizes.tolist()):
        if out and out[-1][2] == t:
            out[-1] = (out[-1][0], k + 1, t)
        else:
            out.append((k, k + 1, t))
    return out


class _Layout:
    """Index tensors of a dataset, computed once and reused every step: the PyTorch path's on `device` (the
    weights' device), the compiled kernel's as CPU arrays."""

    def __init__(self, data: SparseDataset, device: torch.device | str = "cpu") -> None:
        data = data.to("cpu")
        order = torch.argsort(data.row, stable=True)  # CSR: each point's non-zeros consecutive
        data = SparseDataset(data.sizes, data.row[order], data.col[order], data.value[order], data.n_features)
        self.n = data.n_features
        self.groups = _groups(data.sizes)
        self.offsets = data.offsets.tolist()
        self.data = data.to(device)
        self.inst = self.data.point_instance()[self.data.row]  # instance of each non-zero
        self.flat = self.inst * self.n + self.data.col  # its row in the [instances·n, hidden] view of Wᵀ
        self.inv_size = 1.0 / self.data.sizes.clamp_min(1).to(torch.float32)
        # The compiled kernel's inputs: CSR row pointers and work items of ≤ ITEM_POINTS points of one instance.
        counts = torch.bincount(data.row, minlength=data.n_points)
        self.indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]).numpy()
        self.col, self.value = data.col.numpy(), data.value.numpy()
        sizes = data.sizes.tolist()
        starts = [(k, s, min(s + ITEM_POINTS, o + t)) for k, (o, t) in enumerate(zip(self.offsets, sizes, strict=True))
                  for s in range(o, o + t, ITEM_POINTS)]
        self.items = [torch.tensor([it[c] for it in starts], dtype=torch.long).numpy() for c in range(3)]
        # Threads pay off only on large datasets (≈ 10⁷ feature visits per step).
        self.parallel = data.n_points * data.n_features >= PARALLEL_ELEMENTS


#: Points × features per step above which the compiled kernel runs in parallel.
PARALLEL_ELEMENTS = 1 << 23

#: Points per work item of the compiled kernel (items run in parallel; each has its own gradient buffer).
ITEM_POINTS = 256


def loss_and_grad(
    W: Float[Tensor, "instances hidden features"],
    b: Float[Tensor, "instances features"],
    layout: _Layout,
    grad: bool = True,
    engine: str = "auto",
) -> tuple[Float[Tensor, " instances"], Tensor | None, Tensor | None]:
    """(per-instance L = (1/T) Σ_t Σ_i (x_ti − ReLU(WᵀW x_t + b)_i)², ∂ΣL/∂W, ∂ΣL/∂b) of the ReLU-output model.

    engine: "numba" (the fused kernel, training._finite_kernel; CPU), "torch" (chunked batched matmuls, on the
    weights' device: the GPU path), or "auto" (numba for CPU weights where installed, else torch)."""
    if W.device.type == "cpu" and (engine == "numba" or (engine == "auto" and _kernel() is not None)):
        return _loss_and_grad_numba(W, b, layout, grad)
    return _loss_and_grad_torch(W, b, layout, grad)


def _kernel() -> Any:
    try:
        from tmslab.training import _finite_kernel
    except ImportError:  # pragma: no cover - numba is a dependency; the PyTorch path covers its absence
        return None
    return _finite_kernel


def _loss_and_grad_numba(W: Tensor, b: Tensor, layout: _Layout, grad: bool) -> tuple[Tensor, Any, Any]:
    k, m, n = W.shape
    W64, b64 = W.detach().double(), b.detach().double()
    # Feature i can fire (z > 0) only where ‖h‖ > −b_i/‖W_i‖; sorted, so each point visits a prefix.
    # Not W64.norm(dim=1): PyTorch's CPU norm over this short middle dimension costs ≈ 18 ms per step at 60
    # instances × 1,000 features, 50× this; the last-bit difference is inside the kernel's 1e-6 guard.
    norms = W64.square().sum(1).sqrt()
    tau = torch.where(b64 >= 0, -math.inf, -b64 / norms).nan_to_num(posinf=math.inf)
    tau, perm = tau.sort(dim=-1, stable=True)
    pos = torch.empty_like(perm).scatter_(1, perm, torch.arange(n).expand(k, n).contiguous())
    Wp = W64.gather(2, perm[:, None, :].expand(k, m, n)).contiguous()  # [instances, hidden, sorted features]
    bp = b64.gather(1, perm).contiguous()
    Wt = W64.transpose(1, 2).contiguous()  # [instances, features, hidden]: the sparse gather of h
    import numba

    threads = numba.get_num_threads()
    # Small datasets run on one thread: on a busy 2-core machine a parallel region waits for a descheduled
    # thread at every step.
    numba.set_num_threads(threads if layout.parallel else 1)
    try:
        loss, gWp, gbp = (torch.from_numpy(a) for a in _kernel().loss_and_grad_items(
            Wp.numpy(), bp.numpy(), Wt.numpy(), pos.numpy(), tau.contiguous().numpy(), *layout.items,
            layout.indptr, layout.col, layout.value, grad))
    finally:
        numba.set_num_threads(threads)
    inv = layout.inv_size.double()
    loss = (loss * inv).float()
    if not grad:
        return loss, None, None
    # Back to the original feature order; the kernel accumulates ∂/∂z ÷ (2/T).
    scale = 2 * inv
    gW = torch.empty_like(gWp).scatter_(2, perm[:, None, :].expand(k, m, n), gWp)
    gb = torch.empty_like(gbp).scatter_(1, perm, gbp)
    return loss, (gW * scale[:, None, None]).float(), (gb * scale[:, None]).float()


def _loss_and_grad_torch(W: Tensor, b: Tensor, layout: _Layout, grad: bool) -> tuple[Tensor, Any, Any]:
    data = layout.data
    k, m, n = W.shape
    Wt = W.transpose(1, 2).contiguous()  # [instances, features, hidden]
    Wflat = Wt.view(k * n, m)
    # h_t = Σ_i W_i x_ti: a sparse gather, the hidden vectors of every point.
    dev = W.device
    h = torch.zeros(data.n_points, m, device=dev).index_add_(0, data.row, Wflat[layout.flat] * data.value[:, None])
    loss = torch.zeros(k, device=dev)
    gWdec = torch.zeros(k, n, m, device=dev) if grad else None
    gh = torch.zeros(data.n_points, m, device=dev) if grad else None
    gb = torch.zeros(k, n, device=dev) if grad else None
    for first, last, size in layout.groups:
        if size == 0:
            continue
        start = layout.offsets[first]
        H = h[start : start + (last - first) * size].view(last - first, size, m)
        Wg, bg = Wt[first:last], b[first:last, :, None]
        step = max(1, CHUNK_ELEMENTS // ((last - first) * n))
        for t0 in range(0, size, step):
            Hc = H[:, t0 : t0 + step]
            R = torch.baddbmm(bg, Wg, Hc.transpose(1, 2)).relu_()  # [group, features, points]
            loss[first:last] += torch.linalg.vector_norm(R, dim=(1, 2)) ** 2
            if grad:
                gWdec[first:last] += torch.bmm(R, Hc)
                gh[start:start + (last - first) * size].view(last - first, size, m)[:, t0 : t0 + step] += (
                    torch.bmm(R.transpose(1, 2), Wg))
                gb[first:last] += R.sum(-1)
    # Sparse correction on the active entries: (x − r)² − r² = x² − 2xr.
    z = (Wflat[layout.flat] * h[data.row]).sum(-1) + b.reshape(-1)[layout.flat]
    r = z.clamp_min(0)
    loss.index_add_(0, layout.inst, data.value**2 - 2 * data.value * r)
    loss = loss * layout.inv_size
    if not grad:
        return loss, None, None
    # ∂L/∂z: (2/T)·r densely (accumulated unscaled above), −(2/T)·x·1[z > 0] on the active entries.
    scale = 2 * layout.inv_size
    gWdec *= scale[:, None, None]
    gh *= scale[data.point_instance()][:, None]
    gb *= scale[:, None]
    ga = -scale[layout.inst] * data.value * (z > 0)
    gWflat = gWdec.view(k * n, m)
    gWflat.index_add_(0, layout.flat, ga[:, None] * h[data.row])
    gh.index_add_(0, data.row, ga[:, None] * Wflat[layout.flat])
    gb.view(-1).index_add_(0, layout.flat, ga)
    # The encoder use of the tied W: ∂h_t/∂W_i = x_ti.
    gWflat.index_add_(0, layout.flat, data.value[:, None] * gh[data.row])
    return loss, gWdec.transpose(1, 2).contiguous(), gb


def hidden_vectors(W: Float[Tensor, "instances hidden features"], data: SparseDataset, k: int) -> Tensor:
    """h_t = W x_t of instance k's points, [T, hidden] (for D_X and the data-point geometry, §6.1)."""
    one = data.instance(k)
    Wk = W[k].double()
    return torch.zeros(int(one.sizes[0]), W.shape[1], dtype=torch.float64).index_add_(
        0, one.row, Wk[:, one.col].T * one.value.double()[:, None])


def losses(W: Tensor, b: Tensor, data: SparseDataset) -> Float[Tensor, " instances"]:
    """Per-instance L of saved weights on a dataset (train loss on the run's dataset, test loss on fresh ones)."""
    return loss_and_grad(W.float(), b.float(), _Layout(data), grad=False)[0]


def train_finite(
    model: ToyModel,
    config: TrainConfig,
    hook: Callable[[int, ToyModel, Tensor], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[SparseDataset, Float[Tensor, " instances"]]:
    """Train `model` (relu-output, initialised) in place with full-batch AdamW on each instance's dataset:
    (the datasets, the final per-instance training loss). `hook` as in training.reference."""
    data = datasets(config)
    layout = _Layout(data, model.W.device)  # on a GPU the PyTorch path runs there
    threads = torch.get_num_threads()
    # The work is in the compiled kernel; PyTorch's own ops here are small, and intra-op threads would only
    # synchronise (≈10× slower on a busy 2-core machine, as for the reference loop's small batches).
    torch.set_num_threads(1)
    # AdamW's second moment of a feature that no data point reaches decays by β₂ = 0.999 per step; from a small
    # start it enters the subnormal range within the paper's 50,000 steps, and arithmetic on subnormals is slow:
    # an AdamW step on [12, 2, 1000] took 3.0 ms with subnormal moments, 0.69 ms with normal ones and 0.89 ms
    # with them flushed to zero. Flushing changes no weight (such moments move W by < 1e-35·lr).
    flushed = flushing_subnormals()
    torch.set_flush_denormal(True)
    try:
        return data, _train(model, config, layout, hook, progress).cpu()
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(flushed)


def flushing_subnormals() -> bool:
    """Whether this thread flushes subnormal floats to zero (PyTorch can set it but not report it)."""
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # subnormal in float32
    return float((tiny * 2)[0]) == 0.0


def _train(model: ToyModel, config: TrainConfig, layout: _Layout, hook: Any, progress: Any) -> Tensor:
    from tmslab.training.reference import lr_multiplier

    opt = torch.optim.AdamW([model.W, model.b], lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_multiplier(s, config))
    for step in range(config.steps):
        loss, gW, gb = loss_and_grad(model.W.detach(), model.b.detach(), layout)
        # The objective is Σ_k L_k / n, the reference loop's normalisation (paper's L divided by n).
        model.W.grad, model.b.grad = gW / config.n_features, gb / config.n_features
        opt.step()
        sched.step()
        if hook is not None and config.record_every and step % config.record_every == 0:
            hook(step, model, loss)
        if progress is not None:
            progress(step)
    return loss_and_grad(model.W.detach(), model.b.detach(), layout, grad=False)[0]
