"""What `tms reproduce` would train, and how long this machine needs for it (`--dry-run`; printed before a paper run).

Each run still to train is timed by training its own configuration for a few steps on this machine: twice, with
SHORT and SHORT + TIMED steps, so that the difference is the cost of TIMED steps without the set-up (building the
model, sampling a finite dataset, compiling kernels), and once more the evaluation on EVAL_PROBE samples. The
estimate of a run is set-up + steps × per-step + evaluation scaled to its evaluation samples. Runs of one shape
(everything but the optimiser's settings and the seed) are timed once. What a plan cannot time is listed as such:
sweeps, and the runs an analysis trains itself (best-of initialisations, SAEs) — their cost is not in the total.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmslab.config import TrainConfig
from tmslab.experiments.base import Experiment, Tier
from tmslab.experiments.runner import RESULTS, finished_run, is_done, on_device

#: Steps of the first timing run (the set-up and the first, slower steps) and the extra steps of the second.
SHORT, TIMED = 2, 10
#: Evaluation samples of the timing runs (the estimate scales the evaluation to the run's own count).
EVAL_PROBE = 2_000
#: Fields that do not change the cost of a step: runs differing only in these share one timing.
COST_FREE = ("seed", "lr", "lr_b", "weight_decay", "decay_bias", "schedule", "lr_floor", "warmup_steps", "steps",
             "eval_samples", "init", "init_scale")


@dataclass
class PlannedRun:
    """One run of the plan."""

    experiment: str
    name: str
    config: TrainConfig
    state: str
    """"train" (to be trained), "saved" (a finished run with this configuration is reused) or "done" (the
    experiment's results at this tier exist: nothing of it runs)."""
    seconds: float = 0.0
    """The estimated wall time on this machine (0 unless state is "train")."""


@dataclass
class Plan:
    tier: Tier
    runs: list[PlannedRun]
    untimed: list[str]
    """What the plan cannot time (sweeps, runs that analyses train), one line each."""

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)


def _shape(config: TrainConfig) -> tuple[Any, ...]:
    d = config.to_dict()
    return tuple(sorted((k, repr(v)) for k, v in d.items() if k not in COST_FREE))


def time_config(config: TrainConfig) -> tuple[float, float, float]:
    """(set-up seconds, seconds per step, evaluation seconds per sample) of `config` on this machine, measured
    from two short trainings of it."""
    from tmslab.training import train

    def probe(steps: int) -> Any:
        probe_config = TrainConfig.from_dict({**config.to_dict(), "steps": steps, "warmup_steps": 0,
                                              "eval_samples": EVAL_PROBE, "record_every": 0})
        start = time.perf_counter()
        result = train(probe_config)
        return time.perf_counter() - start, result

    probe(SHORT)  # compiles what the first call of a shape compiles (numba caches it for the runs)
    wall_short, short = probe(SHORT)
    _, long = probe(SHORT + TIMED)
    per_step = (long.train_seconds - short.train_seconds) / TIMED
    if per_step <= 0:  # a step shorter than the clock's noise (tiny models, a loaded machine): the mean step instead
        per_step = long.train_seconds / (SHORT + TIMED)
    setup = max(0.0, wall_short - short.train_seconds - short.eval_seconds)
    return setup, per_step, short.eval_seconds / EVAL_PROBE


def estimate_seconds(config: TrainConfig, timing: tuple[float, float, float]) -> float:
    setup, per_step, per_sample = timing
    return setup + config.steps * per_step + config.eval_samples * per_sample


def plan(
    experiments: list[Experiment], out: Path, fidelity: Tier, device: str = "cpu", reanalyse: bool = False
) -> Plan:
    """What `tms reproduce --fidelity FIDELITY --out OUT` would train for `experiments`, with times measured here
    (`reanalyse`: finished experiments are analysed again, so their runs read "saved", not "done")."""
    runs: list[PlannedRun] = []
    untimed: list[str] = []
    timings: dict[tuple[Any, ...], tuple[float, float, float]] = {}
    for exp in experiments:
        exp = on_device(exp, device)
        tier = exp.tier(fidelity)
        configs = exp.runs_at(tier)
        if not reanalyse and is_done(out / exp.name, tier):
            runs += [PlannedRun(exp.name, n, c, "done") for n, c in configs.items()]
            continue
        for name, config in configs.items():
            if finished_run(out / exp.name / name, config) is not None:
                runs.append(PlannedRun(exp.name, name, config, "saved"))
                continue
            key = _shape(config)
            if key not in timings:
                timings[key] = time_config(config)
            runs.append(PlannedRun(exp.name, name, config, "train", estimate_seconds(config, timings[key])))
        for name in exp.sweeps(tier == "quick"):
            untimed.append(f"{exp.name}/{name}: a sweep")
        if exp.analysis_trains:
            untimed.append(f"{exp.name}: {exp.analysis_trains} (trained by its analysis)")
    return Plan(fidelity, runs, untimed)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(
    experiments: list[Experiment], out: Path, fidelity: Tier, device: str = "cpu", reanalyse: bool = False
) -> str:
    """The plan as `tms reproduce` prints it: one line per run, then the total for this machine."""
    p = plan(experiments, out, fidelity, device, reanalyse)
    lines = [f"plan ({fidelity} fidelity, {device}; times measured on this machine from a few steps of each shape):"]
    for r in p.runs:
        c = r.config
        shape = (f"n={c.n_features}, m={c.n_hidden}, {c.n_instances} instances, "
                 + (f"T={list(c.dataset_size)}" if c.finite else f"batch {c.batch_size}") + f", {c.steps:,} steps")
        what = {"train": f"≈ {_duration(r.seconds)}", "saved": "saved, reused",
                "done": f"done earlier ({RESULTS} at this tier)"}[r.state]
        lines.append(f"  {r.experiment}/{r.name}: {shape}: {what}")
    for line in p.untimed:
        lines.append(f"  {line}: not in the estimate")
    todo = sum(r.state == "train" for r in p.runs)
    lines.append(f"total: {todo} runs to train, ≈ {_duration(p.seconds)} on this machine"
                 + (" (one experiment at a time; --jobs runs several at once)" if todo else ""))
    return "\n".join(lines)
