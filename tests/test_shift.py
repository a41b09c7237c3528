"""The identity-layer model kind and distribution-shift targets (paper-spec §6.6)."""

from __future__ import annotations

import json

import pytest
import torch

from tmslab import TrainConfig, train
from tmslab.cli import main
from tmslab.config import ConfigError
from tmslab.data import Independent
from tmslab.training import _engine, build, evaluate


@pytest.mark.parametrize("engine", ["reference", "auto"])
def test_identity_layer_model_is_frozen_and_equals_relu_output(engine):
    """The -id model is ReLU(Wᵀ·I·Wx + b) with I frozen: same function and same training as relu-output, on the
    reference loop and on the fast engine (which auto picks for both)."""
    cfg = dict(n_features=5, n_hidden=2, density=[0.05], restarts=2, steps=200, eval_samples=2000, engine=engine)
    plain, ident = train(TrainConfig(**cfg)), train(TrainConfig(model="relu-output-id", **cfg))
    assert plain.engine == ident.engine == ("reference" if engine == "reference" else "fast")
    assert torch.equal(plain.params["W"], ident.params["W"]) and torch.equal(plain.params["b"], ident.params["b"])
    assert torch.equal(plain.eval_loss, ident.eval_loss)
    model = ident.model
    assert [n for n, _ in model.named_parameters()] == ["W", "b"] and set(model.state_dict()) == {"W", "b"}
    assert torch.equal(model.identity, torch.eye(2).expand(2, 2, 2))


def test_auto_engine_picks_the_fast_engine():
    """Both targets train on the fast engine: the frozen identity changes no gradient, density 0 is exact there."""
    assert _engine(TrainConfig(model="relu-output-id")) == "fast"
    assert _engine(TrainConfig(off_features=[1])) == "fast"


def test_off_features_are_never_active():
    cfg = TrainConfig(n_features=4, density=[1.0, 0.5], off_features=[3, 0])
    _, dist, _ = build(cfg)
    x = dist.sample(20_000, torch.Generator().manual_seed(0))
    assert cfg.off_features == [0, 3]
    assert (x[..., [0, 3]] == 0).all() and (x[0, :, 1] > 0).float().mean() > 0.99
    # torch.rand can return exactly 0.0, which `rand <= 0` would let through: density 0 is masked explicitly.
    zero = Independent(torch.zeros(1, 1))
    assert zero.sample(10, None).abs().sum() == 0


@pytest.mark.parametrize(
    ("kw", "msg"),
    [(dict(off_features=[5]), "off_features must be distinct indices in \\[0, 4\\]"),
     (dict(off_features=[1, 1]), "distinct"),
     (dict(off_features=["a"]), "list of feature indices"),
     (dict(off_features=[1], distribution="one-hot"), "independent distribution"),
     (dict(eval_density=[0.1, 0.2]), "eval_density needs 1 entries"),
     (dict(eval_density=[1.5]), "eval_density must be in \\[0, 1\\]"),
     (dict(eval_density=[0.1], distribution="one-hot"), "one-hot")],
)
def test_shift_validation(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig(n_features=5, **kw)


def test_shifted_loss_is_recorded(tmp_path, capsys):
    args = ["train", "--features", "5", "--hidden", "2", "--density", "0.1,1", "--off-features", "4",
            "--eval-density", "0.1,1", "--steps", "100", "--eval-samples", "4000", "--quiet", "--out"]
    assert main([*args, str(tmp_path / "r")]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["off_features"] == [4] and cfg["eval_density"] == [0.1, 1.0] and cfg["engine"] == "fast"
    recs = json.loads((tmp_path / "r" / "metrics.json").read_text())["instances"]
    assert all(r["shifted_eval_loss"] > r["eval_loss"] for r in recs)
    assert [r["eval_density"] for r in recs] == [0.1, 1.0]
    assert main([*args[:-1], "--off-features", "x", "--out", str(tmp_path / "bad")]) == 2
    assert "--off-features" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_shifted_loss_equals_evaluation_at_that_density():
    shifted = [[0.1, 0.1, 0.1, 0.1, 0.5]]
    cfg = TrainConfig(n_features=5, n_hidden=2, density=[0.1], eval_density=shifted, steps=50, eval_samples=3000,
                      engine="reference")
    res = train(cfg)
    model, dist, imp = build(TrainConfig(n_features=5, n_hidden=2, density=shifted, eval_samples=3000))
    model.load_state_dict(res.params)
    assert torch.equal(res.shifted_eval_loss, evaluate(model, dist, imp, 3000))
    assert train(TrainConfig(**{**cfg.to_dict(), "eval_density": None})).shifted_eval_loss is None
