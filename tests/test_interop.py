"""Export / import (tmslab.interop, paper-spec §6.6): bit-exact round trips, a hand-written param-decomp
checkpoint, and one-line refusals that write nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from tmslab import TrainConfig, load_run, save_run, train
from tmslab.cli import main
from tmslab.interop import InteropError, export_run, import_dir, instance_config, read_dir


def tiny(**kw) -> TrainConfig:
    base = dict(n_features=5, n_hidden=2, density=[0.1], restarts=2, steps=60, eval_samples=2000,
                engine="reference")
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, cfg in {
        "relu": tiny(importance_decay=0.9),
        "id": tiny(model="relu-output-id"),
        "linear": tiny(model="linear"),
        "abs": tiny(model="abs", n_hidden=4, density=[1.0, 0.3]),
        "two": tiny(density=[1.0, 0.1]),
    }.items():
        out[name] = save_run(root / name, train(cfg))
    return out


@pytest.mark.parametrize(
    ("run_name", "fmt", "weights"),
    [("relu", "param-decomp", "tms.pth"), ("id", "param-decomp", "tms.pth"),
     ("relu", "devinterp", "toy_autoencoder.pth"), ("linear", "devinterp", "toy_autoencoder.pth"),
     ("abs", "transformer-lens", "hooked_toy_model.safetensors"),
     ("id", "transformer-lens", "hooked_toy_model.safetensors")],
)
def test_round_trip_is_bit_exact(runs, tmp_path, run_name, fmt, weights):
    run = load_run(runs[run_name])
    k = 1 if run.config.n_instances > 1 and fmt != "transformer-lens" else None
    exported = export_run(run, fmt, tmp_path / "x", instance=k)
    back = load_run(import_dir(exported, tmp_path / "back"))
    chosen = [k] if k is not None else list(range(run.config.n_instances))
    for name, value in run.params.items():
        assert torch.equal(back.params[name], value[chosen]), name
    expected = instance_config(run.config, k) if k is not None else run.config
    assert back.config == expected
    assert back.metrics["imported"]["format"] == fmt
    # tmslab → format → tmslab → format: the same bytes again.
    again = export_run(back, fmt, tmp_path / "y", instance=0 if k is not None else None)
    assert (again / weights).read_bytes() == (exported / weights).read_bytes()


def test_param_decomp_files_hold_their_keys(runs, tmp_path):
    run = load_run(runs["id"])
    out = export_run(run, "param-decomp", tmp_path / "pd", instance=0, schedule_form="object")
    state = torch.load(out / "tms.pth", weights_only=True)
    W = run.params["W"][0]
    assert set(state) == {"linear1.weight", "linear2.weight", "linear2.bias", "hidden_layers.0.weight"}
    assert torch.equal(state["linear1.weight"], W) and torch.equal(state["linear2.weight"], W.T)
    assert torch.equal(state["hidden_layers.0.weight"], torch.eye(2))
    cfg = yaml.safe_load((out / "tms_train_config.yaml").read_text())
    assert cfg["tms_model_config"] == {"n_features": 5, "n_hidden": 2, "n_hidden_layers": 1, "tied_weights": True,
                                       "init_bias_to_zero": True, "device": "cpu"}
    assert cfg["fixed_identity_hidden_layers"] is True and cfg["feature_probability"] == 0.1
    assert cfg["lr_schedule"] == {"start_val": 1e-3, "fn_type": "constant", "warmup_pct": 0.0, "final_val_frac": 1.0}
    legacy = yaml.safe_load((export_run(run, "param-decomp", tmp_path / "l", instance=0) / "tms_train_config.yaml")
                            .read_text())
    assert legacy["lr"] == 1e-3 and legacy["lr_schedule"] == "constant"


class TheirTMS(nn.Module):
    """A stand-in written from param-decomp's key names: linear1, hidden_layers, linear2, tied."""

    def __init__(self, n: int, m: int, layers: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(n, m, bias=False)
        self.linear2 = nn.Linear(m, n, bias=True)
        self.hidden_layers = nn.ModuleList([nn.Linear(m, m, bias=False) for _ in range(layers)]) if layers else None
        for layer in self.hidden_layers or []:
            layer.weight.data[:] = torch.eye(m)
        self.linear2.weight.data = self.linear1.weight.data.T

    def forward(self, x):
        h = self.linear1(x)
        for layer in self.hidden_layers or []:
            h = layer(h)
        return torch.relu(self.linear2(h))


def _their_checkpoint(directory: Path, layers: int, legacy: bool) -> TheirTMS:
    torch.manual_seed(3)
    model = TheirTMS(40, 10, layers)
    directory.mkdir()
    torch.save(model.state_dict(), directory / "tms.pth")
    lr = {"lr": "5e-3", "lr_schedule": "constant"} if legacy else {
        "lr_schedule": {"start_val": 0.005, "fn_type": "constant", "warmup_pct": 0.0, "final_val_frac": 1.0}}
    cfg = {"wandb_project": None,
           "tms_model_config": {"n_features": 40, "n_hidden": 10, "n_hidden_layers": layers, "tied_weights": True,
                                "init_bias_to_zero": True, "device": "cpu"},
           "feature_probability": 0.05, "batch_size": 8192, "steps": 10000, "seed": 0, **lr,
           "data_generation_type": "at_least_zero_active", "fixed_identity_hidden_layers": bool(layers),
           "fixed_random_hidden_layers": False, "synced_inputs": None}
    (directory / "tms_train_config.yaml").write_text(yaml.safe_dump(cfg))
    return model


@pytest.mark.parametrize(("layers", "legacy"), [(0, True), (1, False)])
def test_hand_written_param_decomp_checkpoint_imports(tmp_path, layers, legacy):
    theirs = _their_checkpoint(tmp_path / "pd", layers, legacy)
    assert main(["import", str(tmp_path / "pd"), "--out", str(tmp_path / "run")]) == 0
    run = load_run(tmp_path / "run")
    assert run.config.model == ("relu-output-id" if layers else "relu-output")
    assert (run.config.n_features, run.config.n_hidden, run.config.density, run.config.lr) == (40, 10, [0.05], 5e-3)
    assert (run.config.batch_size, run.config.steps) == (8192, 10000)
    assert torch.equal(run.params["W"][0], theirs.linear1.weight.detach())
    assert torch.equal(run.params["b"][0], theirs.linear2.bias.detach())
    x = torch.rand(64, 40)
    torch.testing.assert_close(run.model(x[None])[0], theirs(x).detach())


def _corrupt(directory: Path, how: str) -> None:
    path = directory / "tms.pth"
    state = torch.load(path, weights_only=True)
    if how == "pickle":
        path.write_bytes(pickle.dumps({"linear1.weight": TheirTMS}))
    elif how == "module":
        torch.save(TheirTMS(40, 10, 0), path)
    elif how == "extra-key":
        torch.save({**state, "linear1.bias": torch.zeros(10)}, path)
    elif how == "shape":
        torch.save({**state, "linear2.bias": torch.zeros(39)}, path)
    elif how == "untied":
        torch.save({**state, "linear2.weight": state["linear2.weight"] + 1}, path)
    elif how == "not-identity":
        torch.save({**state, "hidden_layers.0.weight": 2 * torch.eye(10)}, path)
    elif how == "nan":
        torch.save({**state, "linear2.bias": torch.full((40,), float("nan"))}, path)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("how", ["pickle", "module", "extra-key", "shape", "untied", "not-identity", "nan",
                                 "truncated"])
def test_bad_checkpoints_are_refused_in_one_line(tmp_path, capsys, how):
    _their_checkpoint(tmp_path / "pd", 1, legacy=True)
    _corrupt(tmp_path / "pd", how)
    assert main(["import", str(tmp_path / "pd"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and [p.name for p in tmp_path.iterdir()] == ["pd"]


def test_export_refusals(runs, tmp_path, capsys):
    assert main(["export", str(runs["abs"]), "--to", "param-decomp", "--out", str(tmp_path / "a"),
                 "--instance", "0"]) == 2
    assert "cannot hold a abs model" in capsys.readouterr().err
    assert main(["export", str(runs["two"]), "--to", "devinterp", "--out", str(tmp_path / "b")]) == 2
    assert "choose one model with --instance" in capsys.readouterr().err
    assert main(["export", str(runs["two"]), "--to", "onnx", "--out", str(tmp_path / "c")]) == 2
    assert main(["export", str(runs["two"]), "--to", "devinterp", "--out", str(tmp_path / "d"), "--instance", "9"]) == 2
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InteropError, match="tmslab.json is missing"):
        out = export_run(load_run(runs["abs"]), "transformer-lens", tmp_path / "tl")
        (out / "tmslab.json").unlink()
        read_dir(out)


def test_cli_export_import(runs, tmp_path, capsys):
    assert main(["export", str(runs["relu"]), "--to", "param-decomp", "--out", str(tmp_path / "pd")]) == 0
    assert main(["import", str(tmp_path / "pd"), "--out", str(tmp_path / "run")]) == 0
    run, orig = load_run(tmp_path / "run"), load_run(runs["relu"])
    best = orig.best_indices()[0]
    assert torch.equal(run.params["W"][0], orig.params["W"][best])
    assert main(["import", str(tmp_path / "pd"), "--out", str(tmp_path / "run")]) == 2  # exists, not empty
