"""Numba kernel of finite-dataset training (training.finite): the full-batch loss and gradient, fused.

One pass per data point: gather its hidden vector from its non-zeros (CSR rows), sweep every feature once
(z = W_i·h + b_i; where z > 0 add z² to the loss and z·h, z·W_i, z to the gradients), then correct the
active entries and push the hidden gradient back through the tied encoder. Nothing of size [T, n] is ever
formed. Work items are blocks of consecutive points of one instance, each with its own float64 gradient
buffer, summed per instance in a fixed order afterwards — so the result does not depend on the thread count.
Compiled without fastmath: comparisons and sums are exact IEEE, and the tests compare with the PyTorch path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def loss_and_grad_items(Wt, b, tau, perm, item_inst, item_start, item_stop, indptr, col, val, grad):
    """Per instance: (Σ_t Σ_i (x − r)², and the gradients ∂/∂Wᵀ [n, m] and ∂/∂b [n] of half of it), float64.
    Work item w covers points item_start[w] … item_stop[w]−1 of instance item_inst[w]; Wt [instances, n, m].

    tau [instances, n] ascending, perm [instances, n]: feature perm[k, q] can have z > 0 only at points with
    ‖h‖ > tau[k, q] (|W_i·h| ≤ ‖W_i‖‖h‖, so z ≤ b_i + ‖W_i‖‖h‖); the dense sweep visits just those features.
    Skipped features have r = 0 exactly, so the result is unchanged — and most features are skipped once the
    biases have turned negative."""
    n, m = Wt.shape[1], Wt.shape[2]
    items = item_inst.shape[0]
    loss = np.zeros(items)
    gW = np.zeros((items if grad else 1, n, m))
    gb = np.zeros((items if grad else 1, n))
    for w in prange(items):
        k = item_inst[w]
        Wk = Wt[k]
        bk = b[k]
        h = np.empty(m)
        gh = np.empty(m)
        g = np.int64(w) if grad else np.int64(0)
        for t in range(item_start[w], item_stop[w]):
            h[:] = 0.0
            for a in range(indptr[t], indptr[t + 1]):
                i, x = col[a], val[a]
                for j in range(m):
                    h[j] += Wk[i, j] * x
            gh[:] = 0.0
            s = 0.0
            norm = 0.0
            for j in range(m):
                norm += h[j] * h[j]
            # A relative guard of 1e-6 keeps every feature whose bound is within rounding of firing.
            active = np.searchsorted(tau[k], np.sqrt(norm) * (1.0 + 1e-6))
            # Dense sweep: every feature's r² and its share of the gradient (∂/∂z = 2r), branch-free since
            # z > 0 is a coin flip early in training and mispredicted branches would dominate.
            for q in range(active):
                i = perm[k, q]
                z = np.float64(bk[i])
                for j in range(m):
                    z += Wk[i, j] * h[j]
                r = max(z, 0.0)
                s += r * r
                if grad:
                    for j in range(m):
                        gW[g, i, j] += r * h[j]
                        gh[j] += r * Wk[i, j]
                    gb[g, i] += r
            # Active entries: (x − r)² − r² = x² − 2xr, ∂/∂z = −2x where z > 0.
            for a in range(indptr[t], indptr[t + 1]):
                i, x = col[a], np.float64(val[a])
                z = np.float64(bk[i])
                for j in range(m):
                    z += Wk[i, j] * h[j]
                s += x * x - 2.0 * x * max(z, 0.0)
                if grad and z > 0.0:
                    for j in range(m):
                        gW[g, i, j] -= x * h[j]
                        gh[j] -= x * Wk[i, j]
                    gb[g, i] -= x
            loss[w] += s
            if grad:
                # The encoder use of the tied W: ∂h_t/∂W_i = x_ti.
                for a in range(indptr[t], indptr[t + 1]):
                    i, x = col[a], val[a]
                    for j in range(m):
                        gW[g, i, j] += x * gh[j]
    # Items → instances, serially in item order: the same sums whatever the thread count.
    K = Wt.shape[0]
    loss_k = np.zeros(K)
    gW_k = np.zeros((K if grad else 1, n, m))
    gb_k = np.zeros((K if grad else 1, n))
    for w in range(items):
        k = item_inst[w]
        loss_k[k] += loss[w]
        if grad:
            gW_k[k] += gW[w]
            gb_k[k] += gb[w]
    return loss_k, gW_k, gb_k

