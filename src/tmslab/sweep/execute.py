"""Running one job (in a pool worker, a Ray task or in-process) and turning it into table rows.

A worker only computes: it returns the TrainResult and the job's rows, and the driver writes them
(store.commit). Keeping every write in the driver means one place owns atomicity, and Ray workers
on other nodes need no shared filesystem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tmslab.pool import set_threads
from tmslab.sweep.plan import Job, point_values
from tmslab.sweep.spec import SweepSpec

#: If set, every job writes an empty file `<dir>/<job id>.<pid>` when it starts: a debugging and
#: testing hook that tells which process runs which job (the Ray test kills a worker this way).
MARKER_ENV = "TMSLAB_SWEEP_MARKERS"

#: Columns that differ between otherwise identical runs (timing); excluded when comparing tables.
TIMING_COLUMNS = ("train_seconds",)


@dataclass
class JobOutput:
    """What a worker sends back: the trained batch and its rows."""

    job_id: str
    result: Any  # TrainResult
    rows: pd.DataFrame


def execute_job(spec: SweepSpec, job: Job, threads: int | None = None) -> JobOutput:
    """Train `job` and compute its rows (the whole work of one job, no writes except the marker)."""
    from tmslab.training import train

    marker_dir = os.environ.get(MARKER_ENV)
    if marker_dir:
        Path(marker_dir, f"{job.id}.{os.getpid()}").touch()
    set_threads(threads)
    result = train(job.train_config())
    rows = job_rows(spec, job, result.params, result.eval_loss.tolist(), result.best.tolist(),
                    result.train_seconds, result.engine)  # fmt: skip
    return JobOutput(job.id, result, rows)


def job_rows(
    spec: SweepSpec,
    job: Job,
    params: dict[str, Any],
    eval_loss: list[float],
    best: list[bool],
    train_seconds: float,
    engine: str,
) -> pd.DataFrame:
    """One row per instance of `job`: axis values, restart, metrics, seed and where the weights are."""
    from tmslab.summary import instance_metrics

    config = job.train_config()
    from tmslab.models import encoder

    geo = instance_metrics(encoder(config.model, params))
    constant = {k: getattr(config, k) for k in ("model", "n_features", "n_hidden") if k not in spec.grid}
    rows = []
    for k in range(job.n_instances):
        c, r = divmod(k, config.restarts)
        rows.append(
            {
                "point": job.points[c],
                **point_values(spec, job.points[c]),
                "restart": r,
                "eval_loss": float(eval_loss[k]),
                "is_best": bool(best[k]),
                "learned": int(geo["learned"][k]),
                "frob2": float(geo["frob2"][k]),
                "D_star": float(geo["D*"][k]),
                "sum_D": float(geo["sum_D"][k]),
                "polytopes": geo["polytopes"][k],
                **constant,
                "feature_density": [float(v) for v in config.config_density(c)],
                "feature_importance": [float(v) for v in config.config_importance(c)],
                "seed": config.instance_seed(k),
                "job": job.id,
                "job_dir": f"jobs/{job.id}",
                "instance": k,
                "train_seconds": float(train_seconds),
                "engine": engine,
            }
        )
    return pd.DataFrame(rows)
