"""Compiled pieces of `training.evaluate`, each giving bit for bit what its PyTorch code gives.

`evaluate` scores every run on samples drawn by `torch.rand` from a fixed seed, so that every recorded eval
loss stays the same number across versions. At n = 400 with 20 instances, PyTorch spent 0.45 s of each
0.76 s chunk drawing the samples and 0.2 s in elementwise passes; the matmuls took 0.07 s.

* The stream. `torch.rand` on the CPU is one sequential Mersenne Twister (MT19937, seeded with the low
  32 bits of the seed); each float32 is the low 24 bits of one tempered 32-bit output times 2⁻²⁴. The same
  stream here is ≈ 7× faster (that chunk's draws: 0.067 s against 0.45 s) and writes the batch in its final
  layout (restarts repeated). `matches_torch` checks it against the PyTorch at hand once per process;
  `evaluate` falls back to PyTorch if it differs.
* The loss. `weighted_error` does bias, ReLU, error, square and importance in one pass instead of five
  (each an exactly rounded float32 operation, in PyTorch's order; the sums stay PyTorch's).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

from tmslab.data import Independent

_N, _M = 624, 397


def seeded(seed: int) -> np.ndarray:
    """torch.Generator().manual_seed(seed)'s state: 624 words and, at index 624, the next word's position (624:
    twist first)."""
    mt = [seed & 0xFFFFFFFF]
    for j in range(1, _N):
        mt.append((1812433253 * (mt[-1] ^ (mt[-1] >> 30)) + j) & 0xFFFFFFFF)
    return np.array(mt + [_N], np.int64)


@njit(nogil=True)
def _twist(mt: np.ndarray) -> None:
    # The standard recurrence in three loops without wrap-around indices (so that they vectorise).
    for k in range(_N - _M):
        y = (mt[k] & 0x80000000) | (mt[k + 1] & 0x7FFFFFFF)
        mt[k] = mt[k + _M] ^ (y >> 1) ^ (-(y & 1) & 0x9908B0DF)
    for k in range(_N - _M, _N - 1):
        y = (mt[k] & 0x80000000) | (mt[k + 1] & 0x7FFFFFFF)
        mt[k] = mt[k + _M - _N] ^ (y >> 1) ^ (-(y & 1) & 0x9908B0DF)
    y = (mt[_N - 1] & 0x80000000) | (mt[0] & 0x7FFFFFFF)
    mt[_N - 1] = mt[_M - 1] ^ (y >> 1) ^ (-(y & 1) & 0x9908B0DF)


@njit(nogil=True)
def _temper(mt: np.ndarray, u: np.ndarray, start: int) -> None:
    """Words start… of the block as floats into u: the low 24 bits of each tempered output × 2⁻²⁴ (torch.rand)."""
    for k in range(start, _N):
        y = mt[k]
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        u[k] = np.float32((y & 0xFFFFFF) * (1.0 / 16777216.0))


@njit(nogil=True)
def _next_block(mt: np.ndarray, u: np.ndarray) -> int:
    _twist(mt)
    _temper(mt, u, 0)
    return 0


@njit(cache=True, nogil=True)
def independent(mt: np.ndarray, density: np.ndarray, signed: bool, value_max: float, restarts: int,
                out: np.ndarray) -> None:
    """`data.Independent.sample(batch, g).repeat_interleave(restarts, 0)` into out [instances, batch, features].

    density is [configs, features] (one row per configuration); the values are drawn for the whole batch first,
    then the masks, as the PyTorch sampler does.
    """
    configs, n = density.shape
    size = out.shape[1] * n
    flat = out.reshape(out.size)  # (2-D slice assignment would cost seconds of compilation)
    vmax = np.float32(value_max)
    u = np.empty(_N, np.float32)
    i = mt[_N]
    if i < _N:
        _temper(mt, u, i)
    two, one, zero = np.float32(2.0), np.float32(1.0), np.float32(0.0)
    # Every inner loop runs over 1-D views from 0: indices the compiler knows are ≥ 0 need no negative-index
    # wrap-around, so the loops vectorise (≈ 2× faster than indexing flat[o + j] with o < 0 possible).
    for c in range(configs):  # values, U[0,1) → U[−1,1) when signed → × value_max
        x = c * restarts * size
        done = 0
        while done < size:
            if i == _N:
                i = _next_block(mt, u)
            take = min(_N - i, size - done)
            dst, src = flat[x + done : x + done + take], u[i : i + take]
            if signed and value_max != 1.0:  # one branch-free loop per case, so that each vectorises
                for j in range(take):
                    dst[j] = (two * src[j] - one) * vmax
            elif signed:
                for j in range(take):
                    dst[j] = two * src[j] - one
            elif value_max != 1.0:
                for j in range(take):
                    dst[j] = src[j] * vmax
            else:
                for j in range(take):
                    dst[j] = src[j]
            i += take
            done += take
    for c in range(configs):  # masks: a feature stays iff its draw ≤ its density (and that density is > 0)
        x = c * restarts * size
        d = density[c]
        done = 0
        while done < size:
            if i == _N:
                i = _next_block(mt, u)
            f = done % n
            take = min(_N - i, n - f, size - done)  # within one block and one sample
            dst, src, p = flat[x + done : x + done + take], u[i : i + take], d[f : f + take]
            for j in range(take):  # a select, not a branch: the masks are random
                dst[j] = dst[j] if (src[j] <= p[j]) & (p[j] > zero) else zero
            i += take
            done += take
        first = flat[x : x + size]
        for r in range(1, restarts):
            again = flat[x + r * size : x + (r + 1) * size]
            for k in range(size):
                again[k] = first[k]
    mt[_N] = i


def batches(distribution: Independent, restarts: int, seed: int, chunk: int, n_samples: int) -> Iterator[torch.Tensor]:
    """`evaluate`'s batches [instances, ≤ chunk, features] of `distribution` (one density row per configuration;
    restarts repeated), each drawn on a thread while the caller scores the previous one (the sampler releases
    the GIL). A batch is valid until the next is requested: two buffers take turns."""
    density, signed, value_max = distribution.density, distribution.signed, distribution.value_max
    configs, n = density.shape
    per = configs * restarts * n
    buffers = [torch.empty(per * min(chunk, n_samples)) for _ in range(2 if n_samples > chunk else 1)]
    mt, d = seeded(seed), density.contiguous().numpy()

    def draw(k: int, size: int) -> torch.Tensor:
        x = buffers[k % len(buffers)][: per * size].view(configs * restarts, size, n)
        independent(mt, d, signed, value_max, restarts, x.numpy())
        return x

    pool = ThreadPoolExecutor(1)
    try:
        sizes = [min(chunk, n_samples - s) for s in range(0, n_samples, chunk)]
        future = pool.submit(draw, 0, sizes[0])
        for k in range(len(sizes)):
            x = future.result()
            if k + 1 < len(sizes):
                future = pool.submit(draw, k + 1, sizes[k + 1])
            yield x
    finally:  # Ctrl-C or an early exit: wait for the one draw in flight, start no other
        pool.shutdown(wait=True, cancel_futures=True)


_checked: list[bool] = []


def matches_torch() -> bool:
    """Whether this stream is torch.rand's in the PyTorch at hand (checked once per process)."""
    if not _checked:
        seed = 2**32 + 2022  # exercises the truncation to 32 bits as well
        want = torch.rand(2000, generator=torch.Generator().manual_seed(seed)).numpy()
        got = np.empty((1, 1, 2000), np.float32)
        independent(seeded(seed), np.ones((1, 2000), np.float32), False, 1.0, 1, got)  # density 1: the values
        _checked.append(bool(np.array_equal(want, got[0, 0])))
    return _checked[0]


@njit(cache=True, nogil=True)
def weighted_error(pre: np.ndarray, b: np.ndarray, x: np.ndarray, importance: np.ndarray, relu: bool,
                   absolute: bool) -> None:
    """pre [instances, batch, features] (the output layer before its bias) becomes
    importance · (target − out)², out = ReLU(pre + b) (no ReLU for the linear model), target x or |x| (§5)."""
    instances, batch, n = pre.shape
    for k in range(instances):
        for s in range(batch):
            for f in range(n):
                out = pre[k, s, f] + b[k, f]
                if relu and not out > 0:
                    out = np.float32(0.0)
                t = abs(x[k, s, f]) if absolute else x[k, s, f]
                d = t - out
                pre[k, s, f] = importance[k, f] * (d * d)


def warm_up() -> None:
    """Compile (or load) this module's kernels for `evaluate`'s argument types now: `training.train` does it while
    children compile the training kernels (`fast.start_compiling`)."""
    matches_torch()
    x = np.zeros((1, 1, 1), np.float32)
    weighted_error(x, np.zeros((1, 1), np.float32), x.copy(), np.ones((1, 1), np.float32), True, False)
