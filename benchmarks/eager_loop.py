"""The plain eager PyTorch loop of the paper's companion notebook — the baseline of bench_engine.py.

Deliberately does NOT import tmslab. Per step: two torch.rand of [instances, batch, features]
(values and mask, `rand <= density`), torch.where, two bmm (W x and Wᵀ h), ReLU, importance-weighted
MSE averaged over batch and features and summed over instances, backward, torch.optim.AdamW
(lr 1e-3, PyTorch defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01), constant lr.
Init: the notebook's xavier_normal_ on the 3-D [instances, features, hidden] tensor.

Also holds the evaluation shared by every engine in the benchmark: the paper's L per instance on
fresh samples drawn with a fixed seed (notebook sampling rule).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def train_eager(
    n: int, m: int, density: torch.Tensor, importance: torch.Tensor, steps: int, batch: int = 1024, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Returns (W [instances, hidden, features], b [instances, features], seconds per step)."""
    torch.manual_seed(seed)
    K = density.shape[0]
    W = torch.nn.Parameter(torch.empty(K, n, m))
    torch.nn.init.xavier_normal_(W)
    b = torch.nn.Parameter(torch.zeros(K, n))
    opt = torch.optim.AdamW([W, b], lr=1e-3)
    p = density[:, None, :]
    imp = importance[:, None, :]
    t0 = time.perf_counter()
    for _ in range(steps):
        feat = torch.rand(K, batch, n)
        x = torch.where(torch.rand(K, batch, n) <= p, feat, torch.zeros(()))
        h = torch.bmm(x, W)  # [K, B, m]
        out = torch.relu(torch.bmm(h, W.transpose(1, 2)) + b[:, None, :])
        loss = (imp * (x - out) ** 2).mean(dim=(1, 2)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    per_step = (time.perf_counter() - t0) / steps
    return W.detach().transpose(1, 2).contiguous(), b.detach().clone(), per_step


@torch.no_grad()
def eval_loss(
    W: torch.Tensor,
    b: torch.Tensor,
    density: torch.Tensor,
    importance: torch.Tensor,
    samples: int = 100_000,
    seed: int = 2022,
    chunk: int = 10_000,
) -> torch.Tensor:
    """Paper L = E Σ_i I_i (x_i − ReLU(WᵀWx + b)_i)² per instance, on `samples` fresh samples."""
    g = torch.Generator().manual_seed(seed)
    K, m, n = W.shape
    total = torch.zeros(K, dtype=torch.float64)
    done = 0
    while done < samples:
        c = min(chunk, samples - done)
        feat = torch.rand(K, c, n, generator=g)
        x = torch.where(torch.rand(K, c, n, generator=g) <= density[:, None, :], feat, torch.zeros(()))
        h = torch.einsum("kbn,kmn->kbm", x, W)
        out = torch.relu(torch.einsum("kbm,kmn->kbn", h, W) + b[:, None, :])
        total += (importance[:, None, :] * (x - out) ** 2).sum(-1).sum(-1).double()
        done += c
    return (total / samples).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--m", type=int, default=2)
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--importance-decay", type=float, default=0.9)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write W, b (safetensors) here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dens = 20 ** -torch.linspace(0, 1, a.configs)
    density = dens.repeat_interleave(a.restarts)[:, None].expand(-1, a.n).contiguous()
    importance = (a.importance_decay ** torch.arange(a.n).float()).expand(density.shape[0], -1).contiguous()
    W, b, per_step = train_eager(a.n, a.m, density, importance, a.steps)
    if a.out:
        from safetensors.torch import save_file

        save_file({"W": W.contiguous(), "b": b.contiguous()}, a.out)
    print(json.dumps({"seconds_per_step": per_step}))


if __name__ == "__main__":
    main()
