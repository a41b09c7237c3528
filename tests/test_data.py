"""Distribution statistics, with tolerances of 5 standard errors of the sample size used."""

import math

import pytest
import torch

from tmslab.data import DISTRIBUTIONS, make_distribution

N = 200_000  # samples per instance


def _binomial_tol(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-12


@pytest.mark.parametrize("p", [1.0, 0.5, 0.05, 0.001])
def test_independent_density_and_values(p):
    dist = make_distribution("independent", torch.full((2, 4), p))
    x = dist.sample(N, torch.Generator().manual_seed(1))
    active = x != 0
    frac = active.float().mean((1,))  # per instance, per feature
    assert (frac - p).abs().max() <= _binomial_tol(p, N)
    vals = x[active]
    # U[0,1]: mean 1/2, variance 1/12; standard error of the mean sqrt(1/12/k).
    k = vals.numel()
    assert abs(vals.mean().item() - 0.5) <= 5 * math.sqrt(1 / 12 / k)
    assert abs(vals.var().item() - 1 / 12) <= 5 * math.sqrt(1 / 180 / k)  # Var of (u-1/2)^2 is 1/180
    assert vals.min() >= 0 and vals.max() < 1


def test_per_feature_density_and_signed_values():
    density = torch.tensor([[1.0, 0.3, 0.01]])
    dist = make_distribution("independent", density, signed=True)
    x = dist.sample(N, torch.Generator().manual_seed(2))
    frac = (x != 0).float().mean(1)[0]
    for f, p in enumerate(density[0].tolist()):
        assert abs(frac[f].item() - p) <= _binomial_tol(p, N)
    vals = x[x != 0]
    assert abs(vals.mean().item()) <= 5 * math.sqrt(1 / 3 / vals.numel())  # U[-1,1]: mean 0, var 1/3
    assert vals.min() >= -1 and vals.max() < 1


def test_correlated_sets_share_activity():
    p = 0.2
    dist = make_distribution("correlated", torch.full((1, 6), p), set_size=3)
    x = dist.sample(N, torch.Generator().manual_seed(3))[0]
    active = x != 0
    # Within a set all-or-nothing; across sets independent.
    assert torch.equal(active[:, 0], active[:, 1]) and torch.equal(active[:, 0], active[:, 2])
    assert abs(active[:, 0].float().mean().item() - p) <= _binomial_tol(p, N)
    both = (active[:, 0] & active[:, 3]).float().mean().item()
    assert abs(both - p * p) <= _binomial_tol(p * p, N)
    # Values within an active set are independent: correlation ≈ 0 (se ≈ 1/sqrt(k)).
    on = active[:, 0]
    c = torch.corrcoef(torch.stack([x[on, 0], x[on, 1]]))[0, 1].item()
    assert abs(c) <= 5 / math.sqrt(on.sum().item())


def test_anticorrelated_sets_have_at_most_one_active():
    p = 0.3
    dist = make_distribution("anticorrelated", torch.full((1, 4), p), set_size=2)
    x = dist.sample(N, torch.Generator().manual_seed(4))[0]
    active = (x != 0).view(N, 2, 2)
    per_set = active.sum(-1)
    assert per_set.max() == 1
    assert abs((per_set[:, 0] == 1).float().mean().item() - p) <= _binomial_tol(p, N)
    # Each feature of a set is the chosen one half the time.
    assert abs(active[:, 0, 0].float().mean().item() - p / 2) <= _binomial_tol(p / 2, N)


def test_one_hot_has_exactly_one_active_uniformly():
    dist = make_distribution("one-hot", torch.full((1, 5), 0.5))
    x = dist.sample(N, torch.Generator().manual_seed(5))[0]
    assert torch.equal((x != 0).sum(-1), torch.ones(N, dtype=torch.long))
    frac = (x != 0).float().mean(0)
    assert (frac - 0.2).abs().max() <= _binomial_tol(0.2, N)


def test_registry_is_extensible():
    from tmslab.data import FeatureDistribution

    class Dense(FeatureDistribution):
        name = "dense-test"

        def sample(self, batch_size, generator=None):
            return self.values((self.n_instances, batch_size, self.n_features), generator)

    DISTRIBUTIONS[Dense.name] = Dense
    try:
        x = make_distribution("dense-test", torch.ones(1, 3)).sample(10)
        assert x.shape == (1, 10, 3) and (x != 0).all()
    finally:
        del DISTRIBUTIONS[Dense.name]
