"""Sweeps: spec vocabulary, deterministic packing and seeds, resume after SIGKILL, shards, bad input."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tmslab
from tmslab.config import ConfigError
from tmslab.io import MARKER
from tmslab.sweep import SweepSpec, load_spec, load_weights, merge, plan_jobs, run_sweep
from tmslab.sweep.execute import TIMING_COLUMNS

TINY_BASE = {"features": 2, "hidden": 1, "steps": 30, "batch-size": 32, "eval_samples": 512}


def tiny_spec(**overrides):
    spec = {
        "base": dict(TINY_BASE),
        "grid": {"density": {"log_range": [1.0, 0.1], "points": 3}, "importance_ratio": [0.5, 2.0]},
        "restarts": 2,
        "max_instances": 4,
        "seed": 7,
    }
    spec.update(overrides)
    return spec


def same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns=list(TIMING_COLUMNS)), b.drop(columns=list(TIMING_COLUMNS)))


def same_weights(a: Path, b: Path) -> None:
    jobs = sorted(p.name for p in (a / "jobs").iterdir() if p.name != MARKER)
    assert jobs == sorted(p.name for p in (b / "jobs").iterdir() if p.name != MARKER)
    differ = [
        j
        for j in jobs
        if (a / "jobs" / j / "model.safetensors").read_bytes() != (b / "jobs" / j / "model.safetensors").read_bytes()
    ]
    assert not differ, f"weights differ in jobs {differ}"


# ---- spec vocabulary ---------------------------------------------------------------------------------


def test_ranges_aliases_and_kebab_case():
    spec = load_spec(
        {
            "base": {"features": 3, "hidden": 1, "batch-size": 8, "importance-decay": 0.9},
            "grid": {
                "density": {"log_range": [1.0, 0.01], "points": 3},
                "lr": {"linear_range": [1e-3, 3e-3], "points": 3},
            },
            "restarts": 4,
        }
    )
    assert spec.base == {"n_features": 3, "n_hidden": 1, "batch_size": 8, "importance_decay": 0.9}
    assert spec.grid["density"] == pytest.approx([1.0, 0.1, 0.01]) and spec.grid["density"][0] == 1.0
    assert spec.grid["lr"] == pytest.approx([1e-3, 2e-3, 3e-3])
    assert spec.n_runs == 36


def test_derived_axes_set_density_and_importance():
    spec = load_spec(
        {
            "base": {"features": 5, "hidden": 2, "density": 0.2, "steps": 5},
            "grid": {"density_of": {"feature": 0, "relative": [0.5, 2.0]}, "importance_ratio": [3.0]},
        }
    )
    (job,) = plan_jobs(spec)
    assert job.config["density"] == [[0.1, 0.2, 0.2, 0.2, 0.2], [0.4, 0.2, 0.2, 0.2, 0.2]]
    assert job.config["importance"] == [[1, 1, 1, 1, 3.0]] * 2
    decay = plan_jobs(load_spec({"base": {"features": 3}, "grid": {"importance_decay": [0.5]}}))[0]
    assert decay.config["importance"] == [[1.0, 0.5, 0.25]]


def test_packing_is_deterministic_and_seeds_are_unique():
    grid = {
        "density": {"log_range": [1.0, 0.01], "points": 32},
        "importance_ratio": {"log_range": [0.1, 10], "points": 32},
    }
    spec = load_spec({"base": {"features": 2, "hidden": 1, "steps": 10_000}, "grid": grid, "restarts": 10})
    jobs = plan_jobs(spec)
    assert 10 <= len(jobs) <= 100  # a handful of batched jobs, not 10,240 processes
    assert sum(j.n_instances for j in jobs) == 10_240
    assert [j.config for j in plan_jobs(SweepSpec.from_normalised(spec.to_dict()))] == [j.config for j in jobs]
    seeds = [j.config["seed"] + k for j in jobs for k in range(j.n_instances)]
    assert seeds == list(range(10_240))
    points = sorted(p for j in jobs for p in j.points)
    assert points == list(range(1024))


def test_shape_axes_make_separate_jobs():
    spec = load_spec(
        {"base": {"steps": 5}, "grid": {"n_hidden": [1, 2], "model": ["relu-output", "linear"], "density": [1, 0.5]}}
    )
    jobs = plan_jobs(spec)
    assert len(jobs) == 4
    assert {(j.config["n_hidden"], j.config["model"]) for j in jobs} == {
        (1, "relu-output"),
        (1, "linear"),
        (2, "relu-output"),
        (2, "linear"),
    }
    assert all(len(j.points) == 2 for j in jobs)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"base": {"featurs": 2}}, "did you mean 'features'"),
        ({"base": {}, "grid": {"densty": [1.0]}}, "did you mean 'density'"),
        ({"grd": {}}, "did you mean 'grid'"),
        ({"grid": {"density": []}}, "at least one value"),
        ({"grid": {"density": {"log_range": [1.0, 0.0], "points": 3}}}, "> 0"),
        ({"grid": {"density": {"log_range": [1.0, 0.1], "point": 3}}}, "did you mean 'points'"),
        ({"grid": {"density": {"log_range": [1.0, 0.1], "points": 0}}}, "points"),
        ({"grid": {"density": [0.5, 1.5]}}, "<= 1"),
        ({"grid": {"n_hidden": [1, 1.5]}}, "integers"),
        ({"grid": {"importance_ratio": [1], "importance_decay": [0.9]}}, "keep one"),
        ({"base": {"features": 2}, "grid": {"density_of": {"feature": 4, "relative": [1]}}}, "feature index"),
        ({"base": {"features": 2}, "grid": {"density_of": {"feature": 0, "relative": [3.0]}}}, "density"),
        ({"base": {"lr": -1}}, "lr"),
        ({"restarts": 0}, "restarts"),
        ({"max_instances": "lots"}, "max_instances"),
        (
            {
                "grid": {
                    "density": {"log_range": [1.0, 0.1], "points": 2000},
                    "lr": {"log_range": [1, 2], "points": 2000},
                }
            },
            "split it",
        ),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec, fragment):
    with pytest.raises(ConfigError) as e:
        plan_jobs(load_spec(spec))
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("base: {features: 2\ngrid: []", "not valid YAML (line"),
        ("- 1\n- 2", "mapping"),
        ("base: {features: 2}\ngrid: {density: {log_range: [1, 0.1], points: 4}}\nrestarts: 1\nbogus: 1", "bogus"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tms, tmp_path, text, fragment):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "sweep"
    code, stdout, err = tms("sweep", spec, "--out", out, "--quiet")
    assert code == 2, err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err
    assert not out.exists()


def test_cli_refuses_a_grid_that_does_not_fit_on_disk(tms, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 1000))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec()))
    code, _, err = tms("sweep", spec, "--out", tmp_path / "sweep", "--quiet")
    assert code == 2 and "free" in err and not (tmp_path / "sweep").exists()


def test_toml_spec(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        "restarts = 2\n[base]\nfeatures = 2\nhidden = 1\n[grid]\ndensity = {log_range = [1.0, 0.1], points = 3}\n"
    )
    assert load_spec(spec).n_runs == 6


# ---- running, resuming, shards -------------------------------------------------------------------------


def test_sweep_table_weights_resume_and_changed_spec(tmp_path):
    out = tmp_path / "s"
    df = tmslab.sweep(tiny_spec(), out=out, progress=False, workers=1)
    assert len(df) == 12 and not df.duplicated(["point", "restart"]).any()
    assert list(df.columns[:4]) == ["point", "density", "importance_ratio", "restart"]
    assert df.groupby("point")["is_best"].sum().eq(1).all()
    assert sorted(df["seed"]) == list(range(7, 19))
    row = df.iloc[5]
    w = load_weights(out, row)
    assert w["W"].shape == (1, 2) and w["b"].shape == (2,)
    assert row["feature_importance"][-1] == row["importance_ratio"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), df)

    # Re-running resumes: nothing is retrained (the recorded wall times are unchanged).
    again = run_sweep(tiny_spec(), out, progress=False, workers=1)
    pd.testing.assert_frame_equal(again, df)
    # A job killed between its run directory and its rows file: rows recomputed from the weights.
    (out / "rows" / "j00001.parquet").unlink()
    pd.testing.assert_frame_equal(run_sweep(tiny_spec(), out, progress=False, workers=1), df)
    # A changed spec is refused, then accepted with force.
    changed = tiny_spec(restarts=3)
    with pytest.raises(ConfigError, match="different spec .*restarts"):
        run_sweep(changed, out, progress=False)
    assert len(run_sweep(changed, out, progress=False, workers=1, force=True)) == 18


def test_pool_shards_and_merge_equal_in_process(tmp_path):
    spec = tiny_spec(max_instances=2)
    whole = run_sweep(spec, tmp_path / "whole", progress=False, workers=1)
    pooled = run_sweep(spec, tmp_path / "pool", progress=False, workers=2)
    same_table(pooled, whole)
    shards = tmp_path / "shards"
    parts = [run_sweep(spec, shards, progress=False, workers=1, shard=(i, 3)) for i in (2, 0)]
    with pytest.raises(ConfigError, match="not done"):
        merge(shards)
    parts.append(run_sweep(spec, shards, progress=False, workers=1, shard=(1, 3)))
    assert sum(len(p) for p in parts) == len(whole)
    same_table(merge(shards), whole)
    same_weights(shards, tmp_path / "whole")


# ---- SIGKILL at random moments -------------------------------------------------------------------------

KILL_SPEC = {
    "base": {"features": 5, "hidden": 2, "steps": 20_000, "batch_size": 1024, "eval_samples": 4096},
    "grid": {"density": [1.0, 0.3, 0.1, 0.03, 0.01], "importance_decay": [1.0, 0.9, 0.8, 0.7]},
    "restarts": 2,
    "max_instances": 2,
    "seed": 3,
}


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(KILL_SPEC, sort_keys=False))
    out = tmp_path / "killed"
    rows = out / "rows"
    cmd = [sys.executable, "-m", "tmslab", "sweep", str(spec), "--out", str(out), "--quiet", "--workers"]
    rng = random.Random(1)
    kills = 0
    n_jobs = len(plan_jobs(load_spec(KILL_SPEC)))
    assert n_jobs == 20
    while kills < 5:
        before = len(list(rows.glob("j*.parquet"))) if rows.exists() else 0
        # Alternate the process pool and the in-process runner: both must resume to the same table.
        proc = subprocess.Popen([*cmd, str(1 + kills % 2)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for progress (a new finished job), then kill at a random instant — often mid-commit.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if rows.exists() and len(list(rows.glob("j*.parquet"))) > before:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:
            break  # finished before we could kill it: no more kills possible
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 5, "the sweep finished before it was killed 5 times; make its jobs longer"
    assert subprocess.run([*cmd, "2"], capture_output=True).returncode == 0
    killed = pd.read_parquet(out / "results.parquet")
    reference = run_sweep(KILL_SPEC, tmp_path / "whole", progress=False, workers=1)
    assert len(killed) == 40 and not killed.duplicated(["point", "restart"]).any()
    same_table(killed, reference)
    same_weights(out, tmp_path / "whole")
    leftovers = [p for sub in ("jobs", "rows") for p in (out / sub).iterdir() if p.name.startswith(".")
                 and p.name != MARKER]  # fmt: skip
    assert not leftovers


def test_sweep_figures_take_a_categorical_axis_as_lines_or_slices():
    """A text axis (model: [linear, relu-output]) is never plotted as a number: beside one numeric axis it gives
    one line per value, beside two it gives one heatmap per value (it used to fail converting 'linear' to float)."""
    from tmslab.sweep.figures import sweep_figures

    rows = [{"model": m, "n_hidden": h, "density": d, "eval_loss": 0.1 * h + d, "is_best": True}
            for m in ("linear", "relu-output") for h in (2, 3) for d in (1.0, 0.1)]
    df = pd.DataFrame(rows)
    (name, fig, _, caption), = sweep_figures(df[df["n_hidden"] == 2], ["model", "density"], "eval_loss")
    assert name == "eval_loss-vs-density" and "per model" in caption
    assert sorted(t.name for t in fig.data) == ["model = linear", "model = relu-output"]
    heatmaps = sweep_figures(df, ["n_hidden", "model", "density"], "eval_loss")
    assert [h[0] for h in heatmaps] == ["eval_loss-density-n_hidden-modellinear",
                                        "eval_loss-density-n_hidden-modelrelu-output"]
    with pytest.raises(ConfigError, match="no numeric sweep axis"):
        sweep_figures(df, ["model"], "eval_loss")
