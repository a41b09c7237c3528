"""Feature distributions (paper-spec §1.1 and §2.6.4(ii)).

Every distribution samples a batch of shape [instances, batch, features] and knows each instance's
per-feature density. Adding a distribution means writing one small subclass of
`FeatureDistribution` and registering it in `DISTRIBUTIONS`; the trainers only call `sample`.

These samplers are the *reference* semantics (the notebook's two draws: one for the mask, one for
the value). The fast engine draws the same distribution differently and is tested against these
statistics, not against these exact numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from jaxtyping import Float
from torch import Tensor


class FeatureDistribution(ABC):
    """Sparse non-negative (or, with `signed`, symmetric) features with per-instance densities."""

    name: str = ""

    def __init__(
        self,
        density: Float[Tensor, "instances features"],
        *,
        signed: bool = False,
        set_size: int = 1,
        value_max: float = 1.0,
    ) -> None:
        self.density = density
        self.signed = signed
        self.set_size = set_size
        self.value_max = value_max

    @property
    def n_instances(self) -> int:
        return self.density.shape[0]

    @property
    def n_features(self) -> int:
        return self.density.shape[1]

    def values(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Magnitudes of active features: U[0,1), or U[−1,1) for the absolute-value task (§5), times value_max
        (§6.5 draws U(0, 2))."""
        u = torch.rand(shape, generator=generator, device=self.density.device)
        u = 2 * u - 1 if self.signed else u
        return u if self.value_max == 1.0 else u * self.value_max

    @abstractmethod
    def sample(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Float[Tensor, "instances batch features"]:
        """A fresh batch."""


class Independent(FeatureDistribution):
    """x_i = 0 with probability S_i, else U[0,1] — independently per feature (paper §1.1)."""

    name = "independent"

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        shape = (self.n_instances, batch_size, self.n_features)
        values = self.values(shape, generator)
        # The notebook keeps a feature where rand <= feature_probability; torch.rand can return exactly 0, so a
        # density-0 (always-off, paper-spec §6.6) feature is masked explicitly.
        density = self.density[:, None, :]
        active = (torch.rand(shape, generator=generator, device=self.density.device) <= density) & (density > 0)
        return torch.where(active, values, torch.zeros((), device=values.device))


class Correlated(FeatureDistribution):
    """Consecutive sets of `set_size` features: one shared draw makes the whole set active (with the
    density of the set's first feature) or zero; active values are independent (§2.6.4(ii))."""

    name = "correlated"

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        n_sets = self.n_features // self.set_size
        shape = (self.n_instances, batch_size, self.n_features)
        values = self.values(shape, generator)
        set_density = self.density[:, :: self.set_size]  # [instances, sets]
        u = torch.rand((self.n_instances, batch_size, n_sets), generator=generator, device=values.device)
        active = (u <= set_density[:, None, :]).repeat_interleave(self.set_size, dim=-1)
        return torch.where(active, values, torch.zeros((), device=values.device))


class Anticorrelated(FeatureDistribution):
    """Consecutive sets of `set_size` features: the whole set is zero with probability S, else exactly
    one uniformly chosen feature of the set is active (§2.6.4(ii))."""

    name = "anticorrelated"

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        n_sets = self.n_features // self.set_size
        shape = (self.n_instances, batch_size, self.n_features)
        values = self.values(shape, generator)
        set_density = self.density[:, :: self.set_size]
        dev = values.device
        u = torch.rand((self.n_instances, batch_size, n_sets), generator=generator, device=dev)
        on = u <= set_density[:, None, :]
        which = torch.randint(self.set_size, (self.n_instances, batch_size, n_sets), generator=generator, device=dev)
        chosen = torch.nn.functional.one_hot(which, self.set_size).bool() & on[..., None]
        return torch.where(chosen.flatten(-2), values, torch.zeros((), device=dev))


class OneHot(FeatureDistribution):
    """Exactly one feature active, chosen uniformly, magnitude U[0,1] — the S → 1 limit studied by
    Chen et al. (paper-spec §6.4). Densities are ignored (each feature has density 1/n)."""

    name = "one-hot"

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        shape = (self.n_instances, batch_size, self.n_features)
        values = self.values(shape[:-1] + (1,), generator)
        which = torch.randint(self.n_features, shape[:-1], generator=generator, device=self.density.device)
        return torch.nn.functional.one_hot(which, self.n_features).to(values.dtype) * values


DISTRIBUTIONS: dict[str, type[FeatureDistribution]] = {
    cls.name: cls for cls in (Independent, Correlated, Anticorrelated, OneHot)
}


def make_distribution(
    name: str, density: Tensor, *, signed: bool = False, set_size: int = 1, value_max: float = 1.0
) -> FeatureDistribution:
    """The registered distribution `name` with per-instance, per-feature `density`."""
    return DISTRIBUTIONS[name](density, signed=signed, set_size=set_size, value_max=value_max)
