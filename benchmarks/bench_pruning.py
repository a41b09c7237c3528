"""Successive halving vs exhaustive restarts for `privileged` (§2.9, E14: n=10, m=5, 11 densities, 10k steps).

    python benchmarks/bench_pruning.py plans --seeds 200 300   # ≈ 3 min: plans on held-out seeds, 16 restarts
    python benchmarks/bench_pruning.py equal-compute            # ≈ 4 min: the main plan vs exhaustive, same cost

`plans`: for each seed, 16 restarts per density trained to the end (exhaustive) and, on the same seeds, each
candidate plan's keep fractions applied to those 16 (`privileged._exhaustive_plan`, as `tms reproduce` does
for seed 100). Counts the densities where the pruned winner's eval loss is within 1% of the exhaustive
winner's — the privileged experiment's same-seed check — and each plan's cost in instance-steps per density.

`equal-compute`: the main plan (1000 restarts, seed 100, as in `tms reproduce`) against exhaustive training of as
many restarts as the same instance-steps buy, on the same evaluation samples: is pruning worth its cost?
Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import torch

from tmslab.experiments.privileged import PLAN, _base, _exhaustive_plan, signature, successive_halving
from tmslab.experiments.privileged import plan_cost as cost
from tmslab.training import train
from tmslab.training.fast import ensure_cached

#: Candidate plans (restarts alive, cumulative steps), written for 1000 restarts; the first is the one in use.
PLANS = {
    "in use": PLAN,
    "halve from 1k": [(1000, 1000), (500, 2000), (250, 4000), (125, 7000), (64, 10000)],
    "halve to 3k": [(1000, 500), (500, 1000), (250, 3000), (64, 6000), (16, 10000)],
    "8/4/2 of 16": [(1000, 1000), (500, 3000), (250, 6000), (125, 10000)],
    "first cut at 2k": [(1000, 2000), (250, 5000), (64, 10000)],
    # Control: the in-use rounds (fresh AdamW state and data at each) without pruning — are misses pruning's?
    "keep all": [(1000, 500), (1000, 2000), (1000, 5000), (1000, 10000)],
}


def plans(seeds: list[int], restarts: int = 16) -> None:
    for seed in seeds:
        config = replace(_base(False, restarts=restarts), seed=seed)
        start = time.perf_counter()
        best = train(config).eval_loss.view(-1, restarts).min(1).values
        print(json.dumps({"seed": seed, "exhaustive_restarts": restarts,
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
        for name, plan in PLANS.items():
            small = _exhaustive_plan(restarts, plan)
            result, _ = successive_halving(replace(config, restarts=1), small)
            found = result.eval_loss.view(-1, small[-1][0]).min(1).values
            close = (found <= 1.01 * best).tolist()
            print(json.dumps({"seed": seed, "plan": name, "small_plan": small, "densities_within_1pct": sum(close),
                              "of": len(close), "per_density": "".join("x" if c else "." for c in close),
                              "instance_steps_per_density": cost(plan)}), flush=True)


def equal_compute(seed: int = 100) -> None:
    config = replace(_base(False), seed=seed)
    k = round(cost(PLAN) / config.steps)
    start = time.perf_counter()
    pruned, _ = successive_halving(config, PLAN)
    t_pruned = time.perf_counter() - start
    start = time.perf_counter()
    exhaustive = train(replace(config, restarts=k))
    t_exh = time.perf_counter() - start
    # One evaluation sample set per density whatever the restart count: the losses are paired.
    alive = PLAN[-1][0]
    for c, d in enumerate(config.density):
        lp = pruned.eval_loss[c * alive:(c + 1) * alive]
        le = exhaustive.eval_loss[c * k:(c + 1) * k]
        ip, ie = c * alive + int(lp.argmin()), c * k + int(le.argmin())
        print(json.dumps({"density": d, "pruned_best_of": PLAN[0][0], "exhaustive_best_of": k,
                          "loss_ratio_pruned_over_exhaustive": round(float(lp.min() / le.min()), 4),
                          "pruned": signature(pruned.params["W"][ip].double()),
                          "exhaustive": signature(exhaustive.params["W"][ie].double())}), flush=True)
    print(json.dumps({"seconds_pruned": round(t_pruned, 1), "seconds_exhaustive": round(t_exh, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["plans", "equal-compute"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[200, 300])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(a.threads)  # read when numba's threading layer starts
    torch.set_num_threads(a.threads)
    ensure_cached()
    if a.what == "plans":
        plans(a.seeds)
    else:
        equal_compute()


if __name__ == "__main__":
    main()
