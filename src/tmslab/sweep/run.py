"""The sweep driver: validate everything, write spec.json, run the jobs not yet done, assemble the table."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from tmslab.config import ConfigError
from tmslab.io import check_out_dir
from tmslab.sweep import store
from tmslab.sweep.backends import run_local, run_ray, thread_split
from tmslab.sweep.execute import JobOutput
from tmslab.sweep.plan import Job, plan_jobs, select_shard, weight_bytes
from tmslab.sweep.spec import SweepSpec, load_spec

Backend = Literal["local", "ray"]
#: Rewrite results.parquet at most this often while jobs finish (and always at the end).
RESULTS_EVERY_S = 10.0


def check_resources(out: Path, jobs: list[Job], workers: int) -> None:
    """Refuse, before anything is written, weights that cannot fit on disk or jobs that cannot fit in memory."""
    from tmslab.training import check_fits, estimate_memory

    for job in jobs:
        check_fits(job.train_config())
    biggest = max(estimate_memory(j.train_config()) for j in jobs)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 1 << 62
    if workers > 1 and biggest * workers > 0.8 * total:
        raise ConfigError(
            f"{workers} parallel jobs need ≈{biggest * workers / 2**30:.1f} GiB, more than this machine's "
            f"{total / 2**30:.1f} GiB; pass fewer --workers or a smaller max_instances."
        )
    need = weight_bytes(jobs)
    existing = out if out.exists() else out.resolve().parent
    free = shutil.disk_usage(existing).free
    if need > free:
        raise ConfigError(
            f"the sweep's weights need ≈{need / 2**30:.2f} GiB but {existing} has {free / 2**30:.2f} GiB free."
        )


def run_sweep(
    spec: Any,
    out: str | os.PathLike[str],
    *,
    backend: Backend = "local",
    progress: bool = True,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    force: bool = False,
    address: str | None = None,
    max_retries: int = 3,
) -> pd.DataFrame:
    """Run (or resume) a sweep into `out`; return its table (one row per run, grid order).

    spec: a dict, a YAML/TOML path or a SweepSpec. With `shard=(i, n)` only that share of the jobs
    runs and the share's rows are returned; `merge(out)` then assembles results.parquet.
    """
    out = Path(out)
    spec = load_spec(spec)
    jobs = plan_jobs(spec)
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be local or ray, got {backend!r}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, got {max_retries}.")
    check_out_dir(out, force=True)  # a sweep directory may hold earlier results: the spec digest decides
    digest = store.plan_digest(spec, jobs)
    fresh = store.check_resume(out, spec, digest, force)
    mine = select_shard(jobs, shard)
    n_workers, _ = thread_split(len(mine), workers)
    check_resources(out, jobs if fresh else mine, n_workers if backend == "local" else 1)
    if fresh:
        store.initialise(out, spec, digest, len(jobs))
    store.cleanup(out, mine)
    if shard is None:
        for p in out.glob(f".{store.RESULTS}.*.tmp"):
            p.unlink(missing_ok=True)

    done = store.done_jobs(out)
    for job in mine:
        if job.id not in done and store.recover(out, spec, job):
            done.add(job.id)
    todo = [j for j in mine if j.id not in done]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="sweep", unit="job", mininterval=0.5)
    last_write = time.monotonic()

    def on_done(output: JobOutput) -> None:
        nonlocal last_write
        store.commit(out, output)
        if bar is not None:
            bar.update(1)
        if shard is None and time.monotonic() - last_write > RESULTS_EVERY_S:
            # A readable partial table while a long sweep runs; the rows files stay the truth.
            store.write_results(out, store.read_rows(out, [j for j in jobs if j.id in store.done_jobs(out)]))
            last_write = time.monotonic()

    try:
        if backend == "local":
            run_local(spec, todo, on_done, workers)
        else:
            run_ray(spec, todo, on_done, address=address, max_retries=max_retries)
    finally:
        if bar is not None:
            bar.close()
    if shard is not None:
        return store.read_rows(out, mine)
    return _finish(out, spec, store.read_rows(out, jobs), progress)


def _finish(out: Path, spec: SweepSpec, df: pd.DataFrame, progress: bool) -> pd.DataFrame:
    """results.parquet: one row per run, or, with an `sae:` section, one row per SAE trained on the runs."""
    if spec.sae is not None:
        from tmslab.sweep.saes import train_saes

        df = train_saes(out, spec.sae, df, progress)
    store.write_results(out, df)
    return df


def merge(out: str | os.PathLike[str]) -> pd.DataFrame:
    """Join the shares of a sharded sweep into DIR/results.parquet; refuse if any job is missing."""
    out = Path(out)
    spec = store.load_stored_spec(out)
    jobs = plan_jobs(spec)
    done = store.done_jobs(out)
    for job in jobs:
        if job.id not in done and store.recover(out, spec, job):
            done.add(job.id)
    missing = [j.id for j in jobs if j.id not in done]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ConfigError(
            f"{out}: {len(missing)} of {len(jobs)} jobs are not done ({shown}); run the missing shards first."
        )
    return _finish(out, spec, store.read_rows(out, jobs), progress=False)


def load_results(out: str | os.PathLike[str]) -> pd.DataFrame:
    """DIR/results.parquet of a finished sweep."""
    path = Path(out) / store.RESULTS
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run or merge the sweep first.")
    return pd.read_parquet(path)


def load_weights(out: str | os.PathLike[str], row: Any) -> dict[str, Any]:
    """The weights of one run (a results row, or anything with job_dir and instance), e.g. {'W': [m, n], 'b': [n]}."""
    from tmslab.io import load_run

    run = load_run(Path(out) / row["job_dir"])
    return {name: p[int(row["instance"])] for name, p in run.params.items()}


def describe(spec: SweepSpec, jobs: list[Job]) -> str:
    sizes = sorted({j.n_instances for j in jobs})
    size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    runs = f"{spec.n_runs} runs ({spec.n_points} grid points × {spec.restarts} restarts)"
    return f"{runs} in {len(jobs)} jobs of {size} instances"
