"""Sparse by default for density laws (issue 30 §1): a configuration whose densities are named laws (§6.5) trains on
the sparse path unless sparse=False / --no-sparse; numeric densities, and every configuration saved with an
explicit value, keep the path they had."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from tmslab.config import ConfigError, ModelKind, TrainConfig

LAW = dict(n_features=40, n_hidden=4, density=["power:0.5"])


def test_a_density_law_trains_sparse_by_default():
    assert TrainConfig(**LAW).sparse is True
    assert TrainConfig(**{**LAW, "density": [0.01, "linear"]}).sparse is True  # one law among the entries suffices


@pytest.mark.parametrize(
    "change",
    [
        {"density": [0.01]},  # numeric densities: dense, as every earlier result
        {"sparse": False},  # --no-sparse
        {"engine": "reference"},  # the sparse path is the fast engine's
        {"device": "cuda"},  # the reference loop on the GPU
        {"model": "abs"},  # signed inputs: no sparse kernels
        {"distribution": "correlated"},
        {"dataset_size": 100},  # finite datasets have their own engine
    ],
)
def test_dense_where_the_sparse_path_does_not_apply_or_is_refused(change):
    assert TrainConfig(**{**LAW, **change}).sparse is False


@pytest.mark.skipif("resid-mlp" not in get_args(ModelKind), reason="the §6.7 model kinds are not in this version")
def test_a_law_on_a_model_without_sparse_path_is_not_refused():
    for kind in ("resid-mlp", "mlp"):
        assert TrainConfig(**{**LAW, "model": kind}).sparse is False  # not turned on, so not refused by validation


def test_sparse_must_be_a_bool_or_none():
    with pytest.raises(ConfigError, match="sparse"):
        TrainConfig(**{**LAW, "sparse": 1})


def test_saved_configurations_keep_their_path():
    """to_dict records the resolved value, so a saved run re-runs on the path it was trained on: a run saved with
    sparse false before this default existed stays dense."""
    c = TrainConfig(**LAW)
    assert c.to_dict()["sparse"] is True and TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    old = {**TrainConfig(**{**LAW, "sparse": False}).to_dict()}
    assert TrainConfig.from_dict(old).sparse is False


def test_cli_default_no_sparse_and_config_rerun(tms, tmp_path):
    common = ["--features", "30", "--hidden", "4", "--steps", "5", "--batch-size", "32", "--eval-samples", "512",
              "--quiet", "--quiet"]  # fmt: skip

    def saved(out):
        return json.loads((out / "config.json").read_text())

    code, _, err = tms("train", "--out", tmp_path / "law", "--density-law", "power:0.5", *common)
    assert code == 0, err
    assert saved(tmp_path / "law")["sparse"] is True
    assert json.loads((tmp_path / "law" / "metrics.json").read_text())["engine"] == "fast"
    code, _, err = tms("train", "--out", tmp_path / "dense", "--density-law", "power:0.5", "--no-sparse", *common)
    assert code == 0, err
    assert saved(tmp_path / "dense")["sparse"] is False
    code, _, err = tms("train", "--out", tmp_path / "numeric", "--density", "0.05", *common)
    assert code == 0, err
    assert saved(tmp_path / "numeric")["sparse"] is False
    # --config re-runs a saved configuration on its own path unless the flag is typed again
    code, _, err = tms("train", "--out", tmp_path / "again", "--config", tmp_path / "dense", "--steps", "3", "-qq")
    assert code == 0, err
    assert saved(tmp_path / "again")["sparse"] is False
    code, _, err = tms("train", "--out", tmp_path / "flip", "--config", tmp_path / "dense", "--sparse", "-qq")
    assert code == 0, err
    assert saved(tmp_path / "flip")["sparse"] is True


def test_train_help_documents_the_default(tms):
    code, stdout, _ = tms("train", "--help")
    assert code == 0 and "--no-sparse" in stdout and "--density-law" in stdout


def test_a_sweep_over_a_density_law_trains_sparse_by_default():
    """A sweep turns a law name into per-feature lists before building its configurations; the default is resolved
    from the name first, so a law trains sparse, a numeric density dense, and an explicit `sparse` wins."""
    from tmslab.sweep.plan import plan_jobs
    from tmslab.sweep.spec import load_spec

    def sparse(density, **base):
        spec = load_spec({"base": {"n_features": 50, "steps": 10, "density": density, **base},
                          "grid": {"n_hidden": [5, 10]}})
        return [j.train_config().sparse for j in plan_jobs(spec)]

    assert sparse("power:0.5") == [True, True]
    assert sparse(0.1) == [False, False]
    assert sparse("power:0.5", sparse=False) == [False, False]
    assert sparse("power:0.5", engine="reference") == [False, False]
