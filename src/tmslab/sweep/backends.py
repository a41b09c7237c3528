"""Backends: where jobs run. Each one calls `on_done(JobOutput)` in the driver as jobs finish.

local  — a process pool (forkserver) on this machine; in-process when one worker suffices.
         Workers neither import the caller's script (so a script without an `if __name__ ==
         "__main__":` guard is safe) nor react to Ctrl-C: the driver stops them on KeyboardInterrupt.
ray    — one Ray task per job on an existing cluster (`address`) or a local one; a task whose
         worker dies is retried (`max_retries`). Tasks return their output; the driver writes it.

Results do not depend on the backend: jobs and seeds come from the spec, and an instance's
weights do not depend on the thread count (see training/fast.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from typing import Any

from tmslab.config import ConfigError
from tmslab.pool import cpu_count, process_pool, stop_workers, worker_start
from tmslab.sweep.execute import JobOutput, execute_job
from tmslab.sweep.plan import Job
from tmslab.sweep.spec import SweepSpec

OnDone = Callable[[JobOutput], None]


class SweepJobError(RuntimeError):
    """A job failed (e.g. training diverged); finished jobs are kept, re-running resumes."""


def thread_split(n_jobs: int, workers: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker): one job per core; with fewer jobs than cores, the spare cores
    go to the workers as threads (large models then still use the whole machine)."""
    cores = cpu_count()
    if workers is None:
        workers = max(1, min(cores, n_jobs))
    return workers, max(1, cores // workers)


def run_local(spec: SweepSpec, jobs: list[Job], on_done: OnDone, workers: int | None = None) -> None:
    if not jobs:
        return
    workers, threads = thread_split(len(jobs), workers)
    if workers == 1:
        import torch

        before = torch.get_num_threads()
        try:
            for job in jobs:
                on_done(_checked(job, lambda j=job: execute_job(spec, j, threads)))
        finally:
            torch.set_num_threads(before)
        return
    preload = ["tmslab.sweep.execute", "tmslab.training", "tmslab.training.fast", "tmslab.summary"]
    with process_pool(workers, threads, preload) as pool:
        try:
            with worker_start():  # processes start on submit
                pending: dict[Future, Job] = {pool.submit(execute_job, spec, job): job for job in jobs}
        except KeyboardInterrupt:
            stop_workers(pool)
            raise
        error: BaseException | None = None
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    if fut.cancelled():
                        continue
                    try:
                        output = _checked(job, fut.result)
                    except SweepJobError as e:
                        # Stop scheduling, but keep the jobs already running: their work is saved.
                        error = error or e
                        for other in pending:
                            other.cancel()
                        continue
                    on_done(output)
        except BaseException:
            for other in pending:
                other.cancel()
            stop_workers(pool)  # Ctrl-C / SIGTERM: do not wait for the running jobs
            raise
        if error is not None:
            raise error


def _checked(job: Job, get: Callable[[], JobOutput]) -> JobOutput:
    from concurrent.futures.process import BrokenProcessPool

    from tmslab.training import TrainingDivergedError

    try:
        return get()
    except TrainingDivergedError as e:
        raise SweepJobError(f"job {job.id} failed: {e}") from None
    except BrokenProcessPool:
        raise SweepJobError(f"a worker died while running job {job.id} (out of memory?); re-run to resume.") from None


def _ray_task(spec: SweepSpec, job: Job, threads: int) -> JobOutput:
    return execute_job(spec, job, threads)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'tmslab[ray]'.") from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Connect to the Ray cluster at `address` (None: start a local one) for the duration of the block.

    A caller's own Ray session is used and left open. Ray itself retries an address where nothing
    listens for minutes and reports a cluster that wants a token as a stack trace (after ~20 s of its
    own log lines); both end in a one-line ConfigError here, raised before the block runs.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield
        return
    if address not in (None, "auto", "local"):
        _check_listening(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except ConnectionError as e:
        # Ray wraps the authentication failure in the text of a RuntimeError two causes down.
        if any("AuthenticationError" in str(c) or "InvalidAuthToken" in str(c) for c in _causes(e)):
            raise ConfigError(
                f"--address {address}: the Ray cluster there wants token authentication; set RAY_AUTH_MODE=token "
                "and give its token (~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)."
            ) from None
        raise ConfigError(f"--address {address}: cannot connect to a Ray cluster there ({e}).") from None
    try:
        yield
    finally:
        ray.shutdown()


def _causes(e: BaseException) -> Iterator[BaseException]:
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__
        yield e


def _check_listening(address: str) -> None:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(
            f"--address {address!r} is not HOST:PORT (as printed by `ray start --head`, e.g. 127.0.0.1:6379)."
        )
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(
            f"--address {address}: nothing answers there ({e.strerror or e}); start a cluster with `ray start --head`, "
            "or leave out --address to run on a local one."
        ) from None


def run_ray(spec: SweepSpec, jobs: list[Job], on_done: OnDone, max_retries: int = 3, threads: int = 1) -> None:
    """Schedule every job as a Ray task (num_cpus = threads) inside a `ray_session`; worker deaths are
    retried by Ray up to `max_retries` times."""
    ray = _import_ray()
    task = ray.remote(num_cpus=threads, max_retries=max_retries)(_ray_task)
    pending = {task.remote(spec, job, threads): job for job in jobs}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            job = pending.pop(ref)
            try:
                output = ray.get(ref)
            except ray.exceptions.RayError as e:
                for other in pending:  # a failed job stops the sweep; the finished jobs are kept
                    ray.cancel(other)
                if isinstance(e, ray.exceptions.RayTaskError):
                    raise SweepJobError(f"job {job.id} failed: {str(e.cause) if e.cause else e}") from None
                raise SweepJobError(f"job {job.id} failed on Ray after {max_retries} retries: {e}") from None
            on_done(output)
