"""Packing a sweep into jobs: a pure function of the spec, never of the backend, workers or shard.

Every grid point becomes one *configuration* (density vector, importance vector) of a TrainConfig.
Points that agree on everything else (model, shapes, distribution, steps, batch, lr, schedule, …)
share a *job key*; each key's points, in grid order, are cut into near-equal chunks of at most
`max_instances // restarts` points, and each chunk is one batched TrainConfig job.

Seeds: jobs are numbered in order of their first grid point; the job's TrainConfig.seed is the
sweep seed plus the number of instances in all earlier jobs, so instance k of job j trains with
init seed `spec.seed + first_run(j) + k` — every run of the sweep has its own seed, and the
seeds depend only on the spec.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from tmslab.config import ConfigError, TrainConfig, density_law
from tmslab.sweep.spec import CONFIG_AXES, SweepSpec

#: "auto" packing aims at about this much work per job: steps × batch × (n·m + n) multiply-adds,
#: ≈ 20 s on one core with the fast engine — long enough to amortise per-job overhead (process
#: hand-off, evaluation, saving), short enough that a kill loses little and a pool balances well.
WORK_PER_JOB = 8e9
MAX_AUTO_INSTANCES = 4096
#: Per-configuration TrainConfig fields: they vary within a job, so they are not in the job key.
PER_CONFIG = ("density", "importance", "importance_decay")


@dataclass(frozen=True)
class Job:
    """One batched TrainConfig of the sweep."""

    index: int
    """Position in the job list (jobs are ordered by their first grid point)."""

    config: dict[str, Any]
    """TrainConfig keyword arguments, with per-configuration density and importance lists."""

    points: tuple[int, ...]
    """The grid point index of each configuration, in configuration order."""

    first_run: int
    """Instances in all earlier jobs: this job's seed is spec.seed + first_run."""

    @property
    def id(self) -> str:
        return f"j{self.index:05d}"

    @property
    def n_instances(self) -> int:
        return len(self.points) * self.config["restarts"]

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.config)


def point_values(spec: SweepSpec, point: int) -> dict[str, Any]:
    """The axis values of grid point `point` (first axis outermost, mixed radix)."""
    values = {}
    for name, axis in reversed(spec.grid.items()):
        point, i = divmod(point, len(axis))
        values[name] = axis[i]
    return dict(reversed(values.items()))


def _law_or_constant(value: Any, n: int, fields_: dict[str, Any]) -> list[Any]:
    """A density law name (§6.5, "power:0.5") as its per-feature probabilities, or one density for every feature."""
    if isinstance(value, str):
        return density_law(value, n, fields_.get("expected_active", TrainConfig.expected_active))
    return [value] * n


def _run_config(spec: SweepSpec, values: dict[str, Any]) -> tuple[dict[str, Any], list[float], list[float]]:
    """(job-level fields, density vector, importance vector) of one grid point."""
    fields_ = {k: v for k, v in spec.base.items() if k not in PER_CONFIG}
    fields_.update({k: v for k, v in values.items() if k not in CONFIG_AXES})
    n = fields_.get("n_features", TrainConfig.n_features)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"n_features must be an integer >= 1, got {n!r}.")
    base_density = spec.base.get("density", 1.0)
    if isinstance(base_density, list):
        if len(base_density) != n:
            raise ConfigError(f"base density has {len(base_density)} values but n_features is {n}.")
        density = [float(d) for d in base_density]
    else:
        density = _law_or_constant(base_density, n, fields_)
    if "density" in values:
        density = _law_or_constant(values["density"], n, fields_)
    law = values["density"] if "density" in values else base_density
    if isinstance(law, str) and "sparse" not in fields_:
        # The law becomes a per-feature list here, so TrainConfig cannot see it: resolve its sparse default
        # (the sparse path wherever a density law trains, `TrainConfig.sparse_by_default`) from the law's name.
        try:
            fields_["sparse"] = TrainConfig(**fields_, density=[law]).sparse_by_default()
        except (ConfigError, TypeError):
            pass  # an invalid configuration is reported, with its grid point, when its job is built
    if "density_of" in values:
        f = spec.density_of_feature
        if not -n <= f < n:
            raise ConfigError(f"density_of feature {f} is not a feature index of a model with {n} features.")
        density[f % n] = density[f % n] * values["density_of"]
    if "importance" in spec.base:
        importance = list(spec.base["importance"])
    else:
        decay = values.get("importance_decay", spec.base.get("importance_decay", 1.0))
        importance = [decay**i for i in range(n)]
    if "importance_decay" in values:
        importance = [values["importance_decay"] ** i for i in range(n)]
    if "importance_ratio" in values:
        importance[-1] = values["importance_ratio"]
    return fields_, density, importance


def _auto_instances(fields_: dict[str, Any], restarts: int) -> int:
    n = fields_.get("n_features", TrainConfig.n_features)
    m = fields_.get("n_hidden", TrainConfig.n_hidden)
    work = fields_.get("steps", TrainConfig.steps) * fields_.get("batch_size", TrainConfig.batch_size) * (n * m + n)
    return max(restarts, min(MAX_AUTO_INSTANCES, int(WORK_PER_JOB // max(1, work))))


def plan_jobs(spec: SweepSpec) -> list[Job]:
    """The sweep's job list; raises ConfigError naming the grid point of an invalid configuration."""
    groups: dict[str, list[tuple[int, list[float], list[float]]]] = {}
    fields_of: dict[str, dict[str, Any]] = {}
    for point in range(spec.n_points):
        values = point_values(spec, point)
        try:
            fields_, density, importance = _run_config(spec, values)
        except ConfigError as e:
            raise ConfigError(f"grid point {_describe(values)}: {e}") from None
        key = json.dumps(fields_, sort_keys=True)
        groups.setdefault(key, []).append((point, density, importance))
        fields_of[key] = fields_
    jobs: list[Job] = []
    first_run = 0
    chunks = []
    for key, members in groups.items():
        limit = spec.max_instances if spec.max_instances != "auto" else _auto_instances(fields_of[key], spec.restarts)
        per_job = max(1, limit // spec.restarts)
        # Near-equal chunks balance a pool better than full chunks plus a small remainder.
        n_chunks = math.ceil(len(members) / per_job)
        size, extra = divmod(len(members), n_chunks)
        start = 0
        for c in range(n_chunks):
            stop = start + size + (c < extra)
            chunks.append((key, members[start:stop]))
            start = stop
    chunks.sort(key=lambda kc: kc[1][0][0])  # jobs in the order of their first grid point
    for index, (key, members) in enumerate(chunks):
        config = {
            **fields_of[key],
            "density": [d for _, d, _ in members],
            "importance": [imp for _, _, imp in members],
            "restarts": spec.restarts,
            "seed": spec.seed + first_run,
        }
        config.pop("importance_decay", None)
        job = Job(index, config, tuple(p for p, _, _ in members), first_run)
        try:
            job.train_config()
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"grid point {_describe(point_values(spec, members[0][0]))}: {e}") from None
        jobs.append(job)
        first_run += job.n_instances
    return jobs


def _describe(values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in values.items()) + "}"


def select_shard(jobs: list[Job], shard: tuple[int, int] | None) -> list[Job]:
    """Shard i of n (0-based) takes jobs i, i+n, i+2n, …: deterministic and balanced."""
    if shard is None:
        return list(jobs)
    i, n = shard
    return jobs[i::n]


def parse_shard(text: str) -> tuple[int, int]:
    """'3/8' → (3, 8); shard indices are 0-based (SLURM: --shard $SLURM_ARRAY_TASK_ID/N with --array=0-(N-1))."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}.") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}.")
    return i, n


def weight_bytes(jobs: list[Job]) -> int:
    """Bytes of model.safetensors over all jobs (float32 weights, plus headers and JSON files)."""
    total = 0
    for job in jobs:
        c = job.config
        n, m = c.get("n_features", TrainConfig.n_features), c.get("n_hidden", TrainConfig.n_hidden)
        per = (2 * n * m + n) if c.get("model") == "abs" else (n * m + n)
        total += job.n_instances * per * 4 + 16_384 + 300 * job.n_instances
    return total
