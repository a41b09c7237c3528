"""A 6 × 6 SAE sweep (L1 × dictionary ratio) on the n = 400, m = 30 model's activations, through SAELens,
against a plain eager PyTorch loop training the same standard SAE (same shapes, loss and optimiser).

Target (issue 16): the 36 SAEs in ≤ 10 min on 2 cores. Prints the total, per-SAE times and the SAELens /
eager per-step ratio measured in this run.

    python benchmarks/bench_sae.py [--samples 1000000] [--grid 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from tmslab.config import TrainConfig
from tmslab.sae import RunSource, SAESettings, train_saelens
from tmslab.training import train


def eager_standard(source: RunSource, d_sae: int, l1: float, steps: int, batch: int, seed: int) -> float:
    """The same standard SAE as SAELens's (b_dec subtracted from the input, ReLU, decoder-norm-weighted L1,
    Adam 3e-4), as a bare loop: the floor any trainer can reach on this hardware."""
    torch.manual_seed(seed)
    W_dec = torch.nn.init.kaiming_uniform_(torch.empty(d_sae, source.d_in))
    W_dec = torch.nn.Parameter(W_dec / W_dec.norm(dim=1, keepdim=True) * 0.1)
    W_enc = torch.nn.Parameter(W_dec.detach().T.clone())
    b_enc, b_dec = torch.nn.Parameter(torch.zeros(d_sae)), torch.nn.Parameter(torch.zeros(source.d_in))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=3e-4)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        x = source.sample(batch, g)[0]
        acts = torch.relu((x - b_dec) @ W_enc + b_enc)
        out = acts @ W_dec + b_dec
        loss = ((out - x) ** 2).sum(-1).mean() + l1 * (acts * W_dec.norm(dim=1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=1_000_000, help="training activations per SAE")
    p.add_argument("--grid", type=int, default=6, help="points per axis (L1 × ratio)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model-steps", type=int, default=10_000)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t = time.perf_counter()
    run = train(TrainConfig(n_features=400, n_hidden=30, density=[0.01], steps=a.model_steps, seed=1))
    print(f"toy model n=400, m=30, density 0.01: {time.perf_counter() - t:.1f} s")

    class _Run:  # RunSource reads a saved run's fields; a TrainResult has the same ones
        config, params, path = run.config, run.params, "bench"
        W = run.params["W"]

    source = RunSource(_Run(), 0)
    print(f"learned features (ground truth): {source.n_true}")
    l1s = [10 ** (-2.5 + 2 * i / max(1, a.grid - 1)) for i in range(a.grid)]
    ratios = [0.25 * 2 ** (5 * i / max(1, a.grid - 1)) for i in range(a.grid)]
    total, steps = 0.0, a.samples // 1024
    for ratio in ratios:
        for l1 in l1s:
            s = SAESettings(arch="standard", ratio=ratio, l1=l1, samples=a.samples)
            t = time.perf_counter()
            train_saelens(source, s)
            dt = time.perf_counter() - t
            total += dt
        d_sae = s.d_sae(source.n_true)
        eager = eager_standard(source, d_sae, l1s[0], min(steps, 200), 1024, 0) / min(steps, 200) * steps
        print(f"ratio {ratio:5.2f} (d_sae {d_sae:5d}): SAELens {dt:6.1f} s per SAE, eager loop {eager:6.1f} s "
              f"(SAELens / eager {dt / eager:.2f})", flush=True)
    print(f"{a.grid} × {a.grid} sweep, {a.samples:,} activations per SAE, {a.threads} threads: {total:.0f} s "
          f"({total / 60:.1f} min; target ≤ 10 min)")


if __name__ == "__main__":
    main()
