"""A 6 × 6 SAE sweep (L1 × dictionary ratio) on the n = 400, m = 30 model's activations: the batched trainer
(tmslab.sae_batched, all 36 standard SAEs in lockstep on one activation stream) against SAELens's
one-SAE-at-a-time SAETrainer and a plain eager PyTorch loop training the same standard SAE.

Target (issue 16): the 36 SAEs in ≤ 10 min on 2 cores. The batched sweep is timed in full. SAELens and the
eager loop are timed on `--compare-steps` steps of one SAE per ratio and extrapolated to the full sweep
(36 SAEs × the sweep's steps) — labelled as such in the output. Wall and CPU seconds are both printed (on a
shared machine the CPU time is the fairer figure).

    python benchmarks/bench_sae.py [--samples 1000000] [--grid 6] [--threads 2] [--compare-steps 50]
                                   [--measure-steps N]   # time N batched steps and extrapolate (loaded machine)
"""

from __future__ import annotations

import argparse
import time

import torch

from tmslab.config import TrainConfig
from tmslab.sae import RunSource, SAESettings, train_saelens
from tmslab.sae_batched import train_batched
from tmslab.training import train


def eager_standard(source: RunSource, d_sae: int, l1: float, steps: int, batch: int, seed: int) -> float:
    """The same standard SAE as SAELens's (b_dec subtracted from the input, ReLU, decoder-norm-weighted L1,
    Adam 3e-4), as a bare autograd loop; wall seconds for `steps` steps."""
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
    p.add_argument("--compare-steps", type=int, default=50, help="steps per SAE timed for SAELens and eager")
    p.add_argument("--measure-steps", type=int, default=0,
                   help="time the batched sweep on this many steps and extrapolate (0: the whole sweep)")
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
    batch = 1024
    steps = -(-a.samples // batch)
    measured = min(a.measure_steps or steps, steps)
    grid = [SAESettings(arch="standard", ratio=r, l1=l1, samples=measured * batch, batch_size=batch) for r in ratios
            for l1 in l1s]
    w, c = time.perf_counter(), time.process_time()
    train_batched(source, grid, progress=True)
    batched_wall = (time.perf_counter() - w) * steps / measured
    batched_cpu = (time.process_time() - c) * steps / measured
    how = "measured" if measured == steps else f"extrapolated from {measured} of {steps} steps"
    print(f"batched: {a.grid} × {a.grid} sweep, {a.samples:,} activations per SAE ({steps} steps), {a.threads} "
          f"threads, {how}: {batched_wall:.0f} s wall ({batched_wall / 60:.1f} min; target ≤ 10 min), "
          f"{batched_cpu:.0f} s CPU", flush=True)
    n = min(a.compare_steps, steps)
    saelens_total = eager_total = 0.0
    for ratio in ratios:
        s = SAESettings(arch="standard", ratio=ratio, l1=l1s[0], samples=n * batch, batch_size=batch)
        t = time.perf_counter()
        train_saelens(source, s)
        sl = (time.perf_counter() - t) / n * steps
        eager = eager_standard(source, s.d_sae(source.n_true), l1s[0], n, batch, 0) / n * steps
        saelens_total += a.grid * sl
        eager_total += a.grid * eager
        print(f"ratio {ratio:5.2f} (d_sae {s.d_sae(source.n_true):5d}): per SAE, extrapolated from {n} steps: "
              f"SAELens {sl:6.1f} s, eager loop {eager:6.1f} s", flush=True)
    print(f"extrapolated {a.grid} × {a.grid} sweep (from {n} steps per ratio): SAELens one at a time "
          f"{saelens_total:.0f} s ({saelens_total / 60:.1f} min), eager loop {eager_total:.0f} s; batched ({how}) "
          f"{batched_wall:.0f} s → SAELens / batched {saelens_total / batched_wall:.2f}, eager / batched "
          f"{eager_total / batched_wall:.2f}")


if __name__ == "__main__":
    main()
