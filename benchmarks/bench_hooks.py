"""Cost of training-time recording in the fast engine: `record_every` = 0 (off) vs 100 (and the finer
intervals the dynamics experiments use). Each recording unpacks the weights and stores a snapshot of every
parameter and the batch loss per instance, from which D_i, the loss curve and the 3-D snapshots are computed.

    python benchmarks/bench_hooks.py            # 2 threads, best of 3 repeats per setting

Times `TrainResult.train_seconds` (the training loop with its hooks, without evaluation) through
`tmslab.training.train`, numba's cache warmed first, settings interleaved so that drifting machine load hits all
alike. Prints one JSON line per configuration with the overhead of each interval against no recording.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

import torch

from tmslab.config import TrainConfig
from tmslab.training import train
from tmslab.training.fast import ensure_cached

CONFIGS = {
    # energy-jumps at full fidelity (it records every 20 steps)
    "energy-jumps n=100 m=10, 4 instances": TrainConfig(n_features=100, n_hidden=10, density=[0.4], restarts=4,
                                                        steps=10_000, eval_samples=1_000, seed=1),
    # geometry-dynamics at full fidelity (every 50 steps)
    "geometry-dynamics n=6 m=3 correlated, 16 instances": TrainConfig(
        n_features=6, n_hidden=3, density=[0.1], distribution="correlated", set_size=3, restarts=16, steps=10_000,
        eval_samples=1_000, seed=2),
    # the engine benchmark's small grid: many instances, tiny models (per-step cost smallest, so overhead largest)
    "n=5 m=2, 100 instances": TrainConfig(n_features=5, n_hidden=2, importance_decay=0.9,
                                          density=[float(d) for d in torch.logspace(0, -2, 10)], restarts=10,
                                          steps=10_000, eval_samples=1_000),
}
INTERVALS = [0, 100, 50, 20]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(a.threads)  # read when numba's threading layer starts
    torch.set_num_threads(a.threads)
    ensure_cached()
    for name, config in CONFIGS.items():
        train(replace(config, steps=200))  # warm-up: first-call costs out of the timings
        best = {k: float("inf") for k in INTERVALS}
        for _ in range(a.repeats):
            for k in INTERVALS:
                result = train(replace(config, record_every=k, engine="fast"))
                best[k] = min(best[k], result.train_seconds)
        print(json.dumps({"config": name, "threads": a.threads, "loop_seconds": {k: round(v, 3) for k, v in
                                                                                   best.items()},
                          "overhead_vs_off": {k: f"{best[k] / best[0] - 1:+.1%}" for k in INTERVALS[1:]}}),
              flush=True)


if __name__ == "__main__":
    main()
