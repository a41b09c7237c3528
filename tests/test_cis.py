"""Computation in superposition (paper-spec §6.7, tmslab.cis): models, labels, the naive baseline, the probe,
eigen-concentration, semi-NMF, and the resid-mlp / mlp kinds as ordinary TrainConfig kinds."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from tmslab import cis
from tmslab.config import ConfigError, TrainConfig
from tmslab.io import load_run, save_run
from tmslab.models import CISModel
from tmslab.training import build, train


def small(model: str = "resid-mlp", **kw) -> TrainConfig:
    base = dict(
        model=model,
        n_features=12,
        n_hidden=6,
        d_embed=40,
        density=[0.1],
        batch_size=64,
        steps=30,
        lr=3e-3,
        schedule="cosine-floor",
        lr_floor=0.0,
        eval_samples=2_000,
    )
    return TrainConfig(**{**base, **kw})


def test_naive_closed_form_and_monte_carlo():
    assert cis.naive_lp(100, 50) == pytest.approx(1 / 12)
    assert cis.naive_lp(102, 17) == pytest.approx(85 / 102 / 6)
    with pytest.raises(ConfigError, match="d_mlp"):
        cis.naive_lp(10, 11)
    # Known answer: the naive MLP on labels ReLU(x) at p = 0.01. 10⁶ samples give a relative standard error of
    # ≈ 0.3%, so ±2% is ≈ 7 standard errors.
    e = cis.evaluate(cis.mlp_model(cis.naive_params(100, 50)), 0.01, 1_000_000)
    assert float(e.lp[0]) == pytest.approx(1 / 12, rel=0.02)
    assert 0 < float(e.se[0]) < 0.003 * float(e.lp[0])


def test_standard_error_matches_the_spread_over_seeds():
    model = cis.mlp_model(cis.naive_params(20, 10))
    runs = [cis.evaluate(model, 0.1, 20_000, seed=s) for s in range(12)]
    spread = torch.tensor([float(r.lp[0]) for r in runs]).std()
    se = float(runs[0].se[0])
    assert 0.5 * se < float(spread) < 2.0 * se  # 12 draws: the sample std is within a factor 2 w.p. > 0.99


def test_embedding_unit_rows_and_tied_frozen_unembedding():
    model, _, _ = build(small(restarts=2))
    assert torch.equal(model.W_U, model.W_E.transpose(1, 2))
    assert torch.allclose(model.W_E.norm(dim=-1), torch.ones(2, 12), atol=1e-6)
    assert not model.W_E.requires_grad
    assert torch.equal(model.W_E[0], cis.embedding(12, 40, 0)) and torch.equal(model.W_E[1], cis.embedding(12, 40, 1))


@pytest.mark.parametrize("act,layers", [("relu", 1), ("gelu", 3)])
def test_folded_forward_equals_param_decomp_order(act, layers):
    cfg = small(act=act, n_layers=layers, restarts=2)
    model, dist, _ = build(cfg)
    with torch.no_grad():
        for p in (model.W_in, model.W_out):
            p.mul_(3)  # large enough that every layer's activations matter
    x = dist.sample(256, torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, fast = model.forward_reference(x), model(x)
    scale = float(ref.abs().max())
    assert scale > 0.5
    # float32: sums in another order differ by rounding, relative to the outputs' scale
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5 * scale)
    model, x = model.double(), x.double()  # float64: the same function up to 1e-12
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_reference(x), rtol=0, atol=1e-10 * scale)


def test_labels():
    x = torch.tensor([[[0.5, -0.25, 0.0, 1.0]]])
    assert torch.equal(cis.labels(x), x + torch.relu(x))
    cfg = small("mlp", n_features=4, n_hidden=2, mixing="embedding", mixing_scale=0.5)
    model, _, _ = build(cfg)
    W_E = cis.embedding(4, 40, 0).double()
    M = 0.5 * (torch.eye(4, dtype=torch.float64) - W_E @ W_E.T)
    want = torch.relu(x.double()) + x.double() @ M
    torch.testing.assert_close(model.target(x).double(), want, rtol=1e-6, atol=1e-6)
    assert torch.allclose(torch.diagonal(model.M[0]), torch.zeros(4), atol=1e-6)  # unit rows: zero diagonal
    g = cis.mixing_matrices(small("mlp", mixing="gaussian", mixing_scale=0.1))[0]
    assert torch.equal(g, g.T) and 0.05 < float(g.std()) < 0.15
    assert not cis.mixing_matrices(small("mlp")).any()


def test_embedding_mixing_is_the_resid_models_equivalence():
    """§6.7: resid-mlp's output is x G + MLP(x W_E) W_Eᵀ, so its MLP must fit ReLU(x) + x(I − G)."""
    resid, dist, _ = build(small())
    x = dist.sample(128, torch.Generator().manual_seed(2))
    G = resid.W_E[0] @ resid.W_E[0].T
    mlp_part = resid(x) - x @ G
    target_for_mlp = torch.relu(x) + x @ cis.embedding_mixing(resid.W_E[0])
    torch.testing.assert_close(resid.target(x) - resid(x), target_for_mlp - mlp_part, rtol=1e-5, atol=1e-5)


def test_one_hot_probe_known_answer():
    probe = cis.one_hot_probe(cis.mlp_model(cis.naive_params(10, 4)))
    assert float(probe["plus"][0]) == pytest.approx(0.4)  # 4 of 10 features computed: ŷ_i(1) = 1, else 0
    assert float(probe["minus"][0]) == 0.0 and float(probe["off_max"][0]) == 0.0


def test_eigen_concentration_known_answer():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(10, 10, generator=g)
    vals, vecs = torch.linalg.eigh((M + M.T) / 2)
    E = vecs[:, torch.argsort(vals, descending=True)]
    k = 4
    c = cis.eigen_concentration(E[:, :k].T, E[:, :k], M)  # A = projector onto the top-k eigenvectors
    torch.testing.assert_close(c[:k], torch.ones(k), atol=1e-5, rtol=0)
    assert c[k:].abs().max() < 1e-5
    assert c.shape == (10,)


def test_semi_nmf():
    U, V = cis.semi_nmf(torch.eye(12), 12, iters=100)
    assert (U >= 0).all()
    assert float((U @ V - torch.eye(12)).norm()) < 1e-3  # full rank: exact
    U, V = cis.semi_nmf(torch.eye(12), 5, iters=100)
    # the best rank-5 factorisation of I misses 7 unit directions: ‖UV − I‖²_F ≥ 7, and U ≥ 0 reaches it
    assert 7 - 1e-4 <= float((U @ V - torch.eye(12)).norm() ** 2) <= 7 * 1.05
    params = cis.semi_nmf_params(0.01 * cis.gaussian_mixing(12, 0), 5)
    assert params["W_in"].shape == (1, 5, 12) and params["W_out"].shape == (1, 12, 5)


def test_config_validation():
    with pytest.raises(ConfigError, match="mixing"):
        TrainConfig(model="resid-mlp", mixing="gaussian")
    with pytest.raises(ConfigError, match="d_embed"):
        TrainConfig(model="relu-output", d_embed=10)
    with pytest.raises(ConfigError, match="engine 'fast'"):
        TrainConfig(model="mlp", engine="fast")
    with pytest.raises(ConfigError, match="act"):
        TrainConfig(model="mlp", act="tanh")
    with pytest.raises(ConfigError, match="n_layers"):
        TrainConfig(model="mlp", n_layers=2)
    # the new options stay out of every other configuration's JSON (hashes of earlier configurations unchanged)
    assert "d_embed" not in TrainConfig().to_dict()
    cfg = small("mlp", mixing="gaussian", mixing_scale=0.02)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_train_save_load_round_trip(tmp_path):
    cfg = small(n_layers=2, steps=40)
    result = train(cfg)
    assert result.engine == "reference"
    assert torch.equal(result.params["W_E"][0], cis.embedding(12, 40, 0))  # frozen through training
    first, _, _ = build(cfg)
    assert not torch.equal(result.params["W_in"], first.W_in.detach())  # the MLP trained
    run = load_run(save_run(tmp_path / "r", result))
    assert run.config == cfg and set(run.params) == {"W_E", "W_in", "W_out"}
    assert run.W.shape == (1, 6, 12)
    x = torch.randn(1, 5, 12)
    torch.testing.assert_close(run.model(x), result.model(x))
    # the recorded eval_loss is tmslab's L (summed over outputs) = n · the §6.7 mean, on its own samples
    mean = cis.evaluate(run.model, 0.1, 200_000)
    assert float(run.eval_loss[0]) / 12 / 0.1 == pytest.approx(float(mean.lp[0]), rel=0.1)


@pytest.mark.parametrize(
    "flags, fields",
    [
        (["--model", "resid-mlp", "--n-layers", "2", "--act", "gelu"], dict(n_layers=2, act="gelu")),
        (["--model", "mlp", "--mixing", "gaussian", "--mixing-scale", "0.03"],
         dict(model="mlp", mixing="gaussian", mixing_scale=0.03)),
    ],
)
def test_tms_train_flags_make_the_same_configuration(tms, tmp_path, flags, fields):
    """`tms train`'s §6.7 flags build exactly the configuration the Python API does, and train it."""
    base = ["--features", "12", "--hidden", "6", "--d-embed", "40", "--density", "0.1", "--batch-size", "64",
            "--steps", "30", "--lr", "3e-3", "--schedule", "cosine-floor", "--lr-floor", "0", "--eval-samples", "2000"]
    code, _, err = tms("train", "--out", tmp_path / "r", *base, *flags, "-q")
    assert code == 0, err
    assert load_run(tmp_path / "r").config == small(**fields)


def test_training_lowers_the_loss_of_the_mlp_with_mixing():
    cfg = small("mlp", mixing="embedding", steps=300, density=[0.2], batch_size=256)
    before, _, _ = build(cfg)
    after = train(cfg).model
    lp0, lp1 = (float(cis.evaluate(m, 0.2, 50_000).lp[0]) for m in (before, after))
    assert lp1 < 0.8 * lp0


def test_cis_model_rejects_unknown_kind():
    with pytest.raises(ValueError, match="resid-mlp"):
        CISModel("relu-output", 1, 4, 2)
    assert math.isclose(cis.RELU_SQ, 1 / 6)


# ---- param-decomp export / import (paper-spec §6.7 formats) ----------------------------------------------------


class TheirResidMLP(torch.nn.Module):
    """param-decomp's ResidMLP written independently of tmslab (spd/experiments/resid_mlp/models.py's names)."""

    def __init__(self, n: int, d: int, m: int, layers: int, act: str) -> None:
        super().__init__()
        self.W_E = torch.nn.Parameter(torch.empty(n, d))
        self.W_U = torch.nn.Parameter(torch.empty(d, n))
        self.act = torch.nn.functional.gelu if act == "gelu" else torch.relu
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            block = torch.nn.Module()
            block.mlp_in = torch.nn.Linear(d, m, bias=False)
            block.mlp_out = torch.nn.Linear(m, d, bias=False)
            self.layers.append(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x @ self.W_E
        for block in self.layers:
            r = r + block.mlp_out(self.act(block.mlp_in(r)))
        return r @ self.W_U


def test_param_decomp_export_round_trip(tmp_path):
    import json

    import yaml

    from tmslab.interop import RM_FIELDS, RM_MODEL_FIELDS, export_run, import_dir

    cfg = small(n_layers=2, act="gelu", steps=20)
    run = load_run(save_run(tmp_path / "run", train(cfg)))
    out = export_run(run, "param-decomp", tmp_path / "pd")
    assert sorted(p.name for p in out.iterdir() if p.name != ".tmslab") == sorted(
        ["resid_mlp.pth", "resid_mlp_train_config.yaml", "label_coeffs.json", "tmslab.json"]
    )
    theirs = yaml.safe_load((out / "resid_mlp_train_config.yaml").read_text())
    assert tuple(theirs) == RM_FIELDS and tuple(theirs["resid_mlp_model_config"]) == RM_MODEL_FIELDS
    assert theirs["lr_schedule"] == {"start_val": 3e-3, "warmup_pct": 0.0, "final_val_frac": 0.0, "fn_type": "cosine"}
    assert json.loads((out / "label_coeffs.json").read_text()) == [1.0] * 12
    state = torch.load(out / "resid_mlp.pth", weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "W_E": (12, 40), "W_U": (40, 12),
        "layers.0.mlp_in.weight": (6, 40), "layers.0.mlp_out.weight": (40, 6),
        "layers.1.mlp_in.weight": (6, 40), "layers.1.mlp_out.weight": (40, 6),
    }  # fmt: skip
    model = TheirResidMLP(12, 40, 6, 2, "gelu")
    model.load_state_dict(state, strict=True)
    x = cis.sample(500, 12, 0.3, torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), run.model(x[None])[0], rtol=1e-5, atol=1e-5)
    back = load_run(import_dir(out, tmp_path / "back"))
    assert back.config == run.config
    assert all(torch.equal(back.params[k], run.params[k]) for k in run.params)
    # without tmslab.json the configuration is mapped from theirs: the same one here
    (out / "tmslab.json").unlink()
    mapped = load_run(import_dir(out, tmp_path / "mapped"))
    assert replace(mapped.config, eval_samples=run.config.eval_samples) == run.config  # tmslab's default count
    assert torch.equal(mapped.params["W_in"], run.params["W_in"])


def test_param_decomp_import_refusals(tmp_path):
    import yaml

    from tmslab.interop import InteropError, export_run, import_dir

    run = load_run(save_run(tmp_path / "run", train(small(steps=5))))
    out = export_run(run, "param-decomp", tmp_path / "pd")
    (out / "tmslab.json").unlink()
    path = out / "resid_mlp_train_config.yaml"
    good = yaml.safe_load(path.read_text())
    for edit, message in (
        ({"extra_key": 1}, "unknown key"),
        ({"resid_mlp_model_config": {**good["resid_mlp_model_config"], "in_bias": True}}, "no biases"),
        ({"label_type": "abs"}, "label_type"),
        ({"resid_mlp_model_config": {**good["resid_mlp_model_config"], "d_mlp": 7}}, "shape"),
    ):
        path.write_text(yaml.safe_dump({**good, **edit}, sort_keys=False))
        with pytest.raises(InteropError, match=message):
            import_dir(out, tmp_path / "x")
    path.write_text(yaml.safe_dump(good, sort_keys=False))
    state = torch.load(out / "resid_mlp.pth", weights_only=True)
    torch.save({**state, "W_U": state["W_U"] * 2}, out / "resid_mlp.pth")
    with pytest.raises(InteropError, match="W_U is not W_Eᵀ"):
        import_dir(out, tmp_path / "x")
    torch.save({"W_E": state["W_E"]}, out / "resid_mlp.pth")
    with pytest.raises(InteropError, match="expected exactly"):
        import_dir(out, tmp_path / "x")
    (out / "resid_mlp.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InteropError, match="weights-only"):
        import_dir(out, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_mlp_kind_has_no_param_decomp_format(tmp_path):
    from tmslab.interop import InteropError, export_run

    run = load_run(save_run(tmp_path / "run", train(small("mlp", steps=5))))
    with pytest.raises(InteropError, match="cannot hold a mlp model"):
        export_run(run, "param-decomp", tmp_path / "pd")


def test_zoo_resid_mlp_entries_and_checks(tmp_path):
    from tmslab import zoo

    sizes = {name: (zoo.ZOO[name].config.n_features, zoo.ZOO[name].config.n_hidden, zoo.ZOO[name].config.n_layers,
                    zoo.ZOO[name].config.steps) for name in ("resid-mlp1", "resid-mlp2", "resid-mlp3")}  # fmt: skip
    assert sizes == {
        "resid-mlp1": (100, 50, 1, 1000),
        "resid-mlp2": (100, 25, 2, 1000),
        "resid-mlp3": (102, 17, 3, 10000),
    }
    run = load_run(save_run(tmp_path / "run", train(small(steps=200, density=[0.1]))))
    checks = zoo.resid_mlp_checks(samples=50_000)(run)
    assert [c.kind for c in checks] == ["sanity", "sanity", "claim", "claim"]
    assert checks[0].passed and checks[1].passed and checks[2].passed  # frozen embedding, same function, trained
    assert "training density" in checks[3].name and checks[3].expected == f"≤ {round(cis.naive_lp(12, 6), 5):g}"
