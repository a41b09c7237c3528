"""The CLI: every bad input exits 2 with one line and writes nothing."""

import subprocess
import sys

import pytest

TINY = ["--steps", "20", "--batch-size", "32", "--eval-samples", "512", "--quiet"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--features", "abc"], "--features"),
        (["--features", "0"], "--features must be"),
        (["--hidden", "-2"], "--hidden must be"),
        (["--density", "1,x"], "'x' is not a number"),
        (["--density", "0"], "density"),
        (["--density", "1.5"], "density"),
        (["--density", "nan"], "finite"),
        (["--density", "inf"], "finite"),
        (["--lr", "nan"], "lr"),
        (["--lr", "0"], "lr"),
        (["--model", "transformer"], "model"),  # ("mlp" is a model kind since issue 29)
        (["--restarts", "0"], "restarts"),
        (["--importance", "1,2"], "importance"),
        (["--importance", "1,1,1,1,1", "--importance-decay", "0.9"], "not both"),
        (["--schedule", "exp"], "schedule"),
        (["--batch-size", "100000000", "--features", "1000", "--density", "1,1,1"], "GiB"),
        (["--no-such-flag"], "no-such-flag"),
        (["--d-embed", "20"], "--d-embed applies to the resid-mlp and mlp models only"),
        (["--model", "resid-mlp", "--act", "tanh"], "--act"),
        (["--model", "resid-mlp", "--mixing", "gaussian"], "--mixing applies to the mlp model"),
        (["--model", "mlp", "--n-layers", "2"], "one layer, got --n-layers 2"),
        (["--model", "resid-mlp", "--n-layers", "0"], "--n-layers"),
    ],
)
def test_bad_train_input_exits_2_one_line_nothing_written(tms, tmp_path, args, fragment):
    out = tmp_path / "run"
    code, stdout, err = tms("train", "--out", out, *TINY, *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err + stdout
    assert not out.exists()


def test_out_is_an_existing_file(tms, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = tms("train", "--out", f, *TINY)
    assert code == 2 and "existing file" in err
    assert f.read_text() == "x"


def test_train_then_inspect_and_load(tms, tmp_path):
    import tmslab

    out = tmp_path / "run"
    code, _, err = tms("train", "--out", out, "--density", "1,0.1", "--restarts", "2", *TINY)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "metrics.json", ".tmslab"}
    code, stdout, _ = tms("inspect", out)
    assert code == 0 and "D*" in stdout and "polytopes" in stdout
    run = tmslab.load_run(out)
    assert run.W.shape == (4, 2, 5) and run.b.shape == (4, 5)
    assert [r["index"] for r in run.metrics["instances"]] == [0, 1, 2, 3]
    assert [r["restart"] for r in run.metrics["instances"]] == [0, 1, 0, 1]
    assert sum(r["best"] for r in run.metrics["instances"]) == 2
    assert run.versions["tmslab"] == tmslab.__version__ and "torch" in run.versions


@pytest.mark.parametrize(
    "args, kernels",
    [
        ([], ["train_dense"]),
        (["--sparse"], ["train_sparse", "evaluate_sparse"]),
        (["--engine", "reference"], []),
    ],
)
def test_train_starts_compiling_the_kernels_it_will_run_before_its_imports(tms, tmp_path, monkeypatch, args, kernels):
    """A first run after an install compiles the fast engine's kernels in children started before the slow imports
    (tmslab.precompile); a run that will not use them starts none."""
    from tmslab import precompile
    from tmslab.training import fast

    started = []
    monkeypatch.setattr(precompile, "start", lambda names: started.extend(names))
    monkeypatch.setattr(fast, "start_compiling", lambda names: None)  # only the CLI's own start is recorded
    code, _, err = tms("train", "--out", tmp_path / "run", *args, *TINY)
    assert code == 0, err
    assert started == kernels


def test_existing_nonempty_out_needs_force(tms, tmp_path):
    out = tmp_path / "run"
    assert tms("train", "--out", out, *TINY)[0] == 0
    code, _, err = tms("train", "--out", out, *TINY)
    assert code == 2 and "--force" in err
    assert tms("train", "--out", out, "--force", *TINY)[0] == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "bad-json"])
def test_inspect_corrupted_run_gives_one_line(tms, tmp_path, damage):
    out = tmp_path / "run"
    assert tms("train", "--out", out, *TINY)[0] == 0
    weights = out / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:40])
    elif damage == "garbage":
        weights.write_bytes(b"\x00" * 100)
    elif damage == "missing":
        weights.unlink()
    else:
        (out / "metrics.json").write_text("{not json")
    code, stdout, err = tms("inspect", out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err


def test_inspect_not_a_run(tms, tmp_path):
    code, _, err = tms("inspect", tmp_path / "nope")
    assert code == 2 and "not a directory" in err


def test_divergence_is_reported_and_nothing_saved(tms, tmp_path):
    out = tmp_path / "run"
    code, _, err = tms("train", "--out", out, *TINY, "--lr", "1e30", "--weight-decay", "0")
    assert code == 1
    assert "diverged" in err and "instances" in err
    assert not out.exists()


def test_help_teaches():
    from typer.testing import CliRunner

    from tmslab.cli import app

    res = CliRunner().invoke(app, ["train", "--help"])
    assert res.exit_code == 0
    for flag in ["--model", "--features", "--hidden", "--density", "--importance-decay", "--restarts", "--out"]:
        assert flag in res.output


def test_same_seed_gives_bit_identical_weights(tms, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert tms("train", "--out", out, *TINY, "--restarts", "3", "--seed", "7")[0] == 0
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    c = tmp_path / "c"
    assert tms("train", "--out", c, *TINY, "--restarts", "3", "--seed", "8")[0] == 0
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_theory_kgon_json_and_errors(capsys):
    import json

    from tmslab.cli import main

    assert main(["theory", "kgon", "--features", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["k"] for r in rows} == {4, 5}
    assert set(rows[0]) >= {"k", "variant", "length", "bias", "loss", "llc"}
    five = [r for r in rows if r["k"] == 5][0]
    assert round(five["loss"], 5) == 0.01583 and five["llc"] == 7.0
    four = [r for r in rows if r["k"] == 4]  # σ ≤ 1, φ ≤ 4: 10 families k^{σ+,φ−} (paper-spec D14)
    assert len(four) == 10 and all(r["llc"] is None for r in four)  # the 4-gon sits on a ReLU kink (b* = 0)
    assert {(r["plus"], r["minus"], r["name"]) for r in four} >= {(0, 0, "4"), (1, 0, "4⁺"), (1, 2, "4⁺²⁻")}
    assert main(["theory", "kgon", "--features", "3"]) == 2
    assert "--features must be >= 4" in capsys.readouterr().err
    assert main(["theory", "kgon", "--features", "5", "--k", "6"]) == 2


def test_python_m_tmslab_cli_runs_the_cli():
    # `python -m tmslab.cli` once imported the module and exited 0 silently: a benchmark "ran" `train` that way
    # and then found no run on disk.
    proc = subprocess.run([sys.executable, "-m", "tmslab.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "Usage" in proc.stdout and "reproduce" in proc.stdout
