"""One writer per output folder (issue 30 §2, tmslab.lock): a second command on a folder is refused at once with
the holder's pid (exit 2, nothing written), the first completes, a dead holder's lock is taken over, and the
lock goes away on exit and on Ctrl-C. Cross-process cases run real processes; the holder is paused with SIGSTOP
while the second command runs, so "at once" means "without waiting for the holder", whatever the machine's load.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tmslab import lock
from tmslab.config import ConfigError
from tmslab.io import locked_output, output_kind, remove_output, save_run

pytestmark = pytest.mark.skipif(lock.fcntl is None, reason="no flock on this platform: nothing is locked")

#: A tiny `tms train` (a few seconds with its imports; a bit longer on a loaded machine).
TRAIN = ["train", "--features", "5", "--hidden", "2", "--density", "0.1", "--steps", "200", "--batch-size", "64",
         "--eval-samples", "1024", "--threads", "1", "--quiet"]  # fmt: skip


def _foreground() -> None:
    # Ctrl-C at its default, as in a terminal's foreground job: pytest may run with SIGINT ignored (a background job
    # of a non-interactive shell), which every child would inherit across exec and so never see the interrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tms_process(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tmslab", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_foreground)  # fmt: skip


def holder(folder: Path, *, shared: bool = False) -> subprocess.Popen:
    """A process holding the lock of `folder` until its stdin closes; returns once it holds it."""
    code = textwrap.dedent(f"""
        import sys
        from tmslab import lock
        with lock.output_lock({str(folder)!r}, shared={shared}):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def wait_for_lock(folder: Path, pid: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the lock file of `folder` names `pid` (the process took the lock)."""
    path = lock.lock_path(folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and f"pid={pid} " in path.read_text():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{pid} did not take the lock of {folder}")


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- the acceptance case: two commands on one folder ---------------------------------------------------------


def test_second_train_is_refused_at_once_and_the_first_completes(tmp_path):
    out = tmp_path / "runs" / "same"
    first = tms_process(*TRAIN, "--seed", "1", "--out", out)
    try:
        wait_for_lock(out, first.pid, first)
        os.kill(first.pid, signal.SIGSTOP)  # the holder is frozen: the second command cannot wait it out
        before = listing(tmp_path)
        second = subprocess.run([sys.executable, "-m", "tmslab", *TRAIN, "--seed", "2", "--out", str(out)],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert second.returncode == 2, second
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "being written" in lines[0], second.stderr
        assert str(out) in lines[0] and "Traceback" not in second.stderr
        assert listing(tmp_path) == before  # the refused command wrote nothing, not even a lock file
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 1  # the first command's run, whole
    assert output_kind(out) == "run"
    assert not lock.lock_path(out).exists()  # released and removed on exit


def test_refused_command_creates_no_folder(tmp_path, tms):
    out = tmp_path / "a" / "b" / "run"
    proc = holder(out)
    try:
        before = listing(tmp_path)
        code, stdout, err = tms(*TRAIN, "--out", out)
        assert code == 2 and f"pid {proc.pid}" in err and len(err.strip().splitlines()) == 1, err
        assert listing(tmp_path) == before and not out.exists()
    finally:
        proc.communicate("")
    assert not lock.lock_path(out).exists() and not (tmp_path / "a").exists()  # the holder made them and removed them


def test_every_spelling_of_a_folder_meets_one_lock(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    proc = holder(tmp_path / "real" / "run")
    try:
        monkeypatch.chdir(tmp_path)
        for spelling in ("link/run", "./real/run", "real/../real/run"):
            with pytest.raises(lock.FolderLocked, match=f"pid {proc.pid}"):
                lock.acquire(spelling)
    finally:
        proc.communicate("")


def test_a_finished_folder_still_being_written_names_the_writer(tmp_path):
    """A folder refused for its content (a run is there, no --force) while its writer is still at work: the
    message names the writer, the better explanation."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    proc = holder(out)
    try:
        with pytest.raises(lock.FolderLocked, match=f"pid {proc.pid}"), locked_output(out, "run"):
            pass
    finally:
        proc.communicate("")
    with pytest.raises(ConfigError, match="did not write"), locked_output(out, "run"):
        pass


# ---- stale locks, exit and Ctrl-C ----------------------------------------------------------------------------


def test_stale_lock_of_a_killed_holder_is_taken_over(tmp_path, tms):
    out = tmp_path / "run"
    proc = holder(out)
    proc.kill()  # SIGKILL: no cleanup runs, the file stays, the kernel drops the flock
    proc.wait()
    path = lock.lock_path(out)
    assert path.exists() and f"pid={proc.pid} " in path.read_text()
    code, stdout, err = tms(*TRAIN, "--out", out)
    assert code == 0, err
    assert output_kind(out) == "run" and not path.exists()


def test_ctrl_c_releases_the_lock_and_writes_nothing(tmp_path):
    out = tmp_path / "sub" / "run"
    # 10⁸ steps: the fast engine does 10⁶ of this tiny model in about a second, so this outlasts any machine's load
    proc = tms_process(*[a if a != "200" else "100000000" for a in TRAIN], "--out", out)
    wait_for_lock(out, proc.pid, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert not (tmp_path / "sub").exists()  # no lock file, no run, not even the parent made for the lock
    key = lock.acquire(out)  # free again
    lock.release(key)


def test_lock_is_released_when_the_with_block_raises(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), lock.output_lock(out):
        assert lock.lock_path(out).exists()
        raise KeyboardInterrupt
    assert not lock.lock_path(out).exists() and not lock.held(out)


# ---- within one process, shards, files that are not ours ------------------------------------------------------


def test_reentrant_within_a_process(tmp_path, make_config):
    """save_run takes the lock itself; inside a command that holds it (tms train) it writes through it."""
    from tmslab.training import train

    out = tmp_path / "run"
    result = train(make_config(steps=5))
    with locked_output(out, "run"):
        save_run(out, result)
        assert lock.lock_path(out).exists()
    assert not lock.lock_path(out).exists() and output_kind(out) == "run"


def test_save_run_refuses_a_folder_another_process_writes(tmp_path, make_config):
    from tmslab.training import train

    out = tmp_path / "run"
    result = train(make_config(steps=5))
    proc = holder(out)
    try:
        with pytest.raises(lock.FolderLocked, match=f"pid {proc.pid}"):
            save_run(out, result)
        assert not out.exists()
    finally:
        proc.communicate("")


def test_shards_share_and_exclude_a_whole_writer(tmp_path):
    out = tmp_path / "sweep"
    one = holder(out, shared=True)
    try:
        two = holder(out, shared=True)  # a second shard is let in
        try:
            with pytest.raises(lock.FolderLocked, match="shards") as e:
                lock.acquire(out)  # a whole sweep or a merge is not
            assert set(e.value.pids) == {one.pid, two.pid}
        finally:
            two.communicate("")
        assert lock.lock_path(out).exists()  # the last shard removes it, not the first to leave
    finally:
        one.communicate("")
    assert not lock.lock_path(out).exists()
    exclusive = holder(out)
    try:
        with pytest.raises(lock.FolderLocked, match=f"pid {exclusive.pid}"):
            lock.acquire(out, shared=True)
    finally:
        exclusive.communicate("")


def test_a_file_tmslab_did_not_write_is_never_taken_or_removed(tmp_path):
    out = tmp_path / "run"
    path = lock.lock_path(out)
    path.write_text("my notes\n")
    with pytest.raises(ConfigError, match="did not write"):
        lock.acquire(out)
    assert path.read_text() == "my notes\n" and not lock.remove_if_stale(path) and path.exists()


def test_remove_output_removes_stale_locks_but_not_held_ones(tmp_path):
    root = tmp_path / "sweep"
    with locked_output(root, "sweep"):
        from tmslab.io import make_dir

        make_dir(root, "sweep")
        jobs = make_dir(root / "jobs")
        dead = holder(jobs / "job-a")
        dead.kill()
        dead.wait()
        live = holder(jobs / "job-b")
        try:
            left = remove_output(root)
            assert not lock.lock_path(jobs / "job-a").exists()  # stale: removed
            assert lock.lock_path(jobs / "job-b").exists() and left == ["jobs"]  # held: kept, and so its folder
        finally:
            live.communicate("")


def test_holder_without_a_pid_yet_is_still_refused(tmp_path):
    """A holder between its flock and writing its pid: the newcomer waits briefly, then refuses anyway."""
    out = tmp_path / "run"
    path = lock.lock_path(out)
    code = textwrap.dedent(f"""
        import fcntl, os, sys
        fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(lock.FolderLocked, match="pid not yet known"):
            lock.acquire(out)
        assert time.monotonic() - t0 >= lock._GRACE_S
    finally:
        proc.communicate("")


def test_sweep_shards_write_side_by_side_and_a_whole_sweep_waits(tmp_path, tms):
    """`tms sweep --shard I/N` processes share the folder (each writes its own jobs); a whole sweep or a merge
    is refused while one runs, and the merge works once they are done."""
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"base": {"features": 5, "steps": 20, "batch_size": 32, "eval_samples": 512},
                                    "grid": {"hidden": [1, 2]}, "restarts": 1}))  # fmt: skip
    out = tmp_path / "sweep"
    first = tms_process("sweep", spec, "--out", out, "--shard", "0/2", "--workers", "1", "--quiet")
    try:
        wait_for_lock(out, first.pid, first)
        os.kill(first.pid, signal.SIGSTOP)  # holds its share of the lock while the others try
        code, _, err = tms("sweep", spec, "--out", out, "--shard", "1/2", "--workers", "1", "-qq")
        assert code == 0, err
        for args in ([spec, "--out", out], ["--merge", out]):
            code, _, err = tms("sweep", *args, "-qq")
            assert code == 2 and "shards" in err and str(first.pid) in err and len(err.strip().splitlines()) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    code, _, err = tms("sweep", "--merge", out, "-qq")
    assert code == 0, err
    assert (out / "results.parquet").exists() and not lock.lock_path(out).exists()
