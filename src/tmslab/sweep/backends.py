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

import contextlib
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from tmslab.sweep.execute import JobOutput, execute_job, set_threads
from tmslab.sweep.plan import Job
from tmslab.sweep.spec import SweepSpec

OnDone = Callable[[JobOutput], None]


class SweepJobError(RuntimeError):
    """A job failed (e.g. training diverged); finished jobs are kept, re-running resumes."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def thread_split(n_jobs: int, workers: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker): one job per core; with fewer jobs than cores, the spare cores
    go to the workers as threads (large models then still use the whole machine)."""
    cores = cpu_count()
    if workers is None:
        workers = max(1, min(cores, n_jobs))
    return workers, max(1, cores // workers)


def _driver_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by someone else
        return True
    try:  # a killed driver not yet reaped by its parent is a zombie: dead for our purposes
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # pragma: no cover - no procfs
        return True


def _watch_driver(pid: int) -> None:
    while _driver_alive(pid):
        time.sleep(0.5)
    os._exit(1)


def _init_worker(threads: int, driver: int) -> None:
    # Pool workers hold both ends of the call queue, so they never see EOF when the driver is
    # SIGKILLed: without this watchdog they (and the forkserver) would linger forever.
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True).start()
    signal.signal(signal.SIGTERM, _exit_on_term)
    set_threads(threads)


def _exit_on_term(signum: int, frame: object) -> None:
    """The driver stops a worker with SIGTERM (Ctrl-C, `_stop_workers`): exit at once, but first release
    the named semaphores this process registered (numba's thread-launch lock), which multiprocessing's
    resource tracker would otherwise report as "leaked" when the driver exits."""
    from multiprocessing import util

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group-wide SIGTERM and the driver's may both arrive
    util._run_finalizers(0)  # what a normal exit runs first; private, but the only way short of exiting
    os._exit(128 + signum)


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
    import multiprocessing as mp

    # forkserver, not fork: forking a parent whose torch/OpenMP thread pools are running can deadlock.
    # The server imports torch and the engine once, so workers start in milliseconds, not seconds.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tmslab.sweep.execute", "tmslab.training", "tmslab.training.fast", "tmslab.summary"])
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, os.getpid())
    ) as pool:
        try:
            with _worker_start():  # processes start on submit
                pending: dict[Future, Job] = {pool.submit(execute_job, spec, job): job for job in jobs}
        except KeyboardInterrupt:
            _stop_workers(pool)
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
            _stop_workers(pool)  # Ctrl-C / SIGTERM: do not wait for the running jobs
            raise
        if error is not None:
            raise error


@contextlib.contextmanager
def _worker_start() -> Iterator[None]:
    """Start pool processes that run only tmslab code and ignore Ctrl-C.

    * SIGINT is blocked while they start: the forkserver (started here on first use) and every worker
      forked from it inherit the mask, so a Ctrl-C sent to the whole process group reaches only this
      driver, which stops them (`_stop_workers`) instead of each printing a KeyboardInterrupt traceback.
    * `__main__` is hidden: multiprocessing would otherwise re-import the caller's script in the
      forkserver and in every worker, re-running a script without an `if __name__ == "__main__":` guard.
      Jobs are tmslab objects and never need the caller's module.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    blocked = threading.current_thread() is threading.main_thread()
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending Ctrl-C is raised now


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's processes at once (the jobs they run are lost; committed jobs are kept)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    # The pool's manager thread now sees dead workers and closes its queues; waiting for it releases
    # their semaphores (otherwise reported as "leaked" by multiprocessing's resource tracker at exit).
    pool.shutdown(wait=True, cancel_futures=True)


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


def run_ray(
    spec: SweepSpec,
    jobs: list[Job],
    on_done: OnDone,
    address: str | None = None,
    max_retries: int = 3,
    threads: int = 1,
) -> None:
    """Schedule every job as a Ray task (num_cpus = threads); worker deaths are retried by Ray."""
    try:
        import ray
    except ImportError:
        from tmslab.config import ConfigError

        raise ConfigError("--backend ray needs Ray: pip install 'tmslab[ray]'.") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=threads, max_retries=max_retries)(_ray_task)
        pending = {task.remote(spec, job, threads): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    output = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    for other in pending:
                        ray.cancel(other)
                    raise SweepJobError(f"job {job.id} failed: {str(e.cause) if e.cause else e}") from None
                except ray.exceptions.RayError as e:
                    for other in pending:
                        ray.cancel(other)
                    raise SweepJobError(f"job {job.id} failed on Ray after {max_retries} retries: {e}") from None
                on_done(output)
    finally:
        if started:
            ray.shutdown()
