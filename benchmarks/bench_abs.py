"""The absolute-value model (§5, `abs-sweep`'s configuration): fast engine vs the reference loop.

    python benchmarks/bench_abs.py                      # n=100, m=40, 7 densities, 10,000 steps, 2 threads
    python benchmarks/bench_abs.py --reference-steps 200   # a quicker estimate of the reference

Both through `tmslab.training.train` in this process (numba's cache warmed first), the same config
apart from `engine`. The reference loop is timed on `--reference-steps` steps and scaled linearly to
`--steps` (its cost per step is constant); the fast engine runs all steps. Quality: both engines' mean
evaluation loss (the paper's L on the same 10,000 samples per density) after `--reference-steps` steps, the
fast engine's also after all steps. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import torch

from tmslab.config import TrainConfig
from tmslab.training import train
from tmslab.training.fast import ensure_cached


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--reference-steps", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(a.threads)  # read when numba's threading layer starts
    torch.set_num_threads(a.threads)
    ensure_cached()
    config = TrainConfig(model="abs", n_features=100, n_hidden=40, importance_decay=0.8,
                         density=[1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001], steps=a.steps, eval_samples=10_000)
    timings = {}
    for engine, steps in (("fast", a.steps), ("reference", a.reference_steps)):
        start = time.perf_counter()
        result = train(replace(config, engine=engine, steps=steps))
        wall = time.perf_counter() - start
        timings[engine] = {"steps": steps, "wall_s": round(wall, 2), "train_s": round(result.train_seconds, 2),
                           "train_s_scaled": round(result.train_seconds * a.steps / steps, 1),
                           "mean_eval_loss": round(float(result.eval_loss.mean()), 6)}
    # The same step count for both engines: is the fast engine's model as good as the reference loop's?
    short = train(replace(config, engine="fast", steps=a.reference_steps))
    same = float(short.eval_loss.mean())
    rel = same / timings["reference"]["mean_eval_loss"] - 1
    ratio = timings["reference"]["train_s_scaled"] / timings["fast"]["train_s_scaled"]
    print(json.dumps({"config": "abs n=100 m=40, 7 densities, batch 1024", "threads": a.threads,
                      **timings, "speedup_training_loop": round(ratio, 1),
                      f"fast_mean_eval_loss_at_{a.reference_steps}_steps": round(same, 6),
                      "eval_loss_fast_vs_reference_same_steps": f"{rel:+.2%}"}))


if __name__ == "__main__":
    main()
