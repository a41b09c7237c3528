"""The sweep driver: validate everything, write spec.json, run the jobs not yet done, assemble the table."""

from __future__ import annotations

import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from tmslab.config import ConfigError
from tmslab.io import check_output_dir
from tmslab.naming import plural, spelled
from tmslab.progress import Interrupted
from tmslab.sweep import store
from tmslab.sweep.backends import ray_session, run_local, run_ray, thread_split
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
    existing = out.resolve()
    while not existing.exists():  # missing parents are created later, as mkdir -p would
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if need > free:
        raise ConfigError(
            f"the sweep's weights need ≈{need / 2**30:.2f} GiB but {existing} has {free / 2**30:.2f} GiB free."
        )


@dataclass
class SweepPlan:
    """A checked sweep: what `run_sweep` will do (see `check_sweep`)."""

    spec: SweepSpec
    jobs: list[Job]
    mine: list[Job]
    """The jobs of this shard (all jobs without sharding)."""
    digest: str
    fresh: bool
    """True if `out` holds no sweep of this spec yet (it is initialised before the jobs run)."""


def check_sweep(
    spec: Any,
    out: str | os.PathLike[str],
    *,
    backend: Backend = "local",
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    force: bool = False,
    max_retries: int = 3,
) -> SweepPlan:
    """Everything a sweep checks before it writes (spec, options, `out`, resume, memory, disk); writes nothing.

    `tms sweep --dry-run` runs exactly this, so it refuses what the real run would refuse.
    """
    out = Path(out)
    spec = load_spec(spec)
    jobs = plan_jobs(spec)
    if backend not in ("local", "ray"):
        raise ConfigError(f"{spelled('backend')} must be local or ray, got {backend!r}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"{spelled('workers')} must be >= 1, got {workers}.")
    if max_retries < 0:
        raise ConfigError(f"{spelled('max_retries')} must be >= 0, got {max_retries}.")
    # An existing sweep folder is resumed (the spec digest decides); anything else is refused here.
    check_output_dir(out, "sweep", force=force, resume=True)
    digest = store.plan_digest(spec, jobs)
    fresh = store.check_resume(out, spec, digest, force)
    mine = select_shard(jobs, shard)
    n_workers, _ = thread_split(len(mine), workers)
    check_resources(out, jobs if fresh else mine, n_workers if backend == "local" else 1)
    return SweepPlan(spec, jobs, mine, digest, fresh)


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
    runs and the share's rows are returned; `merge(out)` then assembles results.parquet. Missing
    parent folders of `out` are created. On Ctrl-C the workers are stopped and `progress.Interrupted`
    is raised; finished jobs are kept and the same call resumes.
    """
    out = Path(out)
    plan = check_sweep(spec, out, backend=backend, workers=workers, shard=shard, force=force, max_retries=max_retries)
    # Ray connects before anything is written: an unreachable or refusing cluster leaves no folder behind.
    with ray_session(address) if backend == "ray" else nullcontext():
        return _run_plan(plan, out, backend, progress, workers, shard, max_retries)


def _run_plan(
    plan: SweepPlan,
    out: Path,
    backend: Backend,
    progress: bool,
    workers: int | None,
    shard: tuple[int, int] | None,
    max_retries: int,
) -> pd.DataFrame:
    spec, jobs, mine, digest = plan.spec, plan.jobs, plan.mine, plan.digest
    if plan.fresh:
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
        from tmslab.progress import bar as progress_bar

        bar = progress_bar(len(mine), "sweep", "job", initial=len(mine) - len(todo))
    last_write = time.monotonic()

    finished = len(mine) - len(todo)

    def on_done(output: JobOutput) -> None:
        nonlocal last_write, finished
        store.commit(out, output)
        finished += 1
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
            run_ray(spec, todo, on_done, max_retries=max_retries)
    except KeyboardInterrupt:  # the backend has stopped its workers; every committed job is kept
        raise Interrupted(f"{finished}/{len(mine)} jobs done") from None
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
    size = plural(sizes[0], "instance") if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]} instances"
    runs = f"{plural(spec.n_runs, 'run')} ({plural(spec.n_points, 'grid point')} × {plural(spec.restarts, 'restart')})"
    return f"{runs} in {plural(len(jobs), 'job')} of {size}"
