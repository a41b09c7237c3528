"""One writer per output folder (issue 30 §2): the lock every command that writes a folder holds for its life.

A second command given the same folder is refused at once, with one line naming the holder's pid, and writes
nothing; a lock whose holder died is taken over. `tmslab.io.locked_output` combines it with the folder checks;
the `tms` commands hold it from their first check to their exit.

Design. The lock is a small file *beside* the folder, ``PARENT/.NAME.tmslab-lock``, locked with flock(2):

- The kernel releases a flock when its process ends, however it ends (exit, Ctrl-C, SIGKILL, a crash), so a
  dead holder holds nothing and the next writer simply takes the lock: staleness needs no guessing. The
  alternative, an O_EXCL file plus a pid-liveness check, has to trust a pid (pids are reused, and one written on
  another host of a shared filesystem cannot be checked at all), and its take-over races: two newcomers both
  find the holder dead, both delete the file and both re-create it.
- Beside the folder, not inside it: the lock must be held before the folder's first byte exists, the folder is
  assembled elsewhere and renamed into place (`io.save_run`, `io.replace_dir`), and a file inside it would be a
  file tmslab's folder checks and the folder's readers would have to skip.
- The holder writes ``tmslab-lock pid=PID host=HOST`` into the file, only for the refusal message. A newcomer
  that finds the lock held but no live holder named in it (the holder is between its flock and that write, or a
  `remove_if_stale` is probing it) retries for up to half a second before refusing.
- The holder removes the file when it releases the lock (while still holding it). A newcomer that opened the
  file just before it was removed would lock a file that no longer has a name, so after its flock it checks
  that the path still names the file it locked, and starts again otherwise: there are never two holders.
  A holder killed with SIGKILL leaves its file behind; the next writer takes it over and removes it on release
  (and `io.remove_output` removes such a stale file).
- Missing parent folders are created for the lock file, and removed again on release if they are still
  empty: a refused or failed command leaves nothing behind. A refused command creates nothing at all.
- The path is resolved first (symlinks, `./`), so every spelling of one folder meets one lock.

Re-entrant within a process: a command that holds the lock may call code that takes it again (`io.save_run`
takes it on its folder; `tms train` already holds it); a process forked from the holder (reproduce and sweep
workers writing sub-folders) writes through its parent's lock. Shared mode is for writers designed to run side
by side in one folder, `tms sweep --shard I/N` (each shard writes its own jobs): shards share the lock, and a
whole sweep, a merge or anything else exclusive is refused while one runs (and the other way round).

On a filesystem that does not implement flock (some cluster filesystems are mounted without it) nothing is
locked, as before this lock existed; on a platform without fcntl (Windows) likewise.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no lock
    fcntl = None  # type: ignore[assignment]

from tmslab.config import ConfigError
from tmslab.naming import value_of

#: The lock file of folder PARENT/NAME is PARENT/.NAME + SUFFIX.
SUFFIX = ".tmslab-lock"
HEADER = "tmslab-lock"
#: How long a newcomer retries while the lock is held but its file names no live holder (see the module docstring).
_GRACE_S = 0.5
#: flock errors that mean "this filesystem cannot lock", not "someone holds it".
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class FolderLocked(ConfigError):
    """The output folder is being written by another process (a usage error: exit 2, one line)."""

    def __init__(self, message: str, pids: list[int]) -> None:
        super().__init__(message)
        self.pids = pids


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of `folder`: beside it, named after it, with every spelling of the folder resolved."""
    resolved = Path(folder).resolve()
    if resolved.parent == resolved:
        raise ConfigError(f"{folder} is a filesystem root; give a folder below it.")
    return resolved.parent / f".{resolved.name}{SUFFIX}"


def is_lock_name(name: str) -> bool:
    """Whether a file name is that of a lock file (`.NAME.tmslab-lock`)."""
    return name.startswith(".") and name.endswith(SUFFIX) and len(name) > len(SUFFIX) + 1


@dataclass
class _Held:
    fd: int | None  # None: the filesystem cannot lock (nothing is held, the file was not kept)
    owner: int  # the pid that took it: a forked child never releases its parent's lock
    shared: bool
    count: int = 1
    created: list[Path] = field(default_factory=list)  # parent folders made for the lock file, outermost first


_held: dict[Path, _Held] = {}


def held(folder: str | os.PathLike[str]) -> bool:
    """Whether this process (or the process it was forked from) holds the lock of `folder`."""
    return lock_path(folder) in _held


def _here() -> str:
    return socket.gethostname()


def _holders(text: str) -> list[tuple[int, str]]:
    """(pid, host) of every holder named in a lock file's text."""
    out = []
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("pid", "").isdigit():
            out.append((int(fields["pid"]), fields.get("host", "")))
    return out


def _alive(pid: int, host: str) -> bool:
    """Whether holder `pid` may still run: a live pid here, or any pid on another host (it cannot be checked)."""
    if host and host != _here():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _refusal(folder: Path, name: str, text: str) -> FolderLocked:
    holders = _holders(text)
    holders = [h for h in holders if _alive(*h)] or holders  # shards that died leave their line behind
    here = _here()
    pids = [pid for pid, _ in holders]
    where = [f"{pid}" + (f" on {host}" if host and host != here else "") for pid, host in holders]
    if text.startswith(f"{HEADER} shared"):
        who = f"tmslab sweep shards (pid {', '.join(where)})" if where else "tmslab sweep shards"
    else:
        who = f"another tmslab process (pid {where[0]})" if where else "another tmslab process (pid not yet known)"
    shown = value_of(name, folder) if name else str(folder)  # name "": a positional argument
    return FolderLocked(
        f"{shown} is being written by {who}; wait for it to finish or choose another folder (one writer per folder).",
        pids,
    )


def _open(path: Path) -> tuple[int, bool, bool]:
    """(fd, created, writable) of the lock file, created if absent (O_EXCL tells whether we created it)."""
    flags = os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True, True
    except FileExistsError:
        pass
    try:
        return os.open(path, flags | os.O_RDWR), False, True
    except PermissionError:  # another user's lock file: it can still be locked, not written
        return os.open(path, flags | os.O_RDONLY), False, False


def _take(path: Path, folder: Path, name: str, shared: bool, make_parents: Callable[[Path], Any]) -> int | None:
    """Lock `path` (the lock file of `folder`) and write this process into it; the fd, or None if not lockable."""
    deadline = time.monotonic() + _GRACE_S
    while True:
        try:
            fd, created, writable = _open(path)
        except FileNotFoundError:  # the parent was removed under us (an emptied folder's cleanup): make it again
            make_parents(path.parent)
            continue
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as e:
            text = _read(fd)
            if e.errno in _UNSUPPORTED:  # a filesystem that cannot lock: leave no file of ours behind
                if created:
                    os.unlink(path)
                os.close(fd)
                return None
            os.close(fd)  # (a file we created and another process locked first is its file now)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            if any(_alive(pid, host) for pid, host in _holders(text)) or time.monotonic() > deadline:
                raise _refusal(folder, name, text) from None
            time.sleep(0.02)
            continue
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is None or not os.path.samestat(os.fstat(fd), current):
            os.close(fd)  # its holder released and removed it between our open and our flock: start again
            continue
        text = _read(fd)
        if text and not text.startswith(HEADER):
            os.close(fd)
            raise ConfigError(f"{path} exists and tmslab did not write it; move it away to write {folder} there.")
        if writable:
            _record(fd, shared, text)
        return fd


def _record(fd: int, shared: bool, text: str) -> None:
    """Name this process in the lock file: the only holder, or one more shard."""
    me = f"pid={os.getpid()} host={_here()}\n"
    if shared:
        if not text.startswith(f"{HEADER} shared"):  # a stale exclusive holder's text: replace it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{HEADER} shared\n".encode(), 0)
        os.pwrite(fd, me.encode(), os.fstat(fd).st_size)
    else:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{HEADER} {me}".encode(), 0)


def _mkdir_p(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


def _missing(folder: Path) -> list[Path]:
    """`folder` and its ancestors that do not exist, outermost first."""
    out = []
    while not folder.exists() and folder.parent != folder:
        out.append(folder)
        folder = folder.parent
    return out[::-1]


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders we created, innermost first, while they are empty (anything in them is kept)."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def acquire(
    folder: str | os.PathLike[str],
    *,
    name: str = "out",
    shared: bool = False,
    make_parents: Callable[[Path], Any] = _mkdir_p,
) -> Path:
    """Take the lock of `folder` (see the module docstring); return its lock file's path, the key to `release`.

    Raises FolderLocked (a ConfigError: one line naming the holder's pid, `name` being the option that gave
    the folder, "" for a positional argument) if another process holds it; nothing is created then.
    `make_parents` makes missing parent folders (io passes its make_dir, which records them in an enclosing
    tmslab output).
    """
    path = lock_path(folder)
    entry = _held.get(path)
    if entry is not None:  # this process, or the one it was forked from, holds it already
        entry.count += 1
        return path
    if fcntl is None:  # pragma: no cover - no flock on this platform
        _held[path] = _Held(None, os.getpid(), shared)
        return path
    created = _missing(path.parent)
    try:
        if created:
            make_parents(path.parent)
        fd = _take(path, Path(folder), name, shared, make_parents)
    except BaseException:
        _remove_empty(created)
        raise
    _held[path] = _Held(fd, os.getpid(), shared, created=created)
    return path


def release(key: Path) -> None:
    """Release one `acquire` of this process; the last one removes the lock file and the folders made for it."""
    entry = _held.get(key)
    if entry is None:
        return
    entry.count -= 1
    if entry.count > 0:
        return
    del _held[key]
    if entry.owner != os.getpid():  # a forked child's copy: its parent holds the lock and releases it
        return
    if entry.fd is not None:
        try:
            last = not entry.shared or _try_exclusive(entry.fd)
            if last and _names(key, entry.fd):
                os.unlink(key)  # while still holding it: a newcomer then re-checks the path (see _take)
        except OSError:
            pass
        finally:
            os.close(entry.fd)  # releases the flock
    _remove_empty(entry.created)


def _try_exclusive(fd: int) -> bool:
    """A shard's release: True (now holding it exclusively) if no other shard holds the lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


@contextmanager
def output_lock(
    folder: str | os.PathLike[str],
    *,
    name: str = "out",
    shared: bool = False,
    make_parents: Callable[[Path], Any] = _mkdir_p,
) -> Iterator[Path]:
    """`acquire` for the `with` block, released on any exit (an exception, Ctrl-C)."""
    key = acquire(folder, name=name, shared=shared, make_parents=make_parents)
    try:
        yield Path(folder)
    finally:
        release(key)


def holder_message(folder: str | os.PathLike[str], *, name: str = "out") -> FolderLocked | None:
    """The refusal another process's lock on `folder` causes, found without taking it; None if nobody holds it.

    Used where a command is refused for another reason (e.g. the folder already holds a finished run) while a
    writer may still be at work in it: the lock is then the better explanation. The probe is a non-blocking
    flock released at once (a writer taking the lock at that very moment retries, see `_take`).
    """
    path = lock_path(folder)
    if path in _held or fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return _refusal(Path(folder), name, _read(fd))
        return None
    finally:
        os.close(fd)
    return None


def remove_if_stale(path: str | os.PathLike[str]) -> bool:
    """Remove a lock file nobody holds (its holder was killed); True if removed. A held one is left alone."""
    path = Path(path)
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        text = _read(fd)
        if _names(path, fd) and (not text or text.startswith(HEADER)):
            os.unlink(path)
            return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False
