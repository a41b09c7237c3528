"""The fast training engine: same model, data distribution, objective and AdamW as
`training.reference.train_reference`, without materialising batches through PyTorch.

How it is fast:

* Sampling. A counter-based random stream (SplitMix64 of an instance key and a counter) gives one
  32-bit uniform u per (sample, feature): the feature is active iff u < t = density·2^32 and its
  value is u/t, which is U[0,1) given activity — one draw for both mask and value, vectorisable,
  and reproducible from (seed, instance, step) alone.
* Fusion. With numba installed, one compiled call runs a whole chunk of steps of one instance
  (instances run in parallel on threads; the kernel releases the GIL): sample, forward, hand-written
  backward, AdamW — all in cache-resident [features, batch] scratch rows with the batch innermost.
  Nothing crosses the Python boundary per step except at hook/progress points. The untied
  absolute-value model's W1 and W2 travel as one array [W1; W2ᵀ] per instance (`pack_weights`);
  AdamW is elementwise, so that changes nothing.
* Without numba the same stream, objective and optimiser run in PyTorch (`_train_torch`); it gives
  the same results up to floating-point rounding, just slower.

Determinism: the seed is one int drawn from `generator`; every instance is computed by one thread
from its own stream, so the weights are bit-identical for the same seed on the same machine,
whatever the thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import torch
from torch import Tensor

from tmslab import precompile
from tmslab.config import EVAL_SEED, TrainConfig
from tmslab.data import FeatureDistribution
from tmslab.models import ToyModel
from tmslab.training.reference import Hook, lr_multiplier

try:  # numba is optional: without it the PyTorch path below runs the same algorithm.
    from tmslab.training import _kernels as _nk
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _nk = None

#: Kernel number per model kind. relu-output-id trains as relu-output: its m × m identity layer is frozen (a buffer,
#: never a parameter), so the function, the gradients of W and b and hence AdamW's steps are relu-output's.
KINDS = {"relu-output": 0, "linear": 1, "hidden-relu": 2, "abs": 3, "relu-output-id": 0}
DISTS = {"independent": 0, "correlated": 1, "anticorrelated": 2, "one-hot": 3}
#: At most this many steps per compiled call (progress is reported between calls).
MAX_CHUNK = 250

_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def has_numba() -> bool:
    return _nk is not None


_checked: set[str] = set()  # kernels whose cache this process has looked at (a sweep worker trains many times)


def start_compiling(names: list[str]) -> None:
    """Start compiling, each in its own child and without waiting, the kernels that numba's on-disk cache lacks
    (`tmslab.precompile`: why in a child); `ensure_cached` waits for them. Each kernel is compiled when first
    needed: a dense run never waits for the sparse kernels' compilation. The cache's index is read once per
    kernel and process, not at every training."""
    if _nk is None:
        return
    todo = [k for k in names if k not in _checked]
    _checked.update(todo)
    precompile.start([k for k in todo if not precompile.started(k) and not _nk.cached(k)])


def ensure_cached(kernel: str = "train_dense") -> None:
    """Make this process run `kernel` (train_dense, train_sparse or evaluate_sparse) from numba's on-disk cache,
    compiling it in a child first if needed."""
    start_compiling([kernel])
    precompile.wait(kernel)


def supports(config: TrainConfig) -> str | None:
    """None if the fast engine handles this config, else a short reason (auto then uses the reference)."""
    if config.model not in KINDS:
        return f"the fast engine does not implement the {config.model} model"
    if config.distribution not in DISTS:
        return f"the fast engine does not implement the {config.distribution} distribution"
    if config.sparse and (config.distribution != "independent" or config.model == "abs"):
        return "sparse sampling implements independent non-negative features only"
    if config.sparse and _nk is None:
        return "sparse sampling needs numba"
    return None


# ---- random stream (shared definition for numba and PyTorch) ---------------------------------------


def _u64(x: int) -> int:
    return x & 0xFFFFFFFFFFFFFFFF


def _mix64_int(z: int) -> int:
    z = _u64((z ^ (z >> 30)) * _M1)
    z = _u64((z ^ (z >> 27)) * _M2)
    return z ^ (z >> 31)


def instance_keys(seed: int, n_instances: int) -> np.ndarray:
    """One 64-bit stream key per instance, derived from the run seed."""
    base = _mix64_int(_u64(seed * _GAMMA + 0x632BE59BD9B4E019))
    return np.array(
        [_mix64_int(_u64(base + (k + 1) * 0xD1B54A32D192ED03)) for k in range(n_instances)], dtype=np.uint64
    )


def thresholds(density: Tensor) -> np.ndarray:
    """t = round(p·2^32) as float64 (exact integers): feature active iff u32 < t. At least 1 for any p > 0; 0 for
    p = 0, a feature that is never active (always-off features, paper-spec §6.6)."""
    d = density.detach().double().cpu().numpy()
    return np.where(d > 0, np.clip(np.rint(d * 2.0**32), 1.0, 2.0**32), 0.0)


def _torch_mix64(z: Tensor) -> Tensor:
    """SplitMix64 finaliser on int64 tensors holding uint64 bits (wrapping multiply, logical shifts)."""

    def shr(v: Tensor, s: int) -> Tensor:
        return (v >> s) & ((1 << (64 - s)) - 1)

    def c(v: int) -> int:
        return v - (1 << 64) if v >= 1 << 63 else v

    z = (z ^ shr(z, 30)) * c(_M1)
    z = (z ^ shr(z, 27)) * c(_M2)
    return z ^ shr(z, 31)


def _torch_u32_rows(keys: np.ndarray, step: int, rows: list[int], rows_per_step: int, B: int) -> Tensor:
    """float64 tensor [instances, len(rows), B] of the 32-bit uniforms `_kernels.fill_u32` draws."""
    half = B // 2
    key = torch.from_numpy(keys.view(np.int64).copy())[:, None, None]
    row = torch.tensor(rows, dtype=torch.int64)[None, :, None]
    base = (step * rows_per_step + row) * (half + 1)
    j = torch.arange(half + 1, dtype=torch.int64)[None, None, :]
    gamma = _GAMMA - (1 << 64)
    r = _torch_mix64(key + (base + j) * gamma)
    lo = (r & 0xFFFFFFFF).double()
    hi = ((r >> 32) & 0xFFFFFFFF).double()
    out = torch.cat([lo[..., :half], hi[..., :half]], dim=-1)
    if B % 2:
        out = torch.cat([out, lo[..., half : half + 1]], dim=-1)
    return out


def sample_torch(
    dist: str, thr: np.ndarray, keys: np.ndarray, step: int, B: int, set_size: int = 1, signed: bool = False,
    value_max: float = 1.0,
) -> Tensor:
    """The fast engine's batch at `step`, [instances, B, features], computed in PyTorch."""
    K, n = thr.shape
    rows = 2 * n + 2
    t = torch.from_numpy(thr)[:, :, None]  # [K, n, 1]

    def val(u: Tensor) -> Tensor:
        u = 2 * u - 1 if signed else u
        return u if value_max == 1.0 else u * value_max

    if dist == "independent":
        u = _torch_u32_rows(keys, step, list(range(n)), rows, B)
        x = torch.where(u < t, val(u / t), torch.zeros(()))
    elif dist in ("correlated", "anticorrelated"):
        n_sets = n // set_size
        ts = t[:, ::set_size]  # [K, sets, 1]
        mask_u = _torch_u32_rows(keys, step, [n + s for s in range(n_sets)], rows, B)
        on = mask_u < ts
        if dist == "correlated":
            vals = val(_torch_u32_rows(keys, step, list(range(n)), rows, B) / 2.0**32)
            x = torch.where(on.repeat_interleave(set_size, dim=1), vals, torch.zeros(()))
        else:
            which_u = _torch_u32_rows(keys, step, [s * set_size for s in range(n_sets)], rows, B)
            w = (which_u / 2.0**32 * set_size).long().clamp_max(set_size - 1)  # [K, sets, B]
            v = val(mask_u / ts)
            x = torch.zeros(K, n_sets, set_size, B, dtype=torch.float64)
            x.scatter_(2, w[:, :, None, :], torch.where(on, v, torch.zeros(()))[:, :, None, :])
            x = x.reshape(K, n, B)
    else:
        which_u = _torch_u32_rows(keys, step, [0], rows, B)[:, 0]
        v = val(_torch_u32_rows(keys, step, [1], rows, B)[:, 0] / 2.0**32)
        w = (which_u / 2.0**32 * n).long().clamp_max(n - 1)
        x = torch.zeros(K, n, B, dtype=torch.float64)
        x.scatter_(1, w[:, None, :], v[:, None, :])
    return x.float().transpose(1, 2).contiguous()


def sample_numba(
    dist: str, thr: np.ndarray, keys: np.ndarray, step: int, B: int, set_size: int = 1, signed: bool = False,
    value_max: float = 1.0,
) -> Tensor:
    """The same batch as `sample_torch`, drawn by the compiled sampler (requires numba)."""
    K, n = thr.shape
    out = np.empty((K, n, B), dtype=np.float32)
    buf, buf2 = np.empty(B), np.empty(B)
    for k in range(K):
        _nk.sample_batch(out[k], DISTS[dist], thr[k], set_size, signed, keys[k], step, buf, buf2, float(value_max))
    return torch.from_numpy(out).transpose(1, 2).contiguous()


def log1m(density: Tensor) -> np.ndarray:
    """ln(1 − p) per instance and feature (float64; −inf where p = 1): the sparse sampler's gap law."""
    with np.errstate(divide="ignore"):
        return np.log1p(-density.detach().double().cpu().numpy())


def sample_sparse(density: Tensor, keys: np.ndarray, step: int, B: int, value_max: float = 1.0) -> Tensor:
    """The sparse stream's batch at `step` (config.sparse), [instances, B, features] dense, for the tests."""
    K, n = density.shape
    lm = log1m(density)
    out = np.zeros((K, n, B), dtype=np.float32)
    start = np.empty(n + 1, dtype=np.int64)
    for k in range(K):
        pos, val = np.empty(16, dtype=np.int64), np.empty(16, dtype=np.float32)
        _, pos, val = _nk.sparse_batch(lm[k], float(value_max), keys[k], step, B, start, pos, val)
        _nk.scatter_dense(out[k], start, pos, val)
    return torch.from_numpy(out).transpose(1, 2).contiguous()


# ---- the kernels' weight layout ------------------------------------------------------------------------


def pack_weights(model: ToyModel) -> np.ndarray:
    """The kernels' weight array [instances, rows, features]: W itself (tied kinds, rows = m), or for abs
    a fresh [W1; W2ᵀ] (rows = 2m: encoder rows, then the decoder transposed)."""
    if model.kind != "abs":
        return model.W.detach().numpy()
    W1 = model.W1.detach().float()
    W2 = model.W2.detach().float()
    return torch.cat([W1, W2.transpose(1, 2)], dim=1).contiguous().numpy()


def unpack_weights(model: ToyModel, W: np.ndarray) -> None:
    """Write a packed abs array back into W1 and W2 (tied kinds share storage with W: nothing to do)."""
    if model.kind != "abs":
        return
    m = model.n_hidden
    Wt = torch.from_numpy(W)
    with torch.no_grad():
        model.W1.copy_(Wt[:, :m])
        model.W2.copy_(Wt[:, m:].transpose(1, 2))


# ---- loss and gradient for a given batch (used by the tests) ----------------------------------------


def _csr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, pos, val) of a dense batch X[n, B], the layout `_kernels.sample_sparse` writes."""
    rows, cols = np.nonzero(X)
    start = np.searchsorted(rows, np.arange(X.shape[0] + 1)).astype(np.int64)
    return start, cols.astype(np.int64), X[rows, cols].astype(np.float32)


def loss_and_grads(
    model: ToyModel, x: Tensor, importance: Tensor, hidden_l1: float = 0.0, sparse: bool = False
) -> tuple[Tensor, dict[str, Tensor]]:
    """(per-instance L [instances], gradients keyed as model.named_parameters) of reference.objective at
    batch x [instances, B, n], computed by the compiled kernel (numba) — the tests compare them with autograd.
    sparse: the sparse path's kernel (`loss_and_grad_sparse`, tied kinds)."""
    W = np.array(pack_weights(model), dtype=np.float32)
    bias = model.b.detach().float().numpy()
    imp = importance.detach().float().contiguous().numpy()
    K, m, n = model.n_instances, model.n_hidden, model.n_features
    B = x.shape[1]
    X = x.detach().float().transpose(1, 2).contiguous().numpy()
    gW = np.empty_like(W)
    gb = np.empty_like(bias)
    loss = np.empty(K)
    h, dh, G = np.empty((m, B), np.float32), np.empty((m, B), np.float32), np.empty((n, B), np.float32)
    for k in range(K):
        if sparse:
            hT, dhT = np.empty((B, m), np.float32), np.empty((B, m), np.float32)
            WT, gWT = np.empty((n, m), np.float32), np.empty((n, m), np.float32)
            loss[k] = _nk.loss_and_grad_sparse(
                KINDS[model.kind], W[k], bias[k], imp[k], X[k], *_csr(X[k]), float(hidden_l1), h, hT, dhT, G, WT,
                gWT, np.empty(B, np.int64), gW[k], gb[k],
            )  # fmt: skip
            continue
        loss[k] = _nk.loss_and_grad(
            KINDS[model.kind], W[k], bias[k], imp[k], X[k], float(hidden_l1), h, G, dh, gW[k], gb[k]
        )
    g = torch.from_numpy(gW)
    grads = {"W1": g[:, :m], "W2": g[:, m:].transpose(1, 2).contiguous()} if model.kind == "abs" else {"W": g}
    return torch.from_numpy(loss).float(), {**grads, "b": torch.from_numpy(gb)}


def adamw_step_numba(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    lr: float,
    wd: float,
    step: int,
) -> None:
    """One AdamW step (t = step, 1-based) by the compiled kernel, in place (for the tests)."""
    bc1 = 1.0 - 0.9**step
    bc2 = 1.0 - 0.999**step
    for p, g, m1, m2 in zip(params, grads, exp_avg, exp_avg_sq, strict=True):
        _nk.adamw(
            p.view(-1).numpy(),
            g.reshape(-1).numpy(),
            m1.view(-1).numpy(),
            m2.view(-1).numpy(),
            lr,
            wd,
            lr / bc1,
            bc2**0.5,
        )


# ---- evaluation (config.sparse) -------------------------------------------------------------------------


def evaluate_sparse(
    model: ToyModel, distribution: FeatureDistribution, importance: Tensor, n_samples: int, restarts: int = 1,
    seed: int = EVAL_SEED,
) -> Tensor:
    """The paper's L per instance on n_samples samples of the sparse stream with a fixed seed, in the compiled
    engine (parallel over instances). As `training.evaluate`: the restarts of a configuration are scored on
    identical samples (they share the configuration's stream key), so differences between restarts are paired."""
    ensure_cached("evaluate_sparse")
    K, n = model.n_instances, model.n_features
    keys = np.repeat(instance_keys(seed, K // restarts), restarts)
    W = np.ascontiguousarray(pack_weights(model), dtype=np.float32)
    bias = model.b.detach().float().contiguous().numpy()
    imp = np.ascontiguousarray(importance.detach().float().expand(K, n).numpy())
    lm = log1m(distribution.density.expand(K, n))
    chunk = int(min(8192, max(256, (1 << 22) // n), n_samples))
    out = np.empty(K)
    kind, vmax = KINDS[model.kind], float(distribution.value_max)

    def one(k: int) -> None:
        out[k] = _nk.evaluate_sparse(kind, W[k], bias[k], imp[k], lm[k], vmax, keys[k], int(n_samples), chunk)

    for_instances(one, K)
    return torch.from_numpy(out).float()


def instance_threads(K: int) -> int:
    """Threads that `for_instances` runs K instances on: PyTorch's thread count, at most one per instance."""
    return min(K, torch.get_num_threads())


def for_instances(fn: Callable[[int], None], K: int, pool: ThreadPoolExecutor | None = None) -> None:
    """fn(k) for every instance k, on up to torch.get_num_threads() threads (the kernels release the GIL): one task
    per thread, each taking the next instance nobody has taken (with recordings every few steps a chunk is short,
    and a task or a pool per instance and chunk cost more than the chunk). Each instance is computed by one thread
    from its own stream, so the results do not depend on the thread count. `pool` (`instance_threads(K)` workers)
    is reused across calls; without it one is made here."""
    threads = instance_threads(K)
    if threads <= 1:
        for k in range(K):
            fn(k)
        return
    todo, lock, stop = iter(range(K)), threading.Lock(), threading.Event()

    def work() -> None:
        while not stop.is_set():
            with lock:
                k = next(todo, None)
            if k is None:
                return
            try:
                fn(k)
            except BaseException:  # the other threads take no new instance either
                stop.set()
                raise

    own = pool is None
    pool = pool or ThreadPoolExecutor(threads)
    tasks = [pool.submit(work) for _ in range(threads)]
    try:
        for task in tasks:
            task.result()
    finally:  # Ctrl-C or an error: each thread finishes the instance at hand and takes no other
        stop.set()
        wait(tasks)
        if own:
            pool.shutdown()


# ---- training ----------------------------------------------------------------------------------------


def _setup(model: ToyModel, distribution: FeatureDistribution, config: TrainConfig, generator: torch.Generator):
    reason = supports(config)
    if reason is None and model.kind not in KINDS:
        reason = f"the fast engine does not implement the {model.kind} model"
    if reason is None and distribution.name not in DISTS:
        reason = f"the fast engine does not implement the {distribution.name} distribution"
    if reason is not None:
        raise ValueError(reason)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    keys = instance_keys(seed, model.n_instances)
    thr = thresholds(distribution.density.expand(model.n_instances, model.n_features))
    lrs = np.array([config.lr * lr_multiplier(s, config) for s in range(config.steps)], dtype=np.float64)
    return keys, thr, lrs


def _optimiser_arrays(config: TrainConfig, lrs: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(b's learning rates, W's decay, b's decay, growth γ ≤ 0): reference.optimizer's groups, as numbers."""
    gamma = float(config.weight_decay)
    lrs_b = lrs if config.lr_b is None else lrs * (config.lr_b / config.lr)
    wd_b = gamma if config.decay_bias and gamma >= 0 else 0.0
    return lrs_b, max(gamma, 0.0), wd_b, min(gamma, 0.0)


def _chunks(config: TrainConfig):
    """(start, stop) step ranges; a chunk ends right after every recorded step."""
    s, R = 0, config.record_every
    while s < config.steps:
        stop = min(config.steps, s + MAX_CHUNK)
        if R:
            next_rec = ((s + R - 1) // R) * R  # first recorded step >= s
            stop = min(stop, next_rec + 1)
        yield s, stop
        s = stop


def train_fast(
    model: ToyModel,
    distribution: FeatureDistribution,
    importance: Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    hook: Hook | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Same contract as training.reference.train_reference: trains model in place."""
    if _nk is None:
        _train_torch(model, distribution, importance, config, generator, hook, progress)
        return
    ensure_cached("train_sparse" if config.sparse else "train_dense")
    keys, thr, lrs = _setup(model, distribution, config, generator)
    K, n, B = model.n_instances, model.n_features, config.batch_size
    with torch.no_grad():
        # The kernel updates the model's own storage in place (float32, contiguous).
        for p in model.parameters():
            if p.dtype != torch.float32 or not p.is_contiguous():
                raise ValueError("the fast engine needs contiguous float32 parameters")
        W = pack_weights(model)  # tied kinds: the model's own W; abs: a packed copy, unpacked at every hook
        bias = model.b.detach().numpy()
        mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(bias), np.zeros_like(bias)
        imp = np.ascontiguousarray(importance.detach().float().expand(K, n).numpy())
        lm = log1m(distribution.density.expand(K, n)) if config.sparse else np.zeros((K, n))
        lrs_b, wd, wd_b, growth = _optimiser_arrays(config, lrs)
        kind, dist = KINDS[model.kind], DISTS[distribution.name]
        set_size, signed, vmax = int(distribution.set_size), bool(distribution.signed), float(distribution.value_max)
        l1 = float(config.hidden_l1)
        threads = instance_threads(K)
        pool = ThreadPoolExecutor(threads) if threads > 1 else None  # one for all chunks
        try:
            for s0, s1 in _chunks(config):
                losses = np.empty((K, s1 - s0))

                def chunk(k: int, s0: int = s0, s1: int = s1, losses: np.ndarray = losses) -> None:
                    if config.sparse:
                        _nk.train_sparse(kind, vmax, W[k], bias[k], mW[k], vW[k], mb[k], vb[k], imp[k], lm[k],
                                         keys[k], l1, lrs, lrs_b, wd, wd_b, growth, s0, s1, B, losses[k])
                        return
                    _nk.train_dense(kind, dist, set_size, signed, vmax, W[k], bias[k], mW[k], vW[k], mb[k], vb[k],
                                    imp[k], thr[k], keys[k], l1, lrs, lrs_b, wd, wd_b, growth, s0, s1, B, losses[k])

                for_instances(chunk, K, pool)
                last = s1 - 1
                if hook is not None and config.record_every and last % config.record_every == 0:
                    unpack_weights(model, W)
                    hook(last, model, torch.from_numpy(losses[:, -1]).float())
                if progress is not None:
                    progress(last)
        finally:
            if pool is not None:
                pool.shutdown()
        unpack_weights(model, W)


def _train_torch(
    model: ToyModel,
    distribution: FeatureDistribution,
    importance: Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    hook: Hook | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """The fallback without numba: the fast engine's random stream with the reference loop (autograd objective,
    torch.optim.AdamW) — same data, same optimiser, results equal up to rounding."""
    from tmslab.training.reference import train_reference

    keys, thr, _ = _setup(model, distribution, config, generator)

    def sample(step: int) -> Tensor:
        if config.sparse:  # only reached with numba (supports() refuses sparse without it): the tests' path
            return sample_sparse(distribution.density, keys, step, config.batch_size, distribution.value_max)
        return sample_torch(
            distribution.name, thr, keys, step, config.batch_size, distribution.set_size, distribution.signed,
            distribution.value_max,
        )

    train_reference(model, distribution, importance, config, generator, hook, progress, sample=sample)


__all__ = ["supports", "train_fast", "has_numba", "evaluate_sparse"]
