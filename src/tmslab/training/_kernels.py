"""Numba kernels of the fast engine (imported only when numba is installed).

Layout: one instance at a time, the batch dimension innermost ([features, batch] and
[hidden, batch] scratch rows), so every inner loop is a contiguous, vectorisable sweep over the
batch. An instance's whole chunk of steps (sample → forward → backward → AdamW) runs inside one
compiled call (`train_dense` / `train_sparse`, which release the GIL: `fast` runs instances on threads); each
instance is computed sequentially by one thread with its own counter-based random stream, so results do not
depend on the thread count.

The random numbers are SplitMix64 outputs of (instance key, counter); `fast._torch_u32_rows`
implements the identical stream in PyTorch for the fallback path, and the tests check both agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

U64 = np.uint64
GAMMA = U64(0x9E3779B97F4A7C15)
M1 = U64(0xBF58476D1CE4E5B9)
M2 = U64(0x94D049BB133111EB)
LOW32 = U64(0xFFFFFFFF)
TWO32 = 4294967296.0
INV32 = 1.0 / 4294967296.0

KIND_RELU_OUTPUT, KIND_LINEAR, KIND_HIDDEN_RELU, KIND_ABS = 0, 1, 2, 3
DIST_INDEPENDENT, DIST_CORRELATED, DIST_ANTICORRELATED, DIST_ONE_HOT = 0, 1, 2, 3

_FM = {"nsz", "arcp", "contract", "reassoc"}  # no nnan/ninf: keep comparisons exact


@njit(inline="always", cache=True)
def _mix64(z):
    z = (z ^ (z >> U64(30))) * M1
    z = (z ^ (z >> U64(27))) * M2
    return z ^ (z >> U64(31))


@njit(inline="always", cache=True)
def _row_base(step, row, rows_per_step, half):
    """First counter of random row `row` of step `step` (each row owns half+1 counters)."""
    return (U64(step) * U64(rows_per_step) + U64(row)) * U64(half + 1)


@njit(inline="always", cache=True)
def _scale(v, signed, vmax):
    """A uniform v ∈ [0, 1) → the feature value: U[0, vmax), or U[−vmax, vmax) when signed."""
    if signed:
        v = 2.0 * v - 1.0
    if vmax != 1.0:
        v = v * vmax
    return v


@njit(cache=True, fastmath=_FM)
def fill_u32(buf, key, base):
    """buf[0:B] ← B 32-bit uniforms (as float64 integers 0..2^32−1) from counters base, base+1, …:
    counter j gives entry j (low word) and entry half+j (high word); an odd B takes the low word of
    counter half."""
    B = buf.shape[0]
    half = B // 2
    for j in range(half):
        r = _mix64(key + (base + U64(j)) * GAMMA)
        buf[j] = np.float64(r & LOW32)
        buf[half + j] = np.float64(r >> U64(32))
    if B % 2 == 1:
        r = _mix64(key + (base + U64(half)) * GAMMA)
        buf[B - 1] = np.float64(r & LOW32)


@njit(cache=True, fastmath=_FM)
def sample_batch(X, dist, thr, set_size, signed, key, step, buf, buf2, vmax=1.0):
    """X[n, B] ← one fresh batch of instance (key) at `step`.

    independent: one 32-bit uniform u per entry: active iff u < t = p·2^32, value u/t (uniform on
    [0,1) given active). correlated / anticorrelated: a set-level uniform u < t of the set's first
    feature decides the set; correlated draws an independent value per feature, anticorrelated
    activates one uniformly chosen feature with value u/t. one-hot: one uniform picks the feature,
    another gives its value."""
    n, B = X.shape
    half = B // 2
    rows = 2 * n + 2
    if dist == DIST_INDEPENDENT:
        for i in range(n):
            fill_u32(buf, key, _row_base(step, i, rows, half))
            t = thr[i]
            inv = 1.0 / t if t > 0.0 else 0.0  # t = 0: never active (density 0)
            for b in range(B):
                u = buf[b]
                v = _scale(u * inv, signed, vmax)
                X[i, b] = np.float32(v) if u < t else np.float32(0.0)
    elif dist == DIST_CORRELATED or dist == DIST_ANTICORRELATED:
        n_sets = n // set_size
        for s in range(n_sets):
            f0 = s * set_size
            t = thr[f0]
            inv = 1.0 / t if t > 0.0 else 0.0  # t = 0: never active (density 0)
            fill_u32(buf, key, _row_base(step, n + s, rows, half))  # set mask
            if dist == DIST_CORRELATED:
                for i in range(f0, f0 + set_size):
                    fill_u32(buf2, key, _row_base(step, i, rows, half))  # values
                    for b in range(B):
                        v = _scale(buf2[b] * INV32, signed, vmax)
                        X[i, b] = np.float32(v) if buf[b] < t else np.float32(0.0)
            else:
                fill_u32(buf2, key, _row_base(step, f0, rows, half))  # which feature
                for i in range(f0, f0 + set_size):
                    for b in range(B):
                        X[i, b] = 0.0
                for b in range(B):
                    u = buf[b]
                    if u < t:
                        w = int(buf2[b] * INV32 * set_size)
                        if w >= set_size:
                            w = set_size - 1
                        v = _scale(u * inv, signed, vmax)
                        X[f0 + w, b] = np.float32(v)
    else:  # one-hot
        fill_u32(buf, key, _row_base(step, 0, rows, half))  # which
        fill_u32(buf2, key, _row_base(step, 1, rows, half))  # value
        for i in range(n):
            for b in range(B):
                X[i, b] = 0.0
        for b in range(B):
            w = int(buf[b] * INV32 * n)
            if w >= n:
                w = n - 1
            v = _scale(buf2[b] * INV32, signed, vmax)
            X[w, b] = np.float32(v)


@njit(inline="always", cache=True, fastmath=_FM)
def _encode_rows(W, X, h, k, kind):
    """h[k] = W[k] · X (one hidden row), unrolled by 4 over features."""
    n = W.shape[1]
    B = X.shape[1]
    for b in range(B):
        h[k, b] = 0.0
    i = 0
    while i + 4 <= n:
        w0, w1, w2, w3 = W[k, i], W[k, i + 1], W[k, i + 2], W[k, i + 3]
        for b in range(B):
            h[k, b] += w0 * X[i, b] + w1 * X[i + 1, b] + w2 * X[i + 2, b] + w3 * X[i + 3, b]
        i += 4
    while i < n:
        w0 = W[k, i]
        for b in range(B):
            h[k, b] += w0 * X[i, b]
        i += 1


@njit(inline="always", cache=True, fastmath=_FM)
def _row_loss(kind, G, X, j, cij):
    """Row j of G holds the pre-activation; replace it by dObjective/dpre, return (Σ d², Σ g)."""
    B = X.shape[1]
    zero = np.float32(0.0)
    acc = zero
    gsum = zero
    if kind == KIND_ABS:  # target |x|
        for b in range(B):
            pre = G[j, b]
            d = max(pre, zero) - abs(X[j, b])
            acc += d * d
            g = cij * d if pre > 0.0 else zero
            G[j, b] = g
            gsum += g
    elif kind == KIND_LINEAR:
        for b in range(B):
            d = G[j, b] - X[j, b]
            acc += d * d
            g = cij * d
            G[j, b] = g
            gsum += g
    else:
        for b in range(B):
            pre = G[j, b]
            d = max(pre, zero) - X[j, b]
            acc += d * d
            g = cij * d if pre > 0.0 else zero
            G[j, b] = g
            gsum += g
    return acc, gsum


@njit(cache=True, fastmath=_FM)
def loss_and_grad(kind, W, bias, imp, X, l1, h, G, dh, gW, gb):
    """Per-instance paper loss L of batch X[n, B] (returned), and the gradient of the training
    objective (reference.objective for this one instance) into gW (W's shape), gb[n].

    Tied kinds: W[m, n] is both encoder and decoder. KIND_ABS (untied, h = ReLU(W1 x),
    out = ReLU(W2 h + b), target |x|): W[2m, n] packs the encoder W1 in rows 0…m−1 and the decoder
    transposed, W2ᵀ, in rows m…2m−1; the decoder rows are read at offset `o` (0 when tied, so both
    gradients accumulate into the same rows).

    bias[n], imp[n]; scratch h[≥m, B], G[n, B], dh[≥m, B]. Every inner loop is a contiguous
    sweep over the batch, unrolled by 4 over the contracted dimension and, where it saves loads,
    computing two output rows per sweep."""
    rows, n = W.shape
    m = rows // 2 if kind == KIND_ABS else rows
    o = m if kind == KIND_ABS else 0
    B = X.shape[1]
    c = np.float32(2.0 / (B * n))
    cl1 = np.float32(l1 / (B * n))
    zero = np.float32(0.0)
    for j in range(n):
        gb[j] = 0.0
    for k in range(rows):
        for j in range(n):
            gW[k, j] = 0.0
    loss = 0.0
    # ---- h = W x: two hidden rows per sweep over X
    k = 0
    while k + 2 <= m:
        for b in range(B):
            h[k, b] = 0.0
            h[k + 1, b] = 0.0
        i = 0
        while i + 4 <= n:
            w0, w1, w2, w3 = W[k, i], W[k, i + 1], W[k, i + 2], W[k, i + 3]
            v0, v1, v2, v3 = W[k + 1, i], W[k + 1, i + 1], W[k + 1, i + 2], W[k + 1, i + 3]
            for b in range(B):
                x0, x1, x2, x3 = X[i, b], X[i + 1, b], X[i + 2, b], X[i + 3, b]
                h[k, b] += w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3
                h[k + 1, b] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
            i += 4
        while i < n:
            w0, v0 = W[k, i], W[k + 1, i]
            for b in range(B):
                h[k, b] += w0 * X[i, b]
                h[k + 1, b] += v0 * X[i, b]
            i += 1
        k += 2
    if k < m:
        _encode_rows(W, X, h, k, kind)
    if kind == KIND_HIDDEN_RELU or kind == KIND_ABS:
        for k in range(m):
            for b in range(B):
                h[k, b] = max(h[k, b], zero)
    # ---- out = Wᵀh + b (two output rows per sweep over h), loss and dL/dout (in G)
    j = 0
    while j + 2 <= n:
        j1 = j + 1
        b0, b1 = bias[j], bias[j1]
        for b in range(B):
            G[j, b] = b0
            G[j1, b] = b1
        k = 0
        while k + 4 <= m:
            ko = o + k
            w0, w1, w2, w3 = W[ko, j], W[ko + 1, j], W[ko + 2, j], W[ko + 3, j]
            v0, v1, v2, v3 = W[ko, j1], W[ko + 1, j1], W[ko + 2, j1], W[ko + 3, j1]
            for b in range(B):
                h0, h1, h2, h3 = h[k, b], h[k + 1, b], h[k + 2, b], h[k + 3, b]
                G[j, b] += w0 * h0 + w1 * h1 + w2 * h2 + w3 * h3
                G[j1, b] += v0 * h0 + v1 * h1 + v2 * h2 + v3 * h3
            k += 4
        while k < m:
            w0, v0 = W[o + k, j], W[o + k, j1]
            for b in range(B):
                G[j, b] += w0 * h[k, b]
                G[j1, b] += v0 * h[k, b]
            k += 1
        j += 2
    if j < n:  # odd n: the last output row alone
        bj = bias[j]
        for b in range(B):
            G[j, b] = bj
        for k in range(m):
            w0 = W[o + k, j]
            for b in range(B):
                G[j, b] += w0 * h[k, b]
    for j in range(n):
        ij = imp[j]
        acc, gsum = _row_loss(kind, G, X, j, c * ij)
        loss += np.float64(ij) * np.float64(acc)
        gb[j] += gsum
    # ---- dh = W G (unrolled over j); decoder gradient gW[o+k, j] += Σ_b h[k,b] G[j,b]
    for k in range(m):
        ko = o + k
        for b in range(B):
            dh[k, b] = 0.0
        j = 0
        while j + 4 <= n:
            w0, w1, w2, w3 = W[ko, j], W[ko, j + 1], W[ko, j + 2], W[ko, j + 3]
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            for b in range(B):
                g0, g1, g2, g3 = G[j, b], G[j + 1, b], G[j + 2, b], G[j + 3, b]
                hv = h[k, b]
                dh[k, b] += w0 * g0 + w1 * g1 + w2 * g2 + w3 * g3
                a0 += hv * g0
                a1 += hv * g1
                a2 += hv * g2
                a3 += hv * g3
            gW[ko, j] += a0
            gW[ko, j + 1] += a1
            gW[ko, j + 2] += a2
            gW[ko, j + 3] += a3
            j += 4
        while j < n:
            w0 = W[ko, j]
            a0 = zero
            for b in range(B):
                g0 = G[j, b]
                dh[k, b] += w0 * g0
                a0 += h[k, b] * g0
            gW[ko, j] += a0
            j += 1
        if l1 != 0.0:
            for b in range(B):
                hv = h[k, b]
                s = np.float32(1.0) if hv > 0.0 else (np.float32(-1.0) if hv < 0.0 else zero)
                dh[k, b] += cl1 * s
        if kind == KIND_HIDDEN_RELU or kind == KIND_ABS:
            for b in range(B):
                if not h[k, b] > 0.0:
                    dh[k, b] = 0.0
    # ---- encoder gradient gW[k, i] += Σ_b dh[k,b] X[i,b]: two hidden rows per sweep over X
    k = 0
    while k < m:
        k1 = k + 1 if k + 1 < m else k
        scale1 = np.float32(1.0) if k1 != k else zero  # a lone last row: second accumulator unused
        i = 0
        while i + 4 <= n:
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            c0 = zero
            c1 = zero
            c2 = zero
            c3 = zero
            for b in range(B):
                d = dh[k, b]
                e = dh[k1, b]
                x0, x1, x2, x3 = X[i, b], X[i + 1, b], X[i + 2, b], X[i + 3, b]
                a0 += d * x0
                a1 += d * x1
                a2 += d * x2
                a3 += d * x3
                c0 += e * x0
                c1 += e * x1
                c2 += e * x2
                c3 += e * x3
            gW[k, i] += a0
            gW[k, i + 1] += a1
            gW[k, i + 2] += a2
            gW[k, i + 3] += a3
            gW[k1, i] += scale1 * c0
            gW[k1, i + 1] += scale1 * c1
            gW[k1, i + 2] += scale1 * c2
            gW[k1, i + 3] += scale1 * c3
            i += 4
        while i < n:
            a0 = zero
            c0 = zero
            for b in range(B):
                a0 += dh[k, b] * X[i, b]
                c0 += dh[k1, b] * X[i, b]
            gW[k, i] += a0
            gW[k1, i] += scale1 * c0
            i += 1
        k += 2
    return loss / B


@njit(cache=True, fastmath=_FM)
def adamw(p, g, m1, m2, lr, wd, step_size, bc2_sqrt):
    """PyTorch's single-tensor AdamW update (betas 0.9/0.999, eps 1e-8), elementwise on flat views."""
    decay = np.float32(1.0 - lr * wd)
    ss = np.float32(step_size)
    bc = np.float32(bc2_sqrt)
    for e in range(p.shape[0]):
        pe = p[e] * decay
        ge = g[e]
        me = m1[e] + np.float32(0.1) * (ge - m1[e])
        ve = m2[e] * np.float32(0.999) + np.float32(0.001) * ge * ge
        m1[e] = me
        m2[e] = ve
        p[e] = pe - ss * (me / (np.sqrt(ve) / bc + np.float32(1e-8)))


# ---- sparse sampling (config.sparse): time ∝ active features, not features × batch ---------------------

C2 = U64(0xD1B54A32D192ED03)
INV53 = 1.0 / 9007199254740992.0


@njit(cache=True)
def sample_sparse(log1m, vmax, key, step, B, start, pos, val):
    """One batch of independent features, feature by feature, as CSR: feature i's active samples are
    pos[start[i]:start[i+1]] (increasing) with values val[…] ~ U(0, vmax). The gaps between active samples
    of a feature with probability p are Geometric(p): ⌊ln u / ln(1 − p)⌋ with u ∈ (0, 1] — an exact Bernoulli
    process, drawn with 2 uniforms per active entry + 1 per feature. log1m[i] = ln(1 − p_i) (−inf when p = 1).
    Feature i of `step` has its own counter stream, so the batch depends on (key, step) only.
    Returns nnz, or −1 when pos/val are too small (the caller grows them and draws again: same batch)."""
    n = log1m.shape[0]
    cap = pos.shape[0]
    nnz = 0
    for i in range(n):
        start[i] = nnz
        sub = _mix64(key + (U64(step) * U64(n) + U64(i) + U64(1)) * C2)
        j = U64(0)
        b = -1
        lm = log1m[i]
        while True:
            r = _mix64(sub + j * GAMMA)
            j += U64(1)
            u = (np.float64(r >> U64(11)) + 1.0) * INV53
            g = np.floor(np.log(u) / lm) if lm < 0.0 else np.inf  # lm = 0: p = 0, never active
            if g >= B - 1 - b:
                break
            b = b + 1 + int(g)
            r = _mix64(sub + j * GAMMA)
            j += U64(1)
            if nnz >= cap:
                return -1
            pos[nnz] = b
            val[nnz] = np.float32(np.float64(r >> U64(11)) * INV53 * vmax)
            nnz += 1
    start[n] = nnz
    return nnz


@njit(cache=True)
def sparse_batch(log1m, vmax, key, step, B, start, pos, val):
    """sample_sparse, growing pos/val until the batch fits; returns (nnz, pos, val)."""
    nnz = sample_sparse(log1m, vmax, key, step, B, start, pos, val)
    while nnz < 0:
        pos = np.empty(2 * pos.shape[0], dtype=np.int64)
        val = np.empty(2 * val.shape[0], dtype=np.float32)
        nnz = sample_sparse(log1m, vmax, key, step, B, start, pos, val)
    return nnz, pos, val


@njit(cache=True)
def scatter_dense(X, start, pos, val):
    """X[n, B] ← the CSR batch (zeros elsewhere)."""
    X[:] = 0.0
    for i in range(X.shape[0]):
        for e in range(start[i], start[i + 1]):
            X[i, pos[e]] = val[e]


@njit(cache=True, fastmath=_FM)
def encode_sparse(W, start, pos, val, h, hT):
    """h[m, B] = W x from the CSR batch, touching only active entries: O(m · nnz) (scratch hT[B, m])."""
    m, n = W.shape
    hT[:] = 0.0
    for i in range(n):
        for e in range(start[i], start[i + 1]):
            b = pos[e]
            v = val[e]
            for k in range(m):
                hT[b, k] += W[k, i] * v
    for k in range(m):
        for b in range(hT.shape[0]):
            h[k, b] = hT[b, k]


@njit(cache=True, fastmath=_FM)
def weight_growth(W, lr_gamma):
    """§6.5's weight growth in place on W[m, n]: column i ← W_i + lr·γ·W_i·(1 − 1/(‖W_i‖ + 1e-8))."""
    m, n = W.shape
    for i in range(n):
        s = np.float32(0.0)
        for k in range(m):
            s += W[k, i] * W[k, i]
        f = np.float32(lr_gamma * (1.0 - 1.0 / (np.sqrt(np.float64(s)) + 1e-8)))
        for k in range(m):
            W[k, i] += f * W[k, i]


@njit(cache=True, fastmath=_FM)
def decode(kind, W, bias, imp, X, h, G, gb, c):
    """Output pre-activations G[j, b] = b_j + Σ_k W[o+k, j] h[k, b] (the dense part of a sparse step, unrolled by
    4 over k), then the paper's L of batch X[n, B] summed over samples (returned, float64); with c ≠ 0 (the
    objective's 2/(B·n)) G becomes dObjective/dpre and gb its row sums, as `loss_and_grad`."""
    rows, n = W.shape
    m = rows // 2 if kind == KIND_ABS else rows
    o = m if kind == KIND_ABS else 0
    B = X.shape[1]
    total = 0.0
    for j in range(n):
        bj = bias[j]
        for b in range(B):
            G[j, b] = bj
        k = 0
        while k + 4 <= m:
            w0, w1, w2, w3 = W[o + k, j], W[o + k + 1, j], W[o + k + 2, j], W[o + k + 3, j]
            for b in range(B):
                G[j, b] += w0 * h[k, b] + w1 * h[k + 1, b] + w2 * h[k + 2, b] + w3 * h[k + 3, b]
            k += 4
        while k < m:
            w0 = W[o + k, j]
            for b in range(B):
                G[j, b] += w0 * h[k, b]
            k += 1
        acc, gsum = _row_loss(kind, G, X, j, np.float32(c) * imp[j])
        total += np.float64(imp[j]) * np.float64(acc)
        gb[j] = gsum
    return total


@njit(cache=True, fastmath=_FM)
def loss_and_grad_sparse(kind, W, bias, imp, X, start, pos, val, l1, h, hT, dhT, G, WT, gWT, live, gW, gb):
    """`loss_and_grad` (tied kinds) doing only the work a sparse batch needs: the encoder and its gradient over
    the active entries (O(m·nnz)), the decoder's pre-activations densely (O(n·m·B)), and the backward pass
    only through live outputs, G[j, b] ≠ 0 (pre-activation > 0; O(m·live)). Scratch hT, dhT [B, m], WT, gWT
    [n, m], live [B]."""
    m, n = W.shape
    B = X.shape[1]
    zero = np.float32(0.0)
    encode_sparse(W, start, pos, val, h, hT)
    if kind == KIND_HIDDEN_RELU:
        for k in range(m):
            for b in range(B):
                h[k, b] = max(h[k, b], zero)
                hT[b, k] = h[k, b]
    loss = decode(kind, W, bias, imp, X, h, G, gb, 2.0 / (B * n))
    for j in range(n):
        for k in range(m):
            WT[j, k] = W[k, j]
            gWT[j, k] = 0.0
    dhT[:] = 0.0
    # decoder backward over live outputs: dh[b] += W_j g, gW_j += h[b] g (contiguous over k)
    for j in range(n):
        nl = 0
        for b in range(B):
            if G[j, b] != 0.0:
                live[nl] = b
                nl += 1
        for q in range(nl):
            b = live[q]
            g = G[j, b]
            for k in range(m):
                dhT[b, k] += WT[j, k] * g
                gWT[j, k] += hT[b, k] * g
    if l1 != 0.0:
        cl1 = np.float32(l1 / (B * n))
        for b in range(B):
            for k in range(m):
                hv = hT[b, k]
                dhT[b, k] += cl1 * (np.float32(1.0) if hv > 0.0 else (np.float32(-1.0) if hv < 0.0 else zero))
    if kind == KIND_HIDDEN_RELU:
        for b in range(B):
            for k in range(m):
                if not hT[b, k] > 0.0:
                    dhT[b, k] = 0.0
    # encoder backward over active entries: gW_i += dh[b] x_ib
    for i in range(n):
        for e in range(start[i], start[i + 1]):
            b = pos[e]
            v = val[e]
            for k in range(m):
                gWT[i, k] += dhT[b, k] * v
    for k in range(m):
        for j in range(n):
            gW[k, j] = gWT[j, k]
    return loss / B


@njit(cache=True, nogil=True)
def evaluate_sparse(kind, W, bias, imp, log1m, vmax, key, n_samples, chunk):
    """The paper's L of one instance (W[rows, n], bias[n], imp[n], log1m[n]) on n_samples samples of the sparse
    stream `key`, in chunks of `chunk` samples (chunk c = stream step c). Restarts of one configuration share a
    key, hence samples. Releases the GIL (instances run on Python threads)."""
    rows, n = W.shape
    m = rows // 2 if kind == KIND_ABS else rows
    n_chunks = (n_samples + chunk - 1) // chunk
    X = np.empty((n, chunk), dtype=np.float32)
    G = np.empty((n, chunk), dtype=np.float32)
    h = np.empty((m, chunk), dtype=np.float32)
    hT = np.empty((chunk, m), dtype=np.float32)
    gb = np.empty(n, dtype=np.float32)
    start = np.empty(n + 1, dtype=np.int64)
    cap = 64 + 2 * chunk
    pos = np.empty(cap, dtype=np.int64)
    val = np.empty(cap, dtype=np.float32)
    total = 0.0
    for c in range(n_chunks):
        B = min(chunk, n_samples - c * chunk)
        nnz, pos, val = sparse_batch(log1m, vmax, key, c, B, start, pos, val)
        Xc = X[:, :B]
        scatter_dense(Xc, start, pos, val)
        encode_sparse(W[:m], start, pos, val, h[:, :B], hT[:B])
        if kind == KIND_HIDDEN_RELU or kind == KIND_ABS:
            for kk in range(m):
                for b in range(B):
                    h[kk, b] = max(h[kk, b], np.float32(0.0))
        total += decode(kind, W, bias, imp, Xc, h[:, :B], G[:, :B], gb, 0.0)
    return total / n_samples


@njit(cache=True)
def optimiser_step(W, bias, gW, gb, mW, vW, mb, vb, lrs, lrs_b, wd, wd_b, growth, s):
    """Step s (0-based) of the optimiser on W[rows, n] and bias[n] from gradients gW, gb: §6.5's growth γ < 0 on W
    (0: none), then AdamW on W and on b with their own learning rates lrs[s], lrs_b[s] and decays wd, wd_b."""
    if growth < 0.0:
        weight_growth(W, lrs[s] * growth)
    lr = lrs[s]
    t = s + 1.0
    bc1 = 1.0 - 0.9**t
    bc2 = 1.0 - 0.999**t
    bc2_sqrt = bc2**0.5
    adamw(W.reshape(W.size), gW.reshape(gW.size), mW.reshape(mW.size), vW.reshape(vW.size), lr, wd, lr / bc1,
          bc2_sqrt)
    lr_b = lrs_b[s]
    adamw(bias, gb, mb, vb, lr_b, wd_b, lr_b / bc1, bc2_sqrt)


@njit(cache=True, nogil=True)
def train_dense(kind, dist, set_size, signed, vmax, W, bias, mW, vW, mb, vb, imp, thr, key, l1, lrs, lrs_b, wd, wd_b,
                growth, s0, s1, B, losses):
    """Steps s0 … s1−1 of one instance on the dense counter stream: W[rows, n], bias[n] and their AdamW moments in
    place, losses[s − s0] ← batch L (optimiser arguments as `optimiser_step`). Releases the GIL: `fast` runs
    instances on Python threads (a numba parallel loop here cost ≈ 20 s more compilation on a fresh install), and
    the sparse path is a separate kernel (`train_sparse`) so that a dense run never compiles it."""
    rows, n = W.shape
    m = rows // 2 if kind == KIND_ABS else rows  # hidden units (abs packs [W1; W2ᵀ] into W)
    X = np.empty((n, B), dtype=np.float32)
    h = np.empty((m, B), dtype=np.float32)
    dh = np.empty((m, B), dtype=np.float32)
    G = np.empty((n, B), dtype=np.float32)
    gW = np.empty((rows, n), dtype=np.float32)
    gb = np.empty(n, dtype=np.float32)
    buf = np.empty(B, dtype=np.float64)
    buf2 = np.empty(B, dtype=np.float64)
    for s in range(s0, s1):
        sample_batch(X, dist, thr, set_size, signed, key, s, buf, buf2, vmax)
        losses[s - s0] = loss_and_grad(kind, W, bias, imp, X, l1, h, G, dh, gW, gb)
        optimiser_step(W, bias, gW, gb, mW, vW, mb, vb, lrs, lrs_b, wd, wd_b, growth, s)


@njit(cache=True, nogil=True)
def train_sparse(kind, vmax, W, bias, mW, vW, mb, vb, imp, log1m, key, l1, lrs, lrs_b, wd, wd_b, growth, s0, s1, B,
                 losses):
    """`train_dense` with batches drawn by `sample_sparse` (config.sparse: independent features, tied kinds)."""
    m, n = W.shape
    X = np.empty((n, B), dtype=np.float32)
    h = np.empty((m, B), dtype=np.float32)
    G = np.empty((n, B), dtype=np.float32)
    gW = np.empty((m, n), dtype=np.float32)
    gb = np.empty(n, dtype=np.float32)
    start = np.empty(n + 1, dtype=np.int64)
    pos = np.empty(64 + 2 * B, dtype=np.int64)
    val = np.empty(64 + 2 * B, dtype=np.float32)
    hT = np.empty((B, m), dtype=np.float32)
    dhT = np.empty((B, m), dtype=np.float32)
    WT = np.empty((n, m), dtype=np.float32)
    gWT = np.empty((n, m), dtype=np.float32)
    live = np.empty(B, dtype=np.int64)
    for s in range(s0, s1):
        nnz, pos, val = sparse_batch(log1m, vmax, key, s, B, start, pos, val)
        scatter_dense(X, start, pos, val)
        losses[s - s0] = loss_and_grad_sparse(kind, W, bias, imp, X, start, pos, val, l1, h, hT, dhT, G, WT, gWT,
                                              live, gW, gb)
        optimiser_step(W, bias, gW, gb, mW, vW, mb, vb, lrs, lrs_b, wd, wd_b, growth, s)


def cached(kernel: str) -> bool:
    """Whether numba's on-disk cache holds `kernel` compiled from this very source (a stale index, e.g. after an
    edit, loads as empty)."""
    try:
        return bool(globals()[kernel]._cache._cache_file._load_index())
    except AttributeError:  # pragma: no cover - a numba without this layout: nothing to align
        return True
    except Exception:  # pragma: no cover - unreadable index: let a child rewrite it
        return False


def warm_up(kernel: str) -> None:
    """Compile `kernel` (train_dense, train_sparse or evaluate_sparse) into numba's on-disk cache by calling it on
    tiny arrays of exactly the types `fast` passes (C-contiguous float32 weights, float64 thresholds, learning
    rates and losses, a uint64 key, Python ints, floats and bools), so that `fast`'s own call is a cache hit. Needs
    no PyTorch: `tmslab.precompile` runs it in a child that imports this file alone."""
    if cached(kernel):
        return
    n, m, B, steps = 3, 2, 4, 2
    W, G = np.zeros((1, m, n), np.float32), np.zeros((1, m, n), np.float32)
    row = np.zeros((1, n), np.float32)
    W[0, 0, 0] = 0.5
    key = np.zeros(1, np.uint64)[0]
    lrs, losses = np.full(steps, 1e-3), np.zeros((1, steps))
    log1m = np.full((1, n), np.log1p(-0.5))
    if kernel == "train_dense":
        thr = np.full((1, n), 2.0**31)
        train_dense(0, 0, 1, False, 1.0, W[0], row[0], G[0], G[0].copy(), row[0].copy(), row[0].copy(), row[0] + 1,
                    thr[0], key, 0.0, lrs, lrs, 0.0, 0.0, 0.0, 0, steps, B, losses[0])
    elif kernel == "train_sparse":
        train_sparse(0, 1.0, W[0], row[0], G[0], G[0].copy(), row[0].copy(), row[0].copy(), row[0] + 1, log1m[0], key,
                     0.0, lrs, lrs, 0.0, 0.0, 0.0, 0, steps, B, losses[0])
    else:
        evaluate_sparse(0, W[0], row[0], row[0] + 1, log1m[0], 1.0, key, 4, 4)
