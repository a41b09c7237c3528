"""Sweep vs one instances-batched eager loop, on the phase-diagram grid (acceptance 4).

    python benchmarks/bench_sweep.py                       # 32×32 grid × 10 restarts, n=2, m=1, 10,000 steps
    python benchmarks/bench_sweep.py --points 8 --steps 2000   # a quick check

Sweep: `run_sweep` (local backend, all cores, packed jobs, default engine), wall time end to end
(planning, training, evaluation, metrics, writing every run). Eager: the same 10,240 instances as one
TrainConfig on the reference engine, timed on `--eager-steps` steps and scaled to `--steps`, plus
its evaluation of all instances (measured once). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from tmslab.config import TrainConfig
from tmslab.pool import cpu_count
from tmslab.sweep import load_spec, plan_jobs, run_sweep
from tmslab.training import _engine, train


def spec(points: int, restarts: int, steps: int) -> dict:
    return {
        "base": {"model": "relu-output", "features": 2, "hidden": 1, "steps": steps},
        "grid": {
            "density": {"log_range": [1.0, 0.01], "points": points},
            "importance_ratio": {"log_range": [0.1, 10], "points": points},
        },
        "restarts": restarts,
    }


def eager_seconds(s: dict, eager_steps: int) -> tuple[float, float]:
    """(training seconds scaled to the full step count, evaluation seconds) of one batched reference loop."""
    jobs = plan_jobs(load_spec(s))
    density = [d for j in jobs for d in j.config["density"]]
    importance = [i for j in jobs for i in j.config["importance"]]
    config = TrainConfig(
        n_features=2, n_hidden=1, density=density, importance=importance, restarts=s["restarts"],
        steps=eager_steps, engine="reference",
    )  # fmt: skip
    torch.set_num_threads(cpu_count())
    start = time.perf_counter()
    result = train(config)
    total = time.perf_counter() - start
    return result.train_seconds * s["base"]["steps"] / eager_steps, total - result.train_seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=32)
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--eager-steps", type=int, default=100)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="sweep directory (default: a temporary one)")
    args = p.parse_args()

    s = spec(args.points, args.restarts, args.steps)
    jobs = plan_jobs(load_spec(s))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "sweep"
        start = time.perf_counter()
        df = run_sweep(s, out, workers=args.workers, progress=False)
        sweep_s = time.perf_counter() - start
    eager_train, eager_eval = eager_seconds(s, args.eager_steps)
    eager_s = eager_train + eager_eval
    print(
        json.dumps(
            {
                "runs": len(df),
                "jobs": len(jobs),
                "instances_per_job": sorted({j.n_instances for j in jobs}),
                "steps": args.steps,
                "engine": _engine(jobs[0].train_config()),
                "sweep_s": round(sweep_s, 1),
                "sweep_train_s_sum": round(float(df.drop_duplicates("job")["train_seconds"].sum()), 1),
                "eager_train_s_scaled": round(eager_train, 1),
                "eager_eval_s": round(eager_eval, 1),
                "eager_s": round(eager_s, 1),
                "eager_steps_measured": args.eager_steps,
                "speedup": round(eager_s / sweep_s, 1),
                "cores": cpu_count(),
                "torch": torch.__version__,
                "machine": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
