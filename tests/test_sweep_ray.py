"""The Ray backend on a real local cluster: a worker killed mid-job is retried, results equal local."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tmslab[ray]')")

from tmslab.sweep import run_sweep  # noqa: E402
from tmslab.sweep.execute import MARKER_ENV, TIMING_COLUMNS  # noqa: E402

SPEC = {
    "base": {"features": 5, "hidden": 2, "steps": 20_000, "batch_size": 1024, "eval_samples": 4096},
    "grid": {"density": [1.0, 0.1, 0.01], "importance_decay": [1.0, 0.8]},
    "restarts": 2,
    "max_instances": 2,
    "seed": 11,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ray_cluster(**env: str) -> Iterator[str]:
    """A one-node Ray cluster with 2 CPUs started by `ray start` with `env`; yields its address."""
    ray_bin = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if ray_bin is None:
        pytest.skip("the `ray` command is not on PATH")
    port = free_port()
    start = [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
             "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, env={**os.environ, **env}, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120)


@pytest.fixture
def cluster(tmp_path):
    """A cluster without token authentication (whatever ~/.ray holds); its workers mark the jobs they
    start in `markers`."""
    markers = tmp_path / "markers"
    markers.mkdir()
    with ray_cluster(RAY_AUTH_MODE="disabled", **{MARKER_ENV: str(markers)}) as address:
        yield address, markers


def sweep_command(spec: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "tmslab", "sweep", str(spec), "--out", str(out), "--backend", "ray",
            "--address", address, "--max-retries", "3", "--quiet"]  # fmt: skip


def write_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return spec


def test_address_where_nothing_listens_is_a_usage_error_that_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(sweep_command(write_spec(tmp_path), out, f"127.0.0.1:{free_port()}"),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --address 127.0.0.1:") and "nothing answers there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_cluster_that_wants_a_token_is_a_usage_error_that_writes_nothing(tmp_path):
    token = secrets.token_hex(16)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}, "RAY_AUTH_MODE": "disabled"}
    out = tmp_path / "out"
    with ray_cluster(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token) as address:
        cmd = sweep_command(write_spec(tmp_path), out, address)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # Ray's own C++ log lines may come first
    assert last.startswith(f"error: --address {address}:") and "RAY_AUTH_MODE=token" in last, proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_ray_worker_killed_mid_sweep_is_retried_and_table_equals_local(tmp_path, cluster):
    address, markers = cluster
    out = tmp_path / "ray"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # as the cluster, whatever ~/.ray holds
    proc = subprocess.Popen(sweep_command(write_spec(tmp_path), out, address), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for marker in markers.iterdir():
            job, pid = marker.name.split(".")
            # A job that started but has no rows yet is running: kill the worker that runs it.
            if not (out / "rows" / f"{job}.parquet").exists():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    killed = job
                except ProcessLookupError:
                    continue
                break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=120)
    assert killed is not None, f"no running Ray task was found to kill; the sweep printed: {stderr[-2000:]}"
    assert proc.returncode == 0, stderr
    # The killed job was started again by another worker (a retry), and finished.
    assert len([m for m in markers.iterdir() if m.name.startswith(killed + ".")]) >= 2
    ray_df = pd.read_parquet(out / "results.parquet")
    local_df = run_sweep(SPEC, tmp_path / "local", progress=False, workers=2)
    pd.testing.assert_frame_equal(
        ray_df.drop(columns=list(TIMING_COLUMNS)), local_df.drop(columns=list(TIMING_COLUMNS))
    )
    for job in sorted(p.name for p in (out / "jobs").iterdir() if p.is_dir()):  # not the .tmslab marker
        a = (out / "jobs" / job / "model.safetensors").read_bytes()
        assert a == (tmp_path / "local" / "jobs" / job / "model.safetensors").read_bytes(), job
