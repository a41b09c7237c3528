"""The sweep directory: what is on disk, when a job counts as done, and how the table is assembled.

    DIR/spec.json              normalised spec + digest of the job list (written first, atomically)
    DIR/jobs/<job>/            the job's run directory in the core format (io.save_run: renamed into place)
    DIR/rows/<job>.parquet     the job's rows (atomic write), written after its run directory
    DIR/results.parquet        all rows, in grid order (atomic write; rebuilt from DIR/rows)

A job is done iff DIR/rows/<job>.parquet exists. Each file appears by an atomic rename, so a
SIGKILL at any instant leaves every job either done, or with a complete run directory but no rows
(its rows are then recomputed from the saved weights, not retrained), or with nothing but
temporary files (removed, the job re-runs). results.parquet is derived, never the source of truth.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from tmslab.config import ConfigError
from tmslab.io import atomic_write_json, atomic_write_parquet, load_run, make_dir, output_kind, remove_output, save_run
from tmslab.naming import option, spelled
from tmslab.sweep.execute import JobOutput, job_rows
from tmslab.sweep.plan import Job
from tmslab.sweep.spec import SweepSpec

SPEC, RESULTS, JOBS, ROWS = "spec.json", "results.parquet", "jobs", "rows"
FORMAT = "tmslab-sweep-1"


def plan_digest(spec: SweepSpec, jobs: list[Job]) -> str:
    """Hash of the spec and its job list: equal digests mean the same jobs with the same seeds."""
    import hashlib

    text = json.dumps([spec.to_dict(), [j.config for j in jobs]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def existing_digest(out: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(stored spec, digest) of DIR, or (None, None) if DIR holds no sweep."""
    path = out / SPEC
    if not path.exists():
        return None, None
    try:
        stored = json.loads(path.read_text())
        return stored["spec"], stored["digest"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is unreadable ({e.__class__.__name__}); is {out} a sweep directory?") from None


def check_resume(out: Path, spec: SweepSpec, digest: str, force: bool) -> bool:
    """Refuse a changed spec against an existing DIR (unless force); True if DIR must be (re)initialised."""
    stored, old = existing_digest(out)
    if old is None or old == digest:
        return old is None
    if not force:
        changed = sorted(k for k in spec.to_dict() if stored.get(k) != spec.to_dict()[k]) or ["packing"]
        raise ConfigError(
            f"{out} holds a sweep of a different spec (changed: {', '.join(changed)}); "
            f"use a new {spelled('out')}, or pass {option('force')} to discard its results."
        )
    return True


def initialise(out: Path, spec: SweepSpec, digest: str, n_jobs: int) -> None:
    """Start DIR afresh: drop the old results (only files tmslab wrote), then write spec.json (last, atomically)."""
    if output_kind(out) is not None:
        remove_output(out)
    make_dir(out, "sweep")
    atomic_write_json(out / SPEC, {"format": FORMAT, "digest": digest, "n_jobs": n_jobs, "spec": spec.to_dict()})


def load_stored_spec(out: Path) -> SweepSpec:
    stored, digest = existing_digest(out)
    if stored is None:
        raise ConfigError(f"{out} holds no sweep ({SPEC} is missing).")
    return SweepSpec.from_normalised(stored)


def done_jobs(out: Path) -> set[str]:
    rows = out / ROWS
    if not rows.is_dir():
        return set()
    return {p.name[: -len(".parquet")] for p in rows.iterdir() if p.name.endswith(".parquet") and p.name[0] != "."}


def cleanup(out: Path, jobs: list[Job]) -> None:
    """Remove temporary leftovers of *these* jobs only (concurrent shards may be writing others')."""
    ids = {j.id for j in jobs}
    for sub in (JOBS, ROWS):
        d = out / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            # save_run's temporaries are .<job>.<random>.partial and .<job>.old; atomic writes .<job>.parquet.*.tmp
            if p.name.startswith(".") and p.name[1:].split(".")[0] in ids:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def write_rows(out: Path, job_id: str, rows: pd.DataFrame) -> None:
    """DIR/rows/<job>.parquet, atomically (temporary file in the same directory, fsync, rename)."""
    d = make_dir(out / ROWS)
    atomic_write_parquet(d / f"{job_id}.parquet", rows)


def commit(out: Path, output: JobOutput) -> None:
    """Write a finished job: its run directory first, then its rows (which mark it done)."""
    make_dir(out / JOBS)
    save_run(out / JOBS / output.job_id, output.result, force=True)
    write_rows(out, output.job_id, output.rows)


def recover(out: Path, spec: SweepSpec, job: Job) -> bool:
    """A job killed between its run directory and its rows: recompute the rows from the saved weights."""
    run_dir = out / JOBS / job.id
    if not (run_dir / "metrics.json").exists():
        return False
    run = load_run(run_dir)
    m = run.metrics
    rows = job_rows(spec, job, run.params, run.eval_loss.tolist(), run.best.tolist(), m["train_seconds"], m["engine"])
    write_rows(out, job.id, rows)
    return True


def read_rows(out: Path, jobs: list[Job]) -> pd.DataFrame:
    """The rows of the given (done) jobs, in grid order (point, then restart)."""
    frames = [pd.read_parquet(out / ROWS / f"{j.id}.parquet") for j in jobs]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["point", "restart"], kind="stable").reset_index(drop=True)


def write_results(out: Path, df: pd.DataFrame) -> Path:
    atomic_write_parquet(out / RESULTS, df)
    return out / RESULTS
