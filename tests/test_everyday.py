"""Everyday use without surprises (issue 13): safe --force, output paths checked before any work, clean
interrupts, one vocabulary in Python and on the command line. CLI cases run the real `tms` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tmslab
from tmslab import metrics
from tmslab.config import ConfigError, TrainConfig
from tmslab.io import MARKER, output_kind, remove_output, save_run

TMS = str(Path(sys.executable).with_name("tms"))
TINY = ["--steps", "20", "--batch-size", "32", "--eval-samples", "512"]
#: Long enough that a test would time out if work started before a refusal.
ENDLESS = ["--steps", "2000000"]
SPEC = {"base": {"features": 5, "hidden": 2, "steps": 20, "batch_size": 32, "eval_samples": 512},
        "grid": {"density": [1.0, 0.1]}, "restarts": 2}  # fmt: skip


def tms(*args, cwd=None, timeout=120):
    """Run the installed `tms` script: (exit code, stdout, stderr)."""
    proc = subprocess.run([TMS, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(code, err, fragment=""):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0], lines[0]
    return lines[0]


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else b"") for p in sorted(path.rglob("*"))}


@pytest.fixture
def user_folder(tmp_path):
    """A folder with the user's own files, which tmslab must never delete."""
    d = tmp_path / "mine"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes")
    (d / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return d


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def tiny_result(**overrides):
    return tmslab.train(TrainConfig(**{"features": 5, "hidden": 2, "steps": 20, "batch_size": 32,
                                       "eval_samples": 512, **overrides}))  # fmt: skip


# ---- data safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "sweep", "reproduce"])
def test_force_never_touches_a_folder_tmslab_did_not_write(command, user_folder, spec_file):
    before = tree(user_folder)
    args = {"train": ["train", *ENDLESS], "sweep": ["sweep", spec_file], "reproduce": ["reproduce", "--quick"]}
    code, _, err = tms(*args[command], "--out", user_folder, "--force")
    line = one_error_line(code, err, "tmslab did not write")
    assert "notes.txt" in line and "--out" in line
    assert tree(user_folder) == before


def test_force_replaces_a_previous_run_and_keeps_the_users_files(tmp_path):
    code, _, err = tms("train", "--out", "runs/r", *TINY, "-qq", cwd=tmp_path)  # runs/ is created, as mkdir -p
    assert code == 0, err
    out = tmp_path / "runs" / "r"
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r"]  # no marker in the user's runs/
    (out / "notes.txt").write_text("mine")
    first = (out / "model.safetensors").read_bytes()
    one_error_line(*tms("train", "--out", out, *TINY, "--seed", "1")[::2], "--force")
    code, text, err = tms("train", "--out", out, *TINY, "--seed", "1", "--force", "-q")
    assert code == 0 and text == f"wrote {out}\n" and err == "", err  # -q: one final line
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "model.safetensors").read_bytes() != first
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "metrics.json", "notes.txt", MARKER}
    assert tmslab.load_run(out).config.seed == 1


def test_save_run_force_in_python(tmp_path, user_folder):
    result = tiny_result()
    out = tmp_path / "runs" / "mine"  # missing parents are created, as mkdir -p
    tmslab.save_run(out, result)
    with pytest.raises(ConfigError, match=r"pass force=True") as e:
        tmslab.save_run(out, result)
    assert "--" not in str(e.value)  # Python names, not flags
    tmslab.save_run(out, result, force=True)
    before = tree(user_folder)
    with pytest.raises(ConfigError, match="tmslab did not write"):
        tmslab.save_run(user_folder, result, force=True)
    assert tree(user_folder) == before


def test_remove_output_deletes_only_what_tmslab_wrote(tmp_path):
    out = tmp_path / "s"
    df = tmslab.sweep(SPEC, out=out, progress=False, workers=1)
    assert len(df) == 4 and output_kind(out) == "sweep"
    (out / "jobs" / "notes.txt").write_text("mine")
    (out / "jobs" / "j00000" / "plot.png").write_bytes(b"png")
    assert remove_output(out) == ["jobs"]
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != MARKER)
    assert left == ["jobs", "jobs/j00000", "jobs/j00000/plot.png", "jobs/notes.txt"]
    # The folder is still the user's sweep output: it can be written again.
    assert len(tmslab.sweep(SPEC, out=out, progress=False, workers=1)) == 4
    assert (out / "jobs" / "notes.txt").read_text() == "mine"


def test_sweep_force_with_a_changed_spec_keeps_the_users_files(tmp_path, spec_file):
    out = tmp_path / "runs" / "s"  # runs/ is created, as mkdir -p
    assert tms("sweep", spec_file, "--out", out, "--workers", "1", "-qq")[0] == 0
    (out / "README.txt").write_text("what this sweep is")
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**SPEC, "restarts": 3}))
    one_error_line(*tms("sweep", changed, "--out", out)[::2], "--force")
    code, out_text, err = tms("sweep", changed, "--out", out, "--workers", "1", "--force", "-q")
    assert code == 0, err
    assert out_text.strip() == f"6 runs in {out / 'results.parquet'}"
    assert (out / "README.txt").read_text() == "what this sweep is"


@pytest.mark.parametrize("what", ["empty", "run", "missing"])
def test_refused_report_writes_nothing(tmp_path, what):
    folder = tmp_path / "x"
    if what == "empty":
        folder.mkdir()
    elif what == "run":
        save_run(folder, tiny_result())
    before = tree(tmp_path)
    one_error_line(*tms("report", folder)[::2])
    assert tree(tmp_path) == before


# ---- check before you compute ------------------------------------------------------------------------


LOCATIONS = [("/proc/x", "cannot write"), ("afile/r1", "is a file"), (".", "current folder"),
             ("..", "containing the current one"), ("afile", "existing file")]  # fmt: skip


@pytest.mark.parametrize(
    "command, out, fragment",
    [("train", *loc) for loc in LOCATIONS]
    + [("sweep", *LOCATIONS[0]), ("sweep", *LOCATIONS[2]), ("sweep --dry-run", *LOCATIONS[1]),
       ("reproduce", *LOCATIONS[3])],
)
def test_bad_output_location_is_refused_before_any_work(tmp_path, spec_file, command, out, fragment):
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("x")
    args = {"train": ["train", *ENDLESS], "sweep": ["sweep", spec_file], "sweep --dry-run": ["sweep", spec_file,
            "--dry-run"], "reproduce": ["reproduce", "--quick"]}[command]  # fmt: skip
    before = tree(tmp_path)
    code, _, err = tms(*args, "--out", out, "--force", cwd=work, timeout=60)
    one_error_line(code, err, fragment)
    assert "--out" in err
    assert tree(tmp_path) == before


def test_dry_run_refuses_what_the_run_refuses(tmp_path, spec_file, user_folder):
    one_error_line(*tms("sweep", spec_file, "--out", user_folder, "--dry-run")[::2], "tmslab did not write")
    out = tmp_path / "s"
    assert tmslab.sweep(SPEC, out=out, progress=False, workers=1) is not None
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**SPEC, "restarts": 3}))
    one_error_line(*tms("sweep", changed, "--out", out, "--dry-run")[::2], "different spec")
    code, text, err = tms("sweep", changed, "--out", out, "--dry-run", "--force")
    assert code == 0 and text.strip() == "6 runs (2 grid points × 3 restarts) in 1 job of 6 instances", err
    assert len(tmslab.sweep.load_results(out)) == 4  # the dry run changed nothing


# ---- interrupts --------------------------------------------------------------------------------------


def _foreground() -> None:
    # A terminal's foreground job has Ctrl-C at its default; pytest may run with it ignored (as a
    # background job of a non-interactive shell), which every child would inherit across exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args, cwd=None):
    """Start `tms` in its own process group, as a shell runs a job: Ctrl-C goes to the whole group."""
    return subprocess.Popen([TMS, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=cwd, preexec_fn=_foreground)  # fmt: skip


def stop_group(proc, sig, timeout=30):
    os.killpg(proc.pid, sig)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err, time.monotonic() - t0


def group_is_gone(pgid, wait=5.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)  # do not leave workers behind, even when the test fails
    return False


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    assert predicate(), "timed out"


#: Two jobs of 100 steps, then two of a million: the interrupt comes while the long ones run.
LONG_SPEC = {"base": {"features": 5, "hidden": 2, "batch_size": 32, "eval_samples": 512},
             "grid": {"steps": [100, 1_000_000], "density": [1.0, 0.1]}, "max_instances": 1}  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_sweep_stops_its_workers_and_keeps_finished_jobs(tmp_path, sig):
    from tmslab.sweep.run import check_sweep

    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump(LONG_SPEC))
    out = tmp_path / "s"
    proc = start(["sweep", spec, "--out", out, "--workers", "2", "-q"])
    wait_for(lambda: (out / "rows").is_dir() and len(list((out / "rows").glob("j*.parquet"))) == 2)
    code, err, seconds = stop_group(proc, sig)
    assert code == 130 and seconds < 15
    assert group_is_gone(proc.pid), "a worker outlived the interrupted sweep"
    lines = [line for line in err.splitlines() if line.strip()]
    if sig == signal.SIGINT:
        assert lines == ["interrupted: 2/4 jobs done; re-run the same command to resume"], err
    else:
        assert lines == [], err  # SIGTERM: the same, quietly
    # The finished jobs are intact, nothing else was left behind, and the same command resumes.
    done = sorted(p.name[: -len(".parquet")] for p in (out / "rows").iterdir() if p.name != MARKER)
    assert len(done) == 2 and sorted(p.name for p in (out / "jobs").iterdir() if p.name != MARKER) == done
    assert [tmslab.load_run(out / "jobs" / job).config.steps for job in done] == [100, 100]
    plan = check_sweep(spec, out)
    assert not plan.fresh and len(plan.jobs) == 4


def test_stop_workers_kills_a_worker_that_defers_sigterm_after_the_forkserver_died():
    """At the paper's sizes a worker sits in one compiled chunk for minutes, where its SIGTERM handler cannot run,
    and a group-wide SIGTERM kills the forkserver as well (multiprocessing then reads every worker as dead): the
    driver still kills the worker and returns, with jobs left in the queue."""
    import threading
    from multiprocessing import forkserver

    from tmslab.pool import _alive, process_pool, stop_workers, worker_start

    pool = process_pool(1, 1, [])
    with worker_start():
        pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, {signal.SIGTERM}).result(timeout=60)
    for _ in range(3):  # one running, the others queued
        pool.submit(time.sleep, 600)
    (worker,) = list(pool._processes)
    time.sleep(0.5)
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGTERM)
    stopper = threading.Thread(target=stop_workers, args=(pool,), daemon=True)
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive(), "stop_workers hung"
    wait_for(lambda: not _alive(worker), timeout=5)  # SIGKILL sent; its delivery is asynchronous


@pytest.mark.parametrize("args", [["train", *ENDLESS], ["sweep", "SPEC", "--workers", "2"]])
def test_ctrl_c_at_start_up_is_one_line(tmp_path, spec_file, args):
    args = [spec_file if a == "SPEC" else a for a in args]
    out = tmp_path / "out"
    proc = start([*args, "--out", out, "-q"])
    time.sleep(0.4)  # while torch and the workers load
    code, err, _ = stop_group(proc, signal.SIGINT)
    assert code == 130, err
    assert group_is_gone(proc.pid)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err
    assert "Traceback" not in err


def test_interrupted_training_writes_nothing(tmp_path):
    out = tmp_path / "runs" / "r"
    proc = start(["train", *ENDLESS, "--out", out, "-q"])
    time.sleep(3.0)  # training has started (or torch is still loading: the same message)
    code, err, seconds = stop_group(proc, signal.SIGINT)
    assert code == 130 and seconds < 15
    assert err.strip().splitlines()[-1] == (
        "interrupted: nothing was written (a training does not resume); re-run the same command to start again"
    )
    assert not out.exists()


UNGUARDED = """
import tmslab
print("script body ran")
df = tmslab.sweep({spec!r}, out={out!r}, workers=2, progress=False)
print(len(df), "rows")
"""


def test_sweep_from_a_script_without_main_guard(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED.format(spec=SPEC | {"max_instances": 1}, out=str(tmp_path / "s")))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["script body ran", "4 rows"]  # the workers did not re-run the script


# ---- the Python API ------------------------------------------------------------------------------------


def test_train_config_accepts_scalars_arrays_and_the_aliases():
    assert TrainConfig(density=0.1).density == [0.1]
    assert TrainConfig(density=np.array([1.0, 0.1])).density == [1.0, 0.1]
    assert TrainConfig(density=np.float32(0.5)).density == [0.5]
    per_feature = np.full((2, 3), 0.5)
    assert TrainConfig(n_features=3, density=per_feature).density == [[0.5] * 3] * 2
    c = TrainConfig(features=3, hidden=1, importance=np.array([1.0, 0.5, 0.25]))
    assert (c.n_features, c.n_hidden, c.importance) == (3, 1, [1.0, 0.5, 0.25])
    assert TrainConfig.from_dict({"features": 3, "batch-size": 8}).batch_size == 8
    json.dumps(c.to_dict())  # plain JSON values, whatever came in
    with pytest.raises(ConfigError, match="did you mean 'n_features'"):
        TrainConfig(n_featurs=3)
    with pytest.raises(ConfigError, match="given twice"):
        TrainConfig(features=3, n_features=4)


def test_one_vocabulary_in_sweep_specs():
    from tmslab.sweep import load_spec

    spec = load_spec({"base": {"n_features": 3, "hidden": 1}, "grid": {"features": [3, 6]}})
    assert spec.base == {"n_features": 3, "n_hidden": 1} and spec.grid == {"n_features": [3, 6]}


def test_a_config_changed_after_creation_is_validated_by_train():
    config = TrainConfig(steps=10, batch_size=16, eval_samples=256)
    config.n_hidden = 0
    with pytest.raises(ConfigError, match="n_hidden must be an integer >= 1"):
        tmslab.train(config)
    config.n_hidden, config.density = 2, 0.5  # a scalar assigned later is normalised too
    assert tmslab.train(config).config.density == [0.5]


@pytest.mark.parametrize("name", ["feature_norms", "gram", "superposition", "polysemanticity", "learned_features",
                                  "dimensions_per_feature", "feature_dimensionality", "polytopes", "feature_angles",
                                  "angular_gaps", "neuron_feature_counts", "polysemantic_neurons",
                                  "monosemantic_neurons", "neurons_per_feature", "features_per_neuron",
                                  "features_in_superposition", "attack_directions"])  # fmt: skip
def test_every_metric_takes_one_model_or_a_batch_tensor_or_numpy(name):
    fn = getattr(metrics, name)
    angles = torch.arange(5) * 2 * torch.pi / 5
    W = torch.stack([torch.cos(angles), torch.sin(angles)])  # a pentagon, [hidden 2, features 5]
    batch = fn(W[None])
    for single in (fn(W), fn(W.numpy()), fn(W.numpy().astype(np.float32))):
        if isinstance(batch, list) and not isinstance(batch[0], torch.Tensor):  # polytopes: components
            assert single == batch[0]
        else:
            torch.testing.assert_close(single, batch[0])
    if name == "polytopes":
        assert [c.label for c in fn(W.numpy())] == ["pentagon"]


def test_metrics_with_several_arrays_take_one_model():
    W = torch.randn(3, 6, dtype=torch.float64)
    b, x = torch.zeros(6, dtype=torch.float64), torch.rand(64, 6, dtype=torch.float64)
    one = metrics.adversarial_losses(W.numpy(), b.numpy(), x.numpy())
    many = metrics.adversarial_losses(W[None], b[None], x[None])
    torch.testing.assert_close(one.attacked, many.attacked[0])
    W2 = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(metrics.abs_rescale(W, W2)[1], metrics.abs_rescale(W[None], W2[None])[1][0])
    h = x @ W.T
    torch.testing.assert_close(metrics.datapoint_dimensionality(h), metrics.datapoint_dimensionality(h[None])[0])
    with pytest.raises(ValueError, match="one model"):
        metrics.feature_norms(torch.ones(3))


# ---- CLI polish ----------------------------------------------------------------------------------------


def test_errors_name_the_flag_on_the_cli_and_the_field_in_python(tmp_path):
    line = one_error_line(*tms("train", "--out", tmp_path / "r", "--features", "0")[::2], "--features")
    assert "n_features" not in line
    with pytest.raises(ConfigError, match="^n_features must"):
        TrainConfig(n_features=0)


def test_version_help_and_choices():
    code, text, _ = tms("--version")
    assert code == 0 and text.strip() == f"tms (tmslab) {tmslab.__version__}"
    code, text, _ = tms("train", "--help")
    assert code == 0
    assert "(0, 1]" in text and "--model <relu-output|linear|hidden-relu|abs|relu-output-id|resid-mlp|mlp>" in text
    assert "<constant|linear|cosine|cosine-floor>" in text and "<auto|fast|reference>" in text
    one_error_line(*tms("train", "--out", "x", "--model", "transformer")[::2], "'transformer' is not one of")


def test_help_and_usage_errors_do_not_load_torch():
    code = ("import sys; from tmslab.cli import main; main(['train', '--out', 'x', '--density', '2']); "
            "main(['--help']); print(sorted(m for m in ('torch', 'pandas', 'numba') if m in sys.modules))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_experiments_columns_are_aligned():
    code, text, _ = tms("experiments")
    lines = text.splitlines()
    from tmslab.experiments import EXPERIMENTS

    starts = {line.index(exp.title) for line, exp in zip(lines, EXPERIMENTS.values(), strict=True)}
    assert code == 0 and len(starts) == 1


def test_train_output_piped_progress_and_inspect(tmp_path):
    from tmslab.progress import PIPED_INTERVAL_S

    run = tmp_path / "r"
    t0 = time.monotonic()
    code, text, err = tms("train", "--out", run, "--steps", "3000", "--batch-size", "256", "--eval-samples", "512",
                          "--engine", "reference")  # fmt: skip
    seconds = time.monotonic() - t0
    assert code == 0 and text.startswith("trained 1 instance in") and text.endswith(f"wrote {run}\n")
    # stderr is a pipe here: a progress line every PIPED_INTERVAL_S at most (plus the first and the last)
    assert err.count("\r") + err.count("\n") <= 3 + 2 * seconds / PIPED_INTERVAL_S, err
    code, text, _ = tms("inspect", run)
    assert code == 0 and "1 instance (1 restart per configuration)" in text.splitlines()[0]
    code, text, _ = tms("inspect", run, "--json")
    doc = json.loads(text)
    assert code == 0 and doc["config"]["n_features"] == 5 and len(doc["rows"]) == 1
    assert set(doc["rows"][0]) >= {"eval_loss", "learned", "D_star", "sum_D", "polytopes", "density"}


def test_inspect_points_into_sweep_and_reproduce_folders(tmp_path):
    sweep_dir = tmp_path / "s"
    tmslab.sweep(SPEC, out=sweep_dir, progress=False, workers=1)
    line = one_error_line(*tms("inspect", sweep_dir)[::2], "is a sweep folder")
    assert f"tms inspect {sweep_dir / 'jobs' / 'j00000'}" in line and "results.parquet" in line
    repro = tmp_path / "rep"
    save_run(repro / "intro" / "pentagon", tiny_result())  # the layout of a `tms reproduce` folder
    (repro / "intro" / "results.json").write_text("{}")
    line = one_error_line(*tms("inspect", repro)[::2], "is a reproduce folder")
    assert f"tms inspect {repro / 'intro' / 'pentagon'}" in line


def test_train_config_reruns_a_saved_configuration(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    # the long Python names work as flags too (one vocabulary); -qq prints nothing at all
    code, text, err = tms("train", "--out", a, *TINY, "--n-features", "4", "--n-hidden", "2", "--density", "1,0.1",
                          "--restarts", "2", "--seed", "3", "-qq")  # fmt: skip
    assert code == 0 and text == "" and err == "", err
    code, _, err = tms("train", "--config", a / "config.json", "--out", b, "-qq")
    assert code == 0, err
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert tms("train", "--config", a, "--seed", "4", "--out", c, "-qq")[0] == 0
    assert tmslab.load_run(c).config == TrainConfig.from_dict({**tmslab.load_run(a).config.to_dict(), "seed": 4})
    one_error_line(*tms("train", "--config", tmp_path / "nope.json", "--out", tmp_path / "d")[::2], "--config")
