"""The `scaling-laws` experiment at the paper's schedule (Liu, Liu & Gore 2025, exp-10: 20,000 steps × batch 2,048),
on any device, with a wider γ grid and several training processes at once. `tms reproduce --fidelity paper --only
scaling-laws` runs the same (γ = ±1) grid one run at a time; this script trains it, or more γ, in parallel.

    python examples/scaling_schedule.py --out runs/scaling-schedule --device cuda --gammas 1,-1,0.5,0.1 --jobs 6

Trains every (γ, m) model of `tmslab.experiments.scaling.ScalingLaws` — n = 1,000, m ∈ {10 … 100}, α ∈ {0, 0.5, 1}
as three instances of each run — in `--jobs` processes, in the order the γ are given (a `--deadline` stops starting
new ones, so the first γ finish first), saving each run as `tms reproduce` does (DIR/scaling-laws/NAME). Then, unless
`--train-only`, it analyses the saved weights with the experiment's own code: the spec's checks at γ = ±1, the
tables and figures over every γ, written to DIR/scaling-laws/results.json and DIR/index.html — at paper fidelity
when the schedule is at least the paper's, else at full. Runs already saved with the same configuration are
reused, so a `--train-only` pass on a GPU machine followed by a plain pass (or `tms reproduce --fidelity paper`)
elsewhere analyses the very weights the GPU trained.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import time
from pathlib import Path

import torch

from tmslab.config import TrainConfig
from tmslab.experiments.runner import build_index, finished_run, run_experiment, write_summary
from tmslab.experiments.scaling import PAPER_SCHEDULE, ScalingLaws
from tmslab.io import save_run
from tmslab.training import train


def _train_one(rdir: Path, config: TrainConfig, threads: int) -> tuple[str, float, float]:
    torch.set_num_threads(threads)
    result = train(config)
    save_run(rdir, result, force=True)
    return rdir.name, result.train_seconds, result.eval_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--gammas", default="1,-1", help="comma list, in priority order; must include 1 and -1")
    ap.add_argument("--steps", type=int, default=PAPER_SCHEDULE["steps"])
    ap.add_argument("--batch-size", type=int, default=PAPER_SCHEDULE["batch_size"])
    ap.add_argument("--eval-samples", type=int, default=PAPER_SCHEDULE["eval_samples"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per job (the evaluation runs on CPU)")
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds after which no new run starts")
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()

    order = [float(g) for g in args.gammas.split(",")]
    size = dict(
        PAPER_SCHEDULE,
        steps=args.steps,
        batch_size=args.batch_size,
        warmup_steps=args.steps // 10,
        eval_samples=args.eval_samples,
    )
    exp = ScalingLaws(gammas=tuple(order), size=size, device=args.device)
    exp.notes += (
        f" This run (examples/scaling_schedule.py): {args.steps:,} steps × batch {args.batch_size:,} "
        f"with {args.steps // 10:,} warm-up steps, trained on {args.device}, γ ∈ {sorted(order)}."
    )
    # The paper tier judges D16's exponent rows; a shorter schedule is analysed as a full-fidelity run.
    at_paper = args.steps >= PAPER_SCHEDULE["steps"] and args.batch_size >= PAPER_SCHEDULE["batch_size"]
    tier = "paper" if at_paper else "full"
    configs = exp.grid_runs(tier)
    edir = args.out / exp.name
    todo = sorted(
        (name for name in configs if finished_run(edir / name, configs[name]) is None),
        key=lambda name: order.index(configs[name].weight_decay),
    )
    print(f"{len(configs) - len(todo)} of {len(configs)} runs already saved; training {len(todo)}", flush=True)
    if todo:
        # One tiny run first compiles the sparse evaluation's kernels into numba's cache for every worker.
        # (A law, not the run's own density: α = 0 runs store a per-feature list of the run's n.)
        train(
            TrainConfig(
                **{
                    **configs[todo[0]].to_dict(),
                    "n_features": 50,
                    "density": ["power:1"],
                    "steps": 2,
                    "eval_samples": 1000,
                }
            )
        )
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, edir / name, configs[name], args.threads): name for name in todo}
        for fut in cf.as_completed(futures):
            if fut.cancelled():
                continue
            try:
                name, train_s, eval_s = fut.result()
            except Exception as e:  # noqa: BLE001 - one failed run must not lose the others' results
                print(f"{futures[fut]} failed: {e}", flush=True)
                continue
            print(
                f"{time.perf_counter() - start:7.1f} s  {name}: train {train_s:.1f} s, eval {eval_s:.1f} s", flush=True
            )
            if time.perf_counter() - start > args.deadline:
                cancelled = sum(f.cancel() for f in futures)
                print(f"deadline: {cancelled} runs not started", flush=True)
                args.deadline = float("inf")  # said once
    if args.train_only:
        return
    missing = [name for name in configs if finished_run(edir / name, configs[name]) is None]
    if missing:
        raise SystemExit(f"error: {len(missing)} runs missing ({', '.join(missing[:4])} …); run again to train them.")
    results = run_experiment(exp, args.out, tier, progress=False)
    write_summary(args.out)
    build_index(args.out)
    for check in results["checks"]:
        print(f"{check['status']:>8}  {check['name']}: {check['measured']} (expected {check['expected']})")
    for s in results["tables"]["per_regime"]:
        print(
            f"γ = {s['gamma']:+g}, α = {s['alpha']:g}: loss exponent {s['loss_exponent']:.3f} (prediction "
            f"{s['predicted_exponent']:.3f}), represented/m {s['represented_over_m']}"
        )


if __name__ == "__main__":
    main()
