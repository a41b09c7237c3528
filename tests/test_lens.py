"""tmslab.lens.HookedToyModel (paper-spec §6.6): TransformerLens hook points on tmslab models; outputs equal
ToyModel's exactly and run_with_cache reproduces the model from its cached activations."""

from __future__ import annotations

import os

import pytest
import torch

from tmslab import TrainConfig, load_run, save_run, train
from tmslab.interop import export_run
from tmslab.models import MODEL_KINDS, ToyModel

if os.environ.get("CI"):  # CI installs the lens extra (.ci/run): its tests must run there, not skip
    import transformer_lens  # noqa: F401
lens = pytest.importorskip("tmslab.lens", reason="needs the lens extra: pip install 'tmslab[lens]'")


def _model(kind: str, instances: int = 3) -> ToyModel:
    m = 4 if kind in ("abs", "hidden-relu") else 2
    model = ToyModel(kind, instances, 5, m)
    model.reset_parameters(list(range(instances)))
    with torch.no_grad():
        model.b.copy_(torch.randn(model.b.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
    return model


def _x(instances: int, batch: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(instances, batch, 5, generator=g)
    return torch.where(torch.rand(x.shape, generator=g) < 0.4, x, 0.0)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_outputs_equal_the_tmslab_model(kind):
    toy = _model(kind)
    hooked = lens.HookedToyModel.from_params(kind, toy.params())
    x = _x(3)
    if kind == "abs":
        x = x * (1 - 2 * (torch.arange(5) % 2))  # signed inputs for the absolute-value task
    assert torch.equal(hooked(x), toy(x))
    assert torch.equal(hooked.to_toy_model()(x), toy(x))


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_run_with_cache_reproduces_the_model(kind):
    toy = _model(kind)
    hooked = lens.HookedToyModel.from_params(kind, toy.params())
    x = _x(3)
    out, cache = hooked.run_with_cache(x)
    expected = {"hook_hidden", "hook_out_pre", "hook_out"} | (
        {"hook_hidden_post"} if kind in ("hidden-relu", "abs") else set())
    assert set(cache.keys()) == expected == set(hooked.hook_dict)
    p = toy.params()
    enc = p["W1"] if kind == "abs" else p["W"]
    torch.testing.assert_close(cache["hook_hidden"], torch.einsum("ibf,ihf->ibh", x, enc))
    h = cache["hook_hidden_post"] if kind in ("hidden-relu", "abs") else cache["hook_hidden"]
    dec = p["W2"] if kind == "abs" else p["W"].transpose(1, 2)
    pre = torch.einsum("ibh,ifh->ibf", h, dec) + p["b"][:, None, :]
    torch.testing.assert_close(cache["hook_out_pre"], pre)
    act = (lambda t: t) if kind == "linear" else torch.relu
    torch.testing.assert_close(act(cache["hook_out_pre"]), out)
    assert torch.equal(cache["hook_out"], out) and torch.equal(out, toy(x))


def test_hooks_can_edit_activations():
    toy = _model("relu-output")
    hooked = lens.HookedToyModel.from_params("relu-output", toy.params())
    x = _x(3)
    zeroed = hooked.run_with_hooks(x, fwd_hooks=[("hook_hidden", lambda act, hook: torch.zeros_like(act))])
    torch.testing.assert_close(zeroed, torch.relu(toy.b)[:, None, :].expand_as(zeroed))


def test_single_instance_from_run_takes_2d_batches(tmp_path):
    cfg = TrainConfig(n_features=5, n_hidden=2, density=[0.1], restarts=3, steps=50, eval_samples=1000,
                      engine="reference")
    run = load_run(save_run(tmp_path / "r", train(cfg)))
    one = lens.HookedToyModel.from_run(run, instance=2)
    x = _x(1)[0]
    out, cache = one.run_with_cache(x)
    assert out.shape == (32, 5) and cache["hook_hidden"].shape == (32, 2)
    assert torch.equal(out, run.model(x.expand(3, -1, -1))[2])
    batched = lens.HookedToyModel.from_run(run)
    assert torch.equal(batched(x)[2], out)
    with pytest.raises(ValueError, match="input must be"):
        one(torch.zeros(4, 7))
    exported = export_run(run, "transformer-lens", tmp_path / "tl")
    again = lens.HookedToyModel.from_pretrained(exported)
    assert torch.equal(again(x)[2], out)
