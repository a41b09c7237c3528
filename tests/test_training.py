"""The training entry point: layout, evaluation, restarts, recording."""

import pytest
import torch

import tmslab.training as training
from tmslab.config import TrainConfig
from tmslab.models import MODEL_KINDS, ToyModel, per_instance_loss
from tmslab.training import best_restarts, build, evaluate, train


def test_forward_matches_formulas(make_config):
    torch.manual_seed(0)
    x = torch.rand(3, 7, 5)
    for kind in ["relu-output", "linear", "hidden-relu", "abs"]:
        m = ToyModel(kind, 3, 5, 2)
        m.reset_parameters([1, 2, 3])
        with torch.no_grad():
            m.b.normal_()
        for k in range(3):
            xk = x[k].T  # [features, batch]
            if kind == "abs":
                h = torch.relu(m.W1[k] @ xk)
                ref = torch.relu(m.W2[k] @ h + m.b[k][:, None])
            else:
                W = m.W[k]
                h = W @ xk
                if kind == "hidden-relu":
                    h = torch.relu(h)
                ref = W.T @ h + m.b[k][:, None]
                if kind != "linear":
                    ref = torch.relu(ref)
            torch.testing.assert_close(m(x)[k], ref.T)


def test_init_is_per_instance_and_has_xavier_scale():
    a = ToyModel("relu-output", 3, 400, 30)
    a.reset_parameters([5, 6, 7])
    b = ToyModel("relu-output", 1, 400, 30)
    b.reset_parameters([6])
    torch.testing.assert_close(a.W[1], b.W[0])  # independent of the other instances
    std = a.W.std().item()
    expected = (2 / (400 + 30)) ** 0.5
    assert abs(std - expected) < 5 * expected / (2 * a.W.numel()) ** 0.5


def test_paired_evaluation_of_restarts(make_config):
    """Identical restarts score identically: restarts share evaluation samples."""
    config = make_config(restarts=3)
    model, dist, importance = build(config)
    with torch.no_grad():
        model.W[:] = model.W[0]
    loss = evaluate(model, dist, importance, 4096, restarts=3)
    torch.testing.assert_close(loss[0:3], loss[0].expand(3))
    assert loss[0] != loss[3]  # another configuration, another density


def test_eval_loss_is_the_papers_L():
    """Zero weights and zero bias: L = Σ_i I_i E[x_i²] = Σ_i I_i · p/3."""
    config = TrainConfig(n_features=4, n_hidden=2, density=[0.3], importance=[1.0, 2.0, 3.0, 4.0])
    model, dist, importance = build(config)
    with torch.no_grad():
        model.W.zero_()
    n = 200_000
    loss = evaluate(model, dist, importance, n).item()
    expected = 10 * 0.3 / 3
    # per-sample loss Σ I_i x_i², std ≤ sqrt(Σ I_i² E[x⁴]) = sqrt(30·0.3/5)
    assert abs(loss - expected) < 5 * (30 * 0.3 / 5) ** 0.5 / n**0.5


@pytest.mark.parametrize(
    "overrides",
    [
        dict(density=[1.0, 0.3], restarts=3),  # restarts share samples
        dict(model="abs", density=[0.2]),  # signed values, target |x|
        dict(model="linear", value_max=2.0, importance=[1.0, 0.5, 0.25, 0.125, 1 / 16, 1 / 32, 1 / 64]),
        dict(model="hidden-relu"),
        dict(model="relu-output-id", density=[0.05, 0.5]),
    ],
)
def test_compiled_evaluation_gives_pytorchs_numbers_bit_for_bit(make_config, monkeypatch, overrides):
    """The compiled evaluation (torch.rand's stream re-implemented, the loss fused) scores exactly the samples, and
    gives exactly the losses, of the PyTorch code it replaces: every recorded eval loss stays the same number.
    Chunks of 37 samples resume the stream inside its 624-word blocks."""
    config = make_config(n_features=7, n_hidden=3, **overrides)
    model, dist, importance = build(config)
    dist.density[-config.restarts :, 2] = 0.0  # an always-off feature (paper-spec §6.6)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    assert training._compiles(model, dist, importance)  # else this test would compare PyTorch with itself
    args = (model, dist, importance, 1000)
    compiled = [evaluate(*args, restarts=config.restarts, chunk=c) for c in (37, 8192)]
    monkeypatch.setattr(training, "_compiles", lambda *a: False)
    for c, got in zip((37, 8192), compiled, strict=True):
        assert torch.equal(got, evaluate(*args, restarts=config.restarts, chunk=c))


@pytest.mark.parametrize("signed,value_max,restarts", [(False, 1.0, 1), (True, 1.0, 3), (False, 2.0, 2)])
def test_compiled_sampler_draws_pytorchs_samples_bit_for_bit(signed, value_max, restarts):
    """`_evaluation.independent` is data.Independent.sample(...).repeat_interleave(restarts) from the same seed,
    every float equal, across batches that end inside the stream's 624-word blocks."""
    from tmslab.data import make_distribution
    from tmslab.training import _evaluation

    density = torch.tensor([[1.0, 0.5, 0.0, 0.01], [0.3, 0.3, 0.9, 1.0]])
    dist = make_distribution("independent", density, signed=signed, value_max=value_max)
    g, mt = torch.Generator().manual_seed(7), _evaluation.seeded(7)
    for batch in (1, 155, 700, 3):
        want = dist.sample(batch, g).repeat_interleave(restarts, dim=0)
        got = torch.empty(2 * restarts, batch, 4)
        _evaluation.independent(mt, density.numpy(), signed, value_max, restarts, got.numpy())
        assert torch.equal(got, want)


@pytest.mark.parametrize("kind", ["relu-output", "linear", "abs"])
def test_compiled_loss_is_pytorchs_elementwise(kind):
    """`_evaluation.weighted_error` is importance · (target − model(x))², every element equal."""
    from tmslab.training import _evaluation

    model = ToyModel(kind, 3, 6, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    x, importance = torch.randn(3, 50, 6), torch.rand(3, 6)
    want = importance[:, None, :] * (model.target(x) - model(x)) ** 2
    got = model.readout(x).detach()
    b = model.b.detach().numpy()
    _evaluation.weighted_error(got.numpy(), b, x.numpy(), importance.numpy(), kind != "linear", kind == "abs")
    assert torch.equal(got, want.detach())


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_readout_is_the_decoders_einsum_bit_for_bit_with_or_without_a_buffer(kind):
    """`readout` calls bmm, the very op einsum("ibh,ihf->ibf") dispatches to (the eval losses recorded before it
    did are kept), and `evaluate`'s reused output buffer changes no bit."""
    model = ToyModel(kind, 3, 64, 16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
        x = torch.rand(3, 500, 64)
        h = model.hidden(x)
        if kind == "relu-output-id":
            h = torch.einsum("ibh,igh->ibg", h, model.identity)
        want = torch.einsum("ibh,ifh->ibf", h, model.W2) if kind == "abs" else torch.einsum("ibh,ihf->ibf", h, model.W)
        buffer = torch.full((3, 500, 64), float("nan"))
        assert torch.equal(model.readout(x), want)
        assert model.readout(x, out=buffer).data_ptr() == buffer.data_ptr()
        assert torch.equal(buffer, want)


def test_compiled_evaluation_takes_pytorchs_path_where_it_cannot_match(make_config):
    """Other distributions, a float64 importance or a broadcast one: PyTorch draws and scores the samples."""
    model, dist, importance = build(make_config(distribution="correlated", set_size=1))
    assert not training._compiles(model, dist, importance)
    model, dist, importance = build(make_config())
    assert not training._compiles(model, dist, importance.double())
    assert not training._compiles(model, dist, importance[:1])


def test_best_restarts():
    mask = best_restarts(torch.tensor([3.0, 1.0, 2.0, 5.0, 4.0, 6.0]), 3)
    assert mask.tolist() == [False, True, False, False, True, False]


def test_per_instance_loss():
    out = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 2.0], [0.0, 1.0]]])
    assert per_instance_loss(out, target, torch.tensor([[1.0, 0.5]])).item() == (1 + 2 + 0.5) / 2


def test_record_every_saves_history(make_config):
    config = make_config(record_every=10, steps=30)
    result = train(config)
    h = result.history
    assert h["step"].tolist() == [0, 10, 20]
    assert h["loss"].shape == (3, config.n_instances)
    assert h["W"].shape == (3, config.n_instances, 2, 5)
    # The record at step s holds the weights after update s (s + 1 updates): a run stopped there ends on them.
    for k, step in enumerate(h["step"].tolist()):
        stopped = train(make_config(steps=step + 1))
        torch.testing.assert_close(h["W"][k], stopped.params["W"], rtol=0, atol=0)
    assert not torch.equal(h["W"][0], h["W"][-1])


def test_reference_engine_trains_down(make_config):
    config = make_config(engine="reference", steps=300, density=[1.0], restarts=1, batch_size=256)
    before = make_config(engine="reference", steps=1, density=[1.0], restarts=1, batch_size=256)
    assert train(config).eval_loss[0] < train(before).eval_loss[0]
