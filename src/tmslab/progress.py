"""Progress bars and interrupts, the same for every long command.

* `bar(...)`: a tqdm bar that redraws every 0.5 s on a terminal but writes a line at most every
  `PIPED_INTERVAL_S` seconds when stderr is a file or a pipe (logs of batch jobs stay readable).
* `Interrupted`: what long work raises on Ctrl-C (or SIGTERM, see `handle_signals`) once it has stopped
  its workers; it says what was finished and kept, and the CLI prints it as one line and exits 130:

      interrupted: 2/10 jobs done; re-run the same command to resume

  Library code that runs many units (jobs, experiments, …) catches KeyboardInterrupt around its loop
  and re-raises `Interrupted(f"{done}/{total} jobs done")`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

#: Seconds between progress lines when stderr is not a terminal.
PIPED_INTERVAL_S = 10.0
#: Seconds between redraws on a terminal.
TERMINAL_INTERVAL_S = 0.5


class Interrupted(KeyboardInterrupt):
    """Work stopped by Ctrl-C or SIGTERM after its workers were stopped; finished results are kept.

    `done` says what was finished ("2/10 jobs done"); `resumable` whether re-running continues from there.
    """

    def __init__(self, done: str = "", resumable: bool = True) -> None:
        super().__init__(done)
        self.done = done
        self.resumable = resumable

    def message(self) -> str:
        if not self.resumable:
            return f"interrupted: {self.done or 'nothing was written'}; re-run the same command to start again"
        return f"interrupted: {self.done + '; ' if self.done else ''}re-run the same command to resume"


def bar(total: int, desc: str, unit: str, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr, throttled when stderr is not a terminal."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", TERMINAL_INTERVAL_S if interactive else PIPED_INTERVAL_S)
    if not interactive:
        kwargs.setdefault("maxinterval", PIPED_INTERVAL_S * 2)
    return tqdm(total=total, desc=desc, unit=unit, **kwargs)


_terminated = False


def terminated() -> bool:
    """True once `handle_signals` turned a SIGTERM into KeyboardInterrupt (the CLI then exits quietly)."""
    return _terminated


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt in the main thread, like Ctrl-C.

    Without it SIGTERM kills the process before its workers are stopped and its temporary files removed.
    """

    def on_term(signum: int, frame: Any) -> None:
        global _terminated
        _terminated = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
