"""tmslab.sae_batched: many standard / TopK SAEs at once, against SAELens's own trainer on the same data."""

from __future__ import annotations

import pytest
import torch

from tmslab.config import ConfigError
from tmslab.sae import SAESettings

sae_lens = pytest.importorskip("sae_lens")


@pytest.fixture(scope="module")
def source():
    """Hidden activations of a 40-10 toy model (density 0.05, the decomposition target; short training)."""
    from tmslab.config import TrainConfig
    from tmslab.sae import RunSource
    from tmslab.training import train

    torch.manual_seed(0)
    run = train(
        TrainConfig(
            n_features=40, n_hidden=10, density=[0.05], lr=5e-3, steps=1500, batch_size=256, eval_samples=2048, seed=1
        )
    )

    class _Run:  # RunSource reads a run's config, W and path; a TrainResult has the first two
        config, path, W = run.config, "test", run.params["W"]

    return RunSource(_Run(), 0)


def _objective(sae, x, settings):
    """SAELens's training loss (mse + l1 or TopK aux, no dead latents) of a TrainingSAE on a fixed batch."""
    from sae_lens.saes.sae import TrainStepInput

    coeffs = {"l1": settings.l1} if settings.arch == "standard" else {}
    with torch.no_grad():
        out = sae.training_forward_pass(TrainStepInput(x, coeffs, None, 0, False))
    return float(out.loss)


def _weights(sae):
    return {n: getattr(sae, n).detach() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}


def test_standard_fast_gradients_equal_autograd(source, monkeypatch):
    """Fast path ≡ reference: the hand-derived, chunked gradients of the standard SAE are autograd's."""
    from tmslab import sae_batched
    from tmslab.sae import training_sae

    s = SAESettings(arch="standard", ratio=3, samples=1024)
    init = training_sae(s, source.d_in, source.n_true)
    model = sae_batched.BatchedSAE("standard", [init] * 3, [0.0, 0.01, 0.3], [1] * 3)
    with torch.no_grad():  # away from the symmetric init: biases and distinct instances
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, _ = source.sample(500, torch.Generator().manual_seed(2))
    model.losses(x, None)[0].sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    ref_loss = model.losses(x, None)[0].detach()
    monkeypatch.setattr(sae_batched, "CHUNK_ELEMENTS", 3 * 120 * 37)  # several chunks, the last one short
    loss = sae_batched.standard_grads(model, x)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("arch, sparsity", [("standard", [0.01, 0.1]), ("topk", [1, 3])])
def test_batched_steps_match_saelens_steps(source, arch, sparsity):
    """Fast path ≡ reference: 40 steps of the batched trainer give SAELens's weights (float rounding only)."""
    from tmslab.sae import train_saelens
    from tmslab.sae_batched import train_batched

    key = "l1" if arch == "standard" else "k"
    settings = [
        SAESettings(arch=arch, ratio=2, samples=40 * 256, batch_size=256, lr=1e-3, **{key: v}) for v in sparsity
    ]
    batched = train_batched(source, settings)
    for s, b in zip(settings, batched, strict=True):
        ref = train_saelens(source, s)
        for name, w in _weights(ref).items():
            torch.testing.assert_close(_weights(b)[name], w, atol=2e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("arch, sparsity", [("standard", [0.003, 0.03]), ("topk", [2])])
def test_batched_training_matches_saelens_loss_and_mmcs_within_2_percent(source, arch, sparsity):
    """Issue 16: same loss and MMCS within 2% after a full run (1,200 steps: past SAELens's 1,000-step dead-latent
    window, so TopK's auxiliary loss is in play), on the same activation stream."""
    from tmslab.sae import evaluate, train_saelens
    from tmslab.sae_batched import train_batched

    key = "l1" if arch == "standard" else "k"
    settings = [
        SAESettings(arch=arch, ratio=4, samples=1200 * 128, batch_size=128, lr=3e-3, eval_samples=8192, **{key: v})
        for v in sparsity
    ]
    batched = train_batched(source, settings)
    x, _ = source.sample(8192, torch.Generator().manual_seed(99))
    for s, b in zip(settings, batched, strict=True):
        ref = train_saelens(source, s)
        mine, theirs = evaluate(b, source, 8192), evaluate(ref, source, 8192)
        assert mine["mmcs"] == pytest.approx(theirs["mmcs"], rel=0.02)
        assert _objective(b, x, s) == pytest.approx(_objective(ref, x, s), rel=0.02)


def test_train_many_saves_saelens_format_and_mixes_architectures(source, tmp_path):
    from tmslab.sae import evaluate, load
    from tmslab.sae_batched import train_many

    settings = [
        SAESettings(arch="standard", ratio=r, l1=0.01, samples=4096, batch_size=256, eval_samples=2048) for r in (1, 2)
    ] + [SAESettings(arch="batchtopk", ratio=1, k=2, samples=4096, batch_size=256, eval_samples=2048)]
    outs = [tmp_path / f"s{i}" for i in range(3)]
    results = train_many(source, settings, outs)
    assert [r.trainer for r in results] == ["tmslab-batched", "tmslab-batched", "saelens"]
    x, _ = source.sample(256, torch.Generator().manual_seed(5))
    for s, r, out in zip(settings, results, outs, strict=True):
        direct = sae_lens.SAE.load_from_disk(out)
        # SAELens saves a BatchTopK SAE for inference as a JumpReLU SAE (its learned threshold).
        saved_as = {"batchtopk": "jumprelu"}.get(s.arch, s.arch)
        assert direct.cfg.d_sae == s.d_sae(source.n_true) and direct.cfg.architecture() == saved_as
        # The result's SAE is the saved one (the BatchTopK too, as its JumpReLU) and its metrics are the saved one's.
        with torch.no_grad():
            torch.testing.assert_close(
                direct.decode(direct.encode(x)), r.sae.decode(r.sae.encode(x)), atol=1e-6, rtol=1e-5
            )
        assert r.sae.cfg.architecture() == saved_as
        assert load(out)[1]["trainer"] == r.trainer and load(out)[1]["metrics"] == r.metrics
        again = evaluate(direct, source, s.eval_samples)
        assert again["l0"] == r.metrics["l0"] and again["mmcs"] == pytest.approx(r.metrics["mmcs"], abs=1e-6)


def test_batched_refuses_other_architectures(source):
    from tmslab.sae_batched import train_batched

    with pytest.raises(ConfigError, match="batched trainer handles standard, topk; got 'jumprelu'"):
        train_batched(source, [SAESettings(arch="jumprelu", samples=1024)])
