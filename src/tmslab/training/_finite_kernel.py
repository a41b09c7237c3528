"""Numba kernel of finite-dataset training (training.finite): the full-batch loss and gradient, fused.

One pass per data point: gather its hidden vector from its non-zeros (CSR rows), sweep the features that can
fire (z = W_i·h + b_i; where z > 0 add z² to the loss and z·h, z·W_i, z to the gradients), then correct the
active entries and push the hidden gradient back through the tied encoder. Nothing of size [T, n] is ever
formed. The features arrive sorted by the norm of h at which they can first fire and laid out [hidden,
features], so the dense sweep runs over one contiguous prefix in SIMD lanes. Work items are blocks of
consecutive points of one instance, each with its own float64 gradient buffer, summed per instance in a fixed
order afterwards — so the result does not depend on the thread count. Only re-association of sums is allowed
(`fastmath={"reassoc"}`, which lets the sweep's sums use vector lanes); comparisons stay exact IEEE, and the
tests compare with the PyTorch path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def loss_and_grad_items(Wp, bp, Wt, pos, tau, item_inst, item_start, item_stop, indptr, col, val, grad):
    """Per instance: (Σ_t Σ_i (x − r)², and the gradients ∂/∂W [m, n] and ∂/∂b [n] of half of it in the
    *sorted* feature order), float64. Work item w covers points item_start[w] … item_stop[w]−1 of instance
    item_inst[w].

    Wp [instances, m, n], bp [instances, n]: weights and biases with the features sorted by tau (ascending);
    feature q of that order can have z > 0 only at points with ‖h‖ > tau[k, q] (|W_i·h| ≤ ‖W_i‖‖h‖), so the
    dense sweep visits just a prefix. Skipped features have r = 0 exactly, so the result is unchanged — and most
    features are skipped once the biases have turned negative. Wt [instances, n, m] (original order) gathers
    h; pos [instances, n] is each original feature's place in the sorted order."""
    m, n = Wp.shape[1], Wp.shape[2]
    items = item_inst.shape[0]
    loss = np.zeros(items)
    gW = np.zeros((items if grad else 1, m, n))
    gb = np.zeros((items if grad else 1, n))
    for w in prange(items):
        k = item_inst[w]
        Wk = Wp[k]
        bk = bp[k]
        h = np.empty(m)
        gh = np.empty(m)
        r = np.empty(n)
        g = np.int64(w) if grad else np.int64(0)
        for t in range(item_start[w], item_stop[w]):
            h[:] = 0.0
            for a in range(indptr[t], indptr[t + 1]):
                i, x = col[a], val[a]
                for j in range(m):
                    h[j] += Wt[k, i, j] * x
            norm = 0.0
            for j in range(m):
                norm += h[j] * h[j]
            # A relative guard of 1e-6 keeps every feature whose bound is within rounding of firing.
            active = np.searchsorted(tau[k], np.sqrt(norm) * (1.0 + 1e-6))
            # Dense sweep over the prefix: r = ReLU(z), Σ r² and each feature's share of the gradient (∂/∂z = 2r),
            # one hidden dimension at a time so that every inner loop is contiguous in q.
            for q in range(active):
                r[q] = bk[q]
            for j in range(m):
                hj = h[j]
                for q in range(active):
                    r[q] += Wk[j, q] * hj
            s = 0.0
            for q in range(active):
                rq = max(r[q], 0.0)
                r[q] = rq
                s += rq * rq
            if grad:
                for j in range(m):
                    hj = h[j]
                    acc = 0.0
                    for q in range(active):
                        gW[g, j, q] += r[q] * hj
                        acc += r[q] * Wk[j, q]
                    gh[j] = acc
                for q in range(active):
                    gb[g, q] += r[q]
            # Active entries: (x − r)² − r² = x² − 2xr, ∂/∂z = −2x where z > 0.
            for a in range(indptr[t], indptr[t + 1]):
                q, x = pos[k, col[a]], np.float64(val[a])
                z = bk[q]
                for j in range(m):
                    z += Wk[j, q] * h[j]
                s += x * x - 2.0 * x * max(z, 0.0)
                if grad and z > 0.0:
                    for j in range(m):
                        gW[g, j, q] -= x * h[j]
                        gh[j] -= x * Wk[j, q]
                    gb[g, q] -= x
            loss[w] += s
            if grad:
                # The encoder use of the tied W: ∂h_t/∂W_i = x_ti.
                for a in range(indptr[t], indptr[t + 1]):
                    q, x = pos[k, col[a]], val[a]
                    for j in range(m):
                        gW[g, j, q] += x * gh[j]
    # Items → instances, serially in item order: the same sums whatever the thread count.
    K = Wp.shape[0]
    loss_k = np.zeros(K)
    gW_k = np.zeros((K if grad else 1, m, n))
    gb_k = np.zeros((K if grad else 1, n))
    for w in range(items):
        k = item_inst[w]
        loss_k[k] += loss[w]
        if grad:
            gW_k[k] += gW[w]
            gb_k[k] += gb[w]
    return loss_k, gW_k, gb_k
