"""Local process pools that behave on Ctrl-C: the plumbing shared by `tms sweep` (one job per worker) and
`tms reproduce --jobs` (one experiment per worker).

Workers are forked from a forkserver (forking a parent whose torch/OpenMP thread pools run can deadlock),
never import the caller's script (a script without an `if __name__ == "__main__":` guard is safe), ignore
Ctrl-C (the driver stops them), exit at once on SIGTERM and exit by themselves if the driver dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> None:
    """Pin torch (and through it the fast engine's numba pool) to `threads` threads."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _alive(pid: int) -> bool:
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
    while _alive(pid):
        time.sleep(0.5)
    os._exit(1)


def _init_worker(threads: int, driver: int) -> None:
    # Pool workers hold both ends of the call queue, so they never see EOF when the driver is
    # SIGKILLed: without this watchdog they (and the forkserver) would linger forever.
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True).start()
    signal.signal(signal.SIGTERM, _exit_on_term)
    set_threads(threads)


def _exit_on_term(signum: int, frame: object) -> None:
    """The driver stops a worker with SIGTERM (Ctrl-C, `stop_workers`): exit at once, but first release
    the named semaphores this process registered (numba's thread-launch lock), which multiprocessing's
    resource tracker would otherwise report as "leaked" when the driver exits."""
    from multiprocessing import util

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group-wide SIGTERM and the driver's may both arrive
    util._run_finalizers(0)  # what a normal exit runs first; private, but the only way short of exiting
    os._exit(128 + signum)


#: What a `tms reproduce` worker imports: the forkserver imports it once, before forking the workers.
REPRODUCE_PRELOAD = ["tmslab.experiments.runner", "tmslab.training", "tmslab.training.fast", "tmslab.plots"]


def process_pool(workers: int, threads: int, preload: list[str]) -> ProcessPoolExecutor:
    """A forkserver pool of `workers` processes with `threads` torch threads each; the server imports
    `preload` once, so workers start in milliseconds. Submit work inside `worker_start()`."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    return _Pool(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, os.getpid()))


class _Pool(ProcessPoolExecutor):
    """A pool that remembers its workers' pids: multiprocessing forgets them once the pool breaks (e.g. when a
    group-wide SIGTERM kills the forkserver), and `stop_workers` still has to stop them."""

    pids: set[int]

    def _spawn_process(self) -> None:
        super()._spawn_process()  # type: ignore[misc]
        self.pids = {*getattr(self, "pids", ()), *self._processes}


def start_forkserver(preload: list[str]) -> None:
    """Start the forkserver now, importing `preload` in the background: a driver that then imports the same
    heavy modules itself (torch, numba: seconds) does so on another core instead of before the server's turn.
    A later `process_pool` reuses the running server; an unused one exits with the driver."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload(preload)
    with worker_start():  # the server inherits the blocked SIGINT and never sees the caller's __main__
        forkserver.ensure_running()


@contextlib.contextmanager
def worker_start() -> Iterator[None]:
    """Start pool processes (they start on submit) that run only tmslab code and ignore Ctrl-C.

    * SIGINT is blocked while they start: the forkserver (started here on first use) and every worker
      forked from it inherit the mask, so a Ctrl-C sent to the whole process group reaches only this
      driver, which stops them (`stop_workers`) instead of each printing a KeyboardInterrupt traceback.
    * `__main__` is hidden: multiprocessing would otherwise re-import the caller's script in the
      forkserver and in every worker, re-running a script without an `if __name__ == "__main__":` guard.
      Work items are tmslab objects and never need the caller's module.
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


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's processes at once (the work they run is lost; committed results are kept)."""
    # By pid, not Process.is_alive(): a group-wide SIGTERM also kills the forkserver, after which multiprocessing
    # reads every worker as dead while it still runs (inside a compiled chunk a worker's own SIGTERM handler
    # waits for the chunk's end: minutes at the paper's sizes).
    pids = sorted(getattr(pool, "pids", ()))
    _send(pids, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    _send([pid for pid in pids if _alive(pid)], signal.SIGKILL)
    # Jobs still queued for the dead workers would block the queue's feeder thread, and with it the pool's
    # shutdown and the interpreter's exit, on a pipe nobody reads any more.
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        call_queue.cancel_join_thread()
    # The pool's manager thread now sees dead workers and closes its queues; waiting for it releases
    # their semaphores (otherwise reported as "leaked" by multiprocessing's resource tracker at exit).
    pool.shutdown(wait=True, cancel_futures=True)


def _send(pids: list[int], signum: int) -> None:
    """Signal those of `pids` still in this process group: a worker that died earlier may have had its pid reused
    by an unrelated process, which must never be signalled (workers inherit the driver's group)."""
    group = os.getpgid(0)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == group:
                os.kill(pid, signum)
