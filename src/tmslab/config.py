"""Training configuration: one dataclass, validated on construction, round-tripping to JSON.

A `TrainConfig` describes a batch of independent toy models ("instances") trained in one step:
one *configuration* per entry of `density` (each with its importance vector), and `restarts`
seeds per configuration. Instance order is configurations in the order given, restarts innermost
(instance index = configuration * restarts + restart) — the on-disk contract of docs/format.md.

Defaults are the companion notebook's recipe (paper-spec §1.4): AdamW, lr 1e-3, PyTorch's default
weight decay 0.01, 1024 fresh samples per step, 10,000 steps, constant learning rate.
"""

from __future__ import annotations

import math
import platform
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

ModelKind = Literal["relu-output", "linear", "hidden-relu", "abs"]
Distribution = Literal["independent", "correlated", "anticorrelated", "one-hot"]
Schedule = Literal["constant", "linear", "cosine"]
Init = Literal["xavier", "xavier-notebook"]
Engine = Literal["auto", "fast", "reference"]

#: Evaluation uses its own fixed seed so that every run is scored on the same samples.
EVAL_SEED = 2022


class ConfigError(ValueError):
    """An invalid configuration value; the message is one sentence naming the value and what is allowed."""


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}.")
    return float(value)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value}.")
    return value


def _choice(name: str, value: Any, literal: Any) -> None:
    allowed = get_args(literal)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")


def _density(value: Any, n_features: int) -> float | list[float]:
    def one(v: Any) -> float:
        v = _finite("density", v)
        if not 0.0 < v <= 1.0:
            raise ConfigError(f"density must be in (0, 1], got {v}.")
        return v

    if isinstance(value, (list, tuple)):
        if len(value) != n_features:
            raise ConfigError(
                f"a per-feature density needs {n_features} values (one per feature), got {len(value)}."
            )
        return [one(v) for v in value]
    return one(value)


@dataclass
class TrainConfig:
    """Everything needed to train a batch of toy models reproducibly."""

    model: ModelKind = "relu-output"
    """relu-output: x' = ReLU(WᵀWx + b); linear: x' = WᵀWx + b; hidden-relu: h = ReLU(Wx),
    x' = ReLU(Wᵀh + b); abs: untied h = ReLU(W1 x), y' = ReLU(W2 h + b) with target |x| (paper §2.10)."""

    n_features: int = 5
    """Number of input features n."""

    n_hidden: int = 2
    """Number of hidden dimensions m."""

    density: list[Any] = field(default_factory=lambda: [1.0])
    """Feature density 1−S, one configuration per entry; an entry is a float (all features) or a
    per-feature list of n_features floats. Each in (0, 1]. Ignored by the one-hot distribution."""

    importance: list[Any] | None = None
    """Per-feature importance: a list of n_features floats shared by every configuration, or one such
    list per configuration. None means importance_decay**i."""

    importance_decay: float = 1.0
    """Geometric importance I_i = importance_decay**i (i = 0..n−1), used when importance is None."""

    distribution: Distribution = "independent"
    """independent: each feature active with its density; correlated / anticorrelated: features in
    consecutive sets of set_size, per paper-spec §2.6.4(ii); one-hot: exactly one feature active."""

    set_size: int = 2
    """Features per correlated/anticorrelated set (n_features must be a multiple of it)."""

    restarts: int = 1
    """Seeds per configuration; the one with the lowest evaluation loss is marked best."""

    steps: int = 10_000
    """Optimiser steps."""

    batch_size: int = 1024
    """Fresh samples per step per instance."""

    lr: float = 1e-3
    """Peak AdamW learning rate."""

    weight_decay: float = 0.01
    """AdamW (decoupled) weight decay; 0.01 is PyTorch's default, which the notebook uses."""

    schedule: Schedule = "constant"
    """Learning-rate multiplier after warm-up: constant 1; linear 1 − t/T; cosine cos(π/2 · t/(T−1))
    (the notebook's helpers)."""

    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many steps (0 = none)."""

    init: Init = "xavier"
    """xavier: Xavier-normal per instance on the [hidden, features] matrix, std = sqrt(2/(n+m)),
    so an instance's init does not depend on how many instances share the batch. xavier-notebook:
    the notebook's xavier_normal_ on the whole 3-D tensor, std = sqrt(2/((n + instances)·m))."""

    hidden_l1: float = 0.0
    """λ of the λ‖h‖₁ penalty on hidden activations (paper §2.11); 0 disables it."""

    eval_samples: int = 100_000
    """Fresh samples (fixed seed) for the evaluation loss that picks the best restart."""

    seed: int = 0
    """Seed of initialisation and training data; instance k uses seed + k for its init."""

    engine: Engine = "auto"
    """auto: the fast engine where it supports the configuration, else the reference loop."""

    record_every: int = 0
    """Record the training loss and a weight snapshot every this many steps (0 = off)."""

    dataset_size: int | list[int] = 0
    """Finite training set (Henighan et al. 2023, paper-spec §6.1): T samples per instance, drawn once from
    seed + instance and trained on full-batch every step (batch_size is then unused); eval_loss becomes the
    test loss on fresh samples. An int for every configuration or a list with one T per density entry;
    0 = fresh samples every step (infinite data)."""

    dataset_unit_norm: bool = False
    """Rescale every sample of a finite dataset, and of its test set, to unit norm ‖x‖ = 1 (§6.1)."""

    def __post_init__(self) -> None:
        _choice("model", self.model, ModelKind)
        _choice("distribution", self.distribution, Distribution)
        _choice("schedule", self.schedule, Schedule)
        _choice("init", self.init, Init)
        _choice("engine", self.engine, Engine)
        _positive_int("n_features", self.n_features)
        _positive_int("n_hidden", self.n_hidden)
        _positive_int("restarts", self.restarts)
        _positive_int("steps", self.steps)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_samples", self.eval_samples)
        _positive_int("set_size", self.set_size)
        _positive_int("warmup_steps", self.warmup_steps, minimum=0)
        _positive_int("record_every", self.record_every, minimum=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if self.lr <= 0 or _finite("lr", self.lr) <= 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}.")
        if _finite("weight_decay", self.weight_decay) < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}.")
        if _finite("hidden_l1", self.hidden_l1) < 0:
            raise ConfigError(f"hidden_l1 must be >= 0, got {self.hidden_l1}.")
        decay = _finite("importance_decay", self.importance_decay)
        if decay <= 0:
            raise ConfigError(f"importance_decay must be > 0, got {decay}.")
        if not isinstance(self.density, (list, tuple)) or len(self.density) == 0:
            raise ConfigError(f"density must be a non-empty list of configurations, got {self.density!r}.")
        self.density = [_density(d, self.n_features) for d in self.density]
        if self.importance is not None:
            self.importance = self._validate_importance(self.importance)
        if self.distribution in ("correlated", "anticorrelated") and self.n_features % self.set_size:
            raise ConfigError(
                f"n_features ({self.n_features}) must be a multiple of set_size ({self.set_size}) "
                f"for {self.distribution} sets."
            )
        self._validate_dataset()

    def _validate_dataset(self) -> None:
        if isinstance(self.dataset_size, (list, tuple)):
            if len(self.dataset_size) != self.n_configs:
                raise ConfigError(
                    f"dataset_size needs one T per density entry ({self.n_configs}), got {len(self.dataset_size)}."
                )
            self.dataset_size = [_positive_int("dataset_size", t) for t in self.dataset_size]
        else:
            _positive_int("dataset_size", self.dataset_size, minimum=0)
        if not isinstance(self.dataset_unit_norm, bool):
            raise ConfigError(f"dataset_unit_norm must be true or false, got {self.dataset_unit_norm!r}.")
        if self.finite:
            uniform = all(v == 1 for c in range(self.n_configs) for v in self.config_importance(c))
            if self.model != "relu-output" or self.distribution != "independent" or self.hidden_l1 or not uniform:
                raise ConfigError(
                    "finite datasets (dataset_size > 0) train the relu-output model on independent features of "
                    f"importance 1 without hidden_l1 (§6.1); got model {self.model!r}, distribution "
                    f"{self.distribution!r}, hidden_l1 {self.hidden_l1}, uniform importance {uniform}."
                )
            if self.engine == "fast":
                raise ConfigError("engine 'fast' cannot train finite datasets; use engine auto.")

    def _validate_importance(self, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise ConfigError(f"importance must be a list of {self.n_features} numbers, got {value!r}.")
        per_config = isinstance(value[0], (list, tuple))
        rows = list(value) if per_config else [value]
        if per_config and len(rows) != len(self.density):
            raise ConfigError(
                f"per-configuration importance needs {len(self.density)} lists (one per density), got {len(rows)}."
            )
        out = []
        for row in rows:
            if not isinstance(row, (list, tuple)) or len(row) != self.n_features:
                raise ConfigError(f"importance needs {self.n_features} values (one per feature), got {row!r}.")
            vals = [_finite("importance", v) for v in row]
            if any(v < 0 for v in vals):
                raise ConfigError(f"importance values must be >= 0, got {vals}.")
            out.append(vals)
        return out if per_config else out[0]

    # ---- derived quantities -------------------------------------------------------------------

    @property
    def n_configs(self) -> int:
        return len(self.density)

    @property
    def n_instances(self) -> int:
        return self.n_configs * self.restarts

    def config_importance(self, config: int) -> list[float]:
        """Importance vector of configuration `config`."""
        if self.importance is None:
            return [self.importance_decay**i for i in range(self.n_features)]
        if isinstance(self.importance[0], list):
            return list(self.importance[config])
        return list(self.importance)

    def config_density(self, config: int) -> list[float]:
        """Per-feature density of configuration `config`."""
        d = self.density[config]
        return list(d) if isinstance(d, list) else [d] * self.n_features

    @property
    def finite(self) -> bool:
        """Whether instances train on finite datasets (dataset_size > 0)."""
        return self.dataset_size != 0

    def config_dataset_size(self, config: int) -> int:
        """T of configuration `config` (0: infinite data)."""
        return self.dataset_size[config] if isinstance(self.dataset_size, list) else self.dataset_size

    def instance_seed(self, instance: int) -> int:
        return self.seed + instance

    # ---- JSON round trip ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            import difflib

            hint = difflib.get_close_matches(unknown[0], names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"unknown configuration key {unknown[0]!r}{extra}.")
        return cls(**data)


def versions() -> dict[str, str]:
    """Versions recorded with every result."""
    import numpy
    import safetensors
    import torch

    from tmslab import __version__

    return {
        "tmslab": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
