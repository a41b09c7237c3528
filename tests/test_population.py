"""The exact population loss (tmslab.population) against sampling, the §2.5 closed forms, and its minimiser."""

from __future__ import annotations

import pytest
import torch

from tmslab import theory as T
from tmslab.config import TrainConfig
from tmslab.population import minimise, population_loss
from tmslab.theory import Phase2x1 as P2
from tmslab.training import build, evaluate


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(n_features=3, n_hidden=2, density=[0.3, [0.5, 0.2, 0.8]], importance=[[1, 1, 2], [1, 0.5, 1]],
                    restarts=2, eval_samples=400_000),
        TrainConfig(n_features=4, n_hidden=2, density=[0.3, 0.6], distribution="correlated", set_size=2,
                    restarts=2, eval_samples=400_000),
    ],
    ids=["independent", "correlated"],
)
def test_population_loss_matches_sampled_loss(config):
    model, dist, imp = build(config)
    with torch.no_grad():
        model.b.copy_(torch.randn(model.b.shape, generator=torch.Generator().manual_seed(1)) * 0.2)
    sampled = evaluate(model, dist, imp, config.eval_samples).double()
    set_size = config.set_size if config.distribution == "correlated" else 1
    exact = population_loss(model.W.detach(), model.b.detach(), imp, dist.density, set_size=set_size)
    # 400k samples: the relative standard error of these losses is < 0.3%; 1% is > 3σ.
    torch.testing.assert_close(exact, sampled, rtol=0.01, atol=0)


def test_population_loss_of_the_closed_form_candidates():
    # §2.5: the antipodal pair W = [1, −1], b = 0 has loss (1 + r)s²/6; ignoring the extra feature
    # (W = [1, 0], b_2 = s/2) has r(s/3 − s²/4).
    s, r = 0.2, 3.0
    imp = torch.tensor([[1.0, r]], dtype=torch.float64)
    dens = torch.full((1, 2), s, dtype=torch.float64)
    anti = population_loss(torch.tensor([[[1.0, -1.0]]]), torch.zeros(1, 2), imp, dens)
    ignore = population_loss(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[0.0, s / 2]]), imp, dens)
    cand = T.losses_2x1(r, s)
    assert anti.item() == pytest.approx(cand[P2.SUPERPOSITION.code].item(), rel=1e-3)
    assert ignore.item() == pytest.approx(cand[P2.NOT_LEARNED.code].item(), rel=1e-3)


def test_set_size_must_divide_features():
    with pytest.raises(ValueError, match="set_size"):
        population_loss(torch.zeros(1, 2, 5), torch.zeros(1, 5), torch.ones(1, 5), torch.ones(1, 5), set_size=2)


def test_minimise_finds_the_dense_optimum():
    # Dense n = 2, m = 1, importance (1, 0.5): keep feature 0 at norm 1, predict feature 1 by its mean
    # (b_1 = E[x] = 1/2); population loss 0.5 · Var U[0, 1] = 1/24.
    W0 = torch.tensor([[[0.7, 0.2]]])
    imp = torch.tensor([[1.0, 0.5]])
    W, b, loss = minimise(W0, torch.zeros(1, 2), imp, torch.ones(1, 2), points=4096)
    # midpoint rule with 64 nodes per axis on the two-feature term: error ≈ 1/(12 · 64²) relative
    assert loss.item() == pytest.approx(1 / 24, rel=1e-3)
    assert abs(W[0, 0, 0].item()) == pytest.approx(1.0, abs=1e-3)
    assert abs(W[0, 0, 1].item()) < 1e-3
    assert b[0, 1].item() == pytest.approx(0.5, abs=1e-3)
    start = population_loss(W0, torch.zeros(1, 2), imp, torch.ones(1, 2), points=4096)
    assert loss.item() < start.item()


@pytest.mark.parametrize("density, tol", [(0.05, 2.5e-4), (0.3, 3e-3)])
def test_midpoint_rule_error_against_a_finer_rule(density, tol):
    """The value integral is a midpoint rule (module docstring): at the default 1024 nodes per active subset it is
    within `tol` (relative) of 65,536 nodes, and the error shrinks as nodes are added."""
    torch.manual_seed(0)
    W = torch.zeros(3, 2, 5, dtype=torch.float64)
    W[0] = T.regular_polygon(5)[0] * 1.13
    W[1] = torch.randn(2, 5, dtype=torch.float64) * 0.7
    W[2, :, :4] = T.regular_polygon(4)[0]
    b = torch.tensor([[-0.25] * 5, [0.1, -0.1, 0.0, 0.2, -0.3], [0, 0, 0, 0, 0.05]], dtype=torch.float64)
    imp = torch.tensor([[0.9**i for i in range(5)]] * 3, dtype=torch.float64)
    s = torch.full((3, 5), density, dtype=torch.float64)
    fine = population_loss(W, b, imp, s, points=1 << 16)
    err = {p: ((population_loss(W, b, imp, s, points=p) - fine).abs() / fine).max().item() for p in (256, 1024, 4096)}
    assert err[1024] <= tol
    assert err[4096] < err[1024] < err[256]
