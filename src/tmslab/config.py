"""Training configuration: one dataclass, validated on construction, round-tripping to JSON.

A `TrainConfig` describes a batch of independent toy models ("instances") trained in one step:
one *configuration* per entry of `density` (each with its importance vector), and `restarts`
seeds per configuration. Instance order is configurations in the order given, restarts innermost
(instance index = configuration * restarts + restart) — the on-disk contract of docs/format.md.

Defaults are the companion notebook's recipe (paper-spec §1.4): AdamW, lr 1e-3, PyTorch's default
weight decay 0.01, 1024 fresh samples per step, 10,000 steps, constant learning rate.
"""

from __future__ import annotations

import functools
import math
import platform
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from tmslab.naming import canonical_keys, spelled

ModelKind = Literal["relu-output", "linear", "hidden-relu", "abs", "relu-output-id", "resid-mlp", "mlp"]
Distribution = Literal["independent", "correlated", "anticorrelated", "one-hot"]
Schedule = Literal["constant", "linear", "cosine", "cosine-floor"]
Init = Literal["xavier", "xavier-notebook", "paper"]
Engine = Literal["auto", "fast", "reference"]
Device = Literal["cpu", "cuda"]
Activation = Literal["relu", "gelu"]
Mixing = Literal["none", "embedding", "gaussian"]

#: The computation-in-superposition kinds (paper-spec §6.7): residual MLP and the critique's MLP-only model.
CIS_KINDS = ("resid-mlp", "mlp")

#: Their own options, left out of `to_dict` while at these defaults, so that every configuration written before
#: they existed (and every hash of one: zoo keys, sweep jobs) stays the same.
CIS_DEFAULTS: dict[str, Any] = {"d_embed": 1000, "n_layers": 1, "act": "relu", "mixing": "none", "mixing_scale": 1.0}

#: The models the sparse path trains (the tied ones, tmslab.training.fast): `sparse=None` turns it on for them.
SPARSE_KINDS = ("relu-output", "linear", "hidden-relu")

#: Evaluation uses its own fixed seed so that every run is scored on the same samples.
EVAL_SEED = 2022


class ConfigError(ValueError):
    """An invalid configuration value; the message is one sentence naming the value and what is allowed."""


def _plain(value: Any) -> Any:
    """numpy arrays and scalars, torch tensors → Python lists and numbers (configs hold JSON values)."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) and not isinstance(value, (list, tuple, str)) else value


def _finite(name: str, value: Any) -> float:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{spelled(name)} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ConfigError(f"{spelled(name)} must be finite, got {value!r}.")
    return float(value)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{spelled(name)} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{spelled(name)} must be an integer >= {minimum}, got {value}.")
    return value


def _choice(name: str, value: Any, literal: Any) -> None:
    allowed = get_args(literal)
    if value not in allowed:
        raise ConfigError(f"{spelled(name)} must be one of {', '.join(allowed)}; got {value!r}.")


#: Named feature-probability laws (paper-spec §6.5): "power:ALPHA", "exponential:SCALE", "linear".
DENSITY_LAWS = ("power", "exponential", "linear")


def _parse_law(text: str) -> tuple[str, float | None]:
    """'power:0.5' → ('power', 0.5); 'linear' → ('linear', None); a one-sentence ConfigError otherwise."""
    name, _, arg = text.partition(":")
    usage = "a density law is power:ALPHA (ALPHA > 0), exponential:SCALE (SCALE > 0) or linear"
    if name not in DENSITY_LAWS or (name == "linear") != (arg == ""):
        raise ConfigError(f"{usage}; got {text!r}.")
    if name == "linear":
        return name, None
    try:
        value = float(arg)
    except ValueError:
        raise ConfigError(f"{usage}; got {text!r}.") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{usage}; got {text!r}.")
    return name, value


def density_law(text: str, n_features: int, expected_active: float = 1.0) -> list[float]:
    """Per-feature probabilities of a named law (paper-spec §6.5, the authors' exp-10/exp-17), normalised so
    that Σ_i p_i = expected_active: power:α p_i ∝ i^−(1+α) (i = 1…n); exponential:s p_i ∝ exp(−i/s)
    (i = 0…n−1); linear p_i ∝ n − i (i = 0…n−1)."""
    name, arg = _parse_law(text)
    if name == "power":
        raw = [(i + 1) ** -(1.0 + arg) for i in range(n_features)]
    elif name == "exponential":
        raw = [math.exp(-i / arg) for i in range(n_features)]
    else:
        raw = [float(n_features - i) for i in range(n_features)]
    total = math.fsum(raw)
    p = [expected_active * r / total for r in raw]
    if p[0] > 1.0:
        raise ConfigError(
            f"density law {text!r} with {spelled('expected_active')} {expected_active:g} gives feature 0 probability "
            f"{p[0]:.3g} > 1; lower expected_active."
        )
    return p


def _density(value: Any, n_features: int, allow_zero: bool = False) -> float | list[float] | str:
    name = "eval_density" if allow_zero else "density"
    if isinstance(value, str):
        _parse_law(value)
        return value

    def one(v: Any) -> float:
        v = _finite(name, v)
        if not (0.0 <= v <= 1.0 if allow_zero else 0.0 < v <= 1.0):
            raise ConfigError(f"{spelled(name)} must be in {'[0' if allow_zero else '(0'}, 1], got {v}.")
        return v

    value = _plain(value)
    if isinstance(value, (list, tuple)):
        if len(value) != n_features:
            raise ConfigError(
                f"a per-feature {spelled(name)} needs {n_features} values (one per feature), got {len(value)}."
            )
        return [one(v) for v in value]
    return one(value)


def _check_keys(keys: Any, names: set[str]) -> None:
    """Refuse an unknown option name, suggesting the closest valid one."""
    unknown = sorted(set(keys) - names)
    if unknown:
        import difflib

        hint = difflib.get_close_matches(unknown[0], names, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"unknown configuration key {unknown[0]!r}{extra}.")


def _accept_aliases(cls: type) -> type:
    """Let the constructor take the shared vocabulary (tmslab.naming): `features=5` is `n_features=5`."""
    init = cls.__init__
    names = {f.name for f in fields(cls)}

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs = canonical_keys(kwargs)
        _check_keys(kwargs, names)
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@_accept_aliases
@dataclass
class TrainConfig:
    """Everything needed to train a batch of toy models reproducibly.

    Accepts the aliases `features` / `hidden` for `n_features` / `n_hidden`; `density` and `importance`
    may be numbers, lists or numpy arrays. `train` re-validates, so a config edited after creation is
    checked again (`validate()`).
    """

    model: ModelKind = "relu-output"
    """relu-output: x' = ReLU(WᵀWx + b); linear: x' = WᵀWx + b; hidden-relu: h = ReLU(Wx),
    x' = ReLU(Wᵀh + b); abs: untied h = ReLU(W1 x), y' = ReLU(W2 h + b) with target |x| (paper §2.10);
    relu-output-id: x' = ReLU(Wᵀ·Id·Wx + b) with a frozen m × m identity layer, the "-id" targets of
    param-decomp (paper-spec §6.6); trained by the reference loop. resid-mlp: Braun et al.'s residual MLP
    (paper-spec §6.7): r = x W_E, r ← r + W_out act(W_in r) per layer, out = r W_Eᵀ, with a frozen random
    embedding of unit rows, labels x + act(x); mlp: the critique's act(x W_in) W_out with labels
    act(x) + mixing_scale·x M. Both: values U(−value_max, value_max), no biases, nn.Linear's default init
    (whatever `init` says), squared error over outputs, the reference loop (tmslab.cis)."""

    n_features: int = 5
    """Number of input features n."""

    n_hidden: int = 2
    """Number of hidden dimensions m."""

    density: list[Any] = field(default_factory=lambda: [1.0])
    """Feature density 1−S, one configuration per entry; an entry is a float (all features) or a
    per-feature list of n_features floats, each in (0, 1], or a named law ("power:0.5", "exponential:1000",
    "linear"; see `density_law` and expected_active). A single number is one configuration; a numpy array is
    read as the list (1-D: configurations, 2-D: configurations × features). Ignored by the one-hot distribution."""

    importance: list[Any] | None = None
    """Per-feature importance: a list (or 1-D array) of n_features floats shared by every configuration,
    or one such list per configuration (a 2-D array). None means importance_decay**i."""

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
    """Signed weight decay γ (paper-spec §6.5). γ ≥ 0: AdamW's decoupled decay p ← p(1 − lr·γ), on W and b
    unless decay_bias is off (0.01 is PyTorch's default, which the notebook uses). γ < 0: weight growth
    W_i ← W_i + lr·γ·W_i·(1 − 1/‖W_i‖) per feature column, on W only, before the Adam step."""

    schedule: Schedule = "constant"
    """Learning-rate multiplier after warm-up: constant 1; linear 1 − t/T; cosine cos(π/2 · t/(T−1))
    (the notebook's helpers); cosine-floor f + (1 − f)·(1 + cos(π·t/T))/2 with f = lr_floor (§6.5)."""

    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many steps (0 = none)."""

    init: Init = "xavier"
    """xavier: Xavier-normal per instance on the [hidden, features] matrix, std = sqrt(2/(n+m)),
    so an instance's init does not depend on how many instances share the batch. xavier-notebook:
    the notebook's xavier_normal_ on the whole 3-D tensor, std = sqrt(2/((n + instances)·m)).
    paper: §6.5's W ~ N(0, 1)/√m, b ~ N(0, 1), per instance."""

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

    off_features: list[int] = field(default_factory=list)
    """Indices of features that are never active during training (density 0; independent distribution only):
    distribution-shift targets (paper-spec §6.6, param-decomp issue #4). They stay off in eval_loss."""

    eval_density: list[Any] | None = None
    """Density at evaluation, one entry per configuration (a float or a per-feature list, each in [0, 1]);
    the run then records each instance's loss under it as shifted_eval_loss beside eval_loss (which stays
    on the training distribution and picks the best restart). None: no shifted evaluation."""

    value_max: float = 1.0
    """Active features take values U(0, value_max): 1 is the paper's U[0, 1]; §6.5 uses 2."""

    expected_active: float = 1.0
    """Expected number of active features per sample of a density law: its probabilities sum to this."""

    lr_b: float | None = None
    """Peak learning rate of the bias b, on the same schedule (None: lr). §6.5's headline uses 2/m."""

    lr_floor: float = 0.05
    """The cosine-floor schedule ends at lr_floor × the peak learning rate (§6.5: 0.05)."""

    decay_bias: bool = True
    """Apply a weight_decay γ ≥ 0 to b as well as W, as PyTorch's AdamW on all parameters (the notebook).
    False: W only, as §6.5's scaling recipe. Weight growth (γ < 0) always acts on W only."""

    sparse: bool | None = None
    """Fast engine: draw each batch in time ∝ its active features, skip inactive features in the encoder and
    evaluate in the compiled engine on its own fixed-seed stream; worthwhile when few features are active per
    sample (mean density ≲ 0.05). None (the default) is resolved when the configuration is built: True where a
    density entry is a named law ("power:0.5", …; §6.5's large sparse models) and the sparse path implements the
    configuration (`sparse_by_default`), else False. Numeric densities stay dense by default, so every result
    recorded before (and every configuration saved with an explicit value) keeps its path bit for bit."""

    device: Device = "cpu"
    """cuda: train with the reference loop (plain PyTorch) on the GPU; evaluation runs on the CPU, so eval_loss is
    scored on exactly the samples a CPU run of the same config uses."""

    dataset_size: int | list[int] = 0
    """Finite training set (Henighan et al. 2023, paper-spec §6.1): T samples per instance, drawn once from
    seed + instance and trained on full-batch every step (batch_size is then unused); eval_loss becomes the
    test loss on fresh samples. An int for every configuration or a list with one T per density entry;
    0 = fresh samples every step (infinite data)."""

    dataset_unit_norm: bool = False
    """Rescale every sample of a finite dataset, and of its test set, to unit norm ‖x‖ = 1 (§6.1)."""

    init_scale: float = 1.0
    """Multiplier on the initial weights (every parameter but the bias b): ≪ 1 starts near the origin, where
    training learns features one at a time, sitting at a dimensionality level between sudden jumps
    (energy-jumps, paper-spec §2.7)."""

    d_embed: int = 1000
    """resid-mlp: width of the residual stream (paper-spec §6.7: 1000); mlp with mixing "embedding": the width
    of the random embedding whose mixing matrix I − W_E W_Eᵀ enters the labels."""

    n_layers: int = 1
    """resid-mlp: residual MLP blocks of n_hidden (= d_mlp) neurons each."""

    act: Activation = "relu"
    """resid-mlp / mlp: the neurons' activation, also the one in the labels (param-decomp's act_fn_name)."""

    mixing: Mixing = "none"
    """mlp: the mixing matrix M of the labels act(x) + mixing_scale·x M: "embedding" M = I − W_E W_Eᵀ (W_E drawn
    as resid-mlp's for the same seed), "gaussian" a symmetric matrix of N(0, 1) entries, "none" labels act(x)."""

    mixing_scale: float = 1.0
    """mlp: σ, the factor on M in the labels (paper-spec §6.7's σ sweep)."""

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
            raise ConfigError(f"{spelled('seed')} must be a non-negative integer, got {self.seed!r}.")
        if _finite("lr", self.lr) <= 0:
            raise ConfigError(f"{spelled('lr')} must be a positive number, got {self.lr!r}.")
        _finite("weight_decay", self.weight_decay)  # signed: γ < 0 is weight growth (paper-spec §6.5)
        if _finite("hidden_l1", self.hidden_l1) < 0:
            raise ConfigError(f"{spelled('hidden_l1')} must be >= 0, got {self.hidden_l1}.")
        decay = _finite("importance_decay", self.importance_decay)
        if decay <= 0:
            raise ConfigError(f"{spelled('importance_decay')} must be > 0, got {decay}.")
        density = _plain(self.density)
        if isinstance(density, (int, float)) and not isinstance(density, bool):
            density = [density]  # one number: one configuration
        if not isinstance(density, (list, tuple)) or len(density) == 0:
            raise ConfigError(
                f"{spelled('density')} must be a number in (0, 1] or a non-empty list of them, got {self.density!r}."
            )
        self.density = [_density(d, self.n_features) for d in density]
        if self.importance is not None:
            self.importance = self._validate_importance(self.importance)
        if self.distribution in ("correlated", "anticorrelated") and self.n_features % self.set_size:
            raise ConfigError(
                f"{spelled('n_features')} ({self.n_features}) must be a multiple of {spelled('set_size')} "
                f"({self.set_size}) for {self.distribution} sets."
            )
        self._validate_shift()
        self._validate_scaling_options()
        self._validate_dataset()
        self._validate_cis()

    def _validate_cis(self) -> None:
        """The options of the computation-in-superposition kinds (paper-spec §6.7) and what they do not support."""
        _positive_int("d_embed", self.d_embed)
        _positive_int("n_layers", self.n_layers)
        _choice("act", self.act, Activation)
        _choice("mixing", self.mixing, Mixing)
        self.mixing_scale = _finite("mixing_scale", self.mixing_scale)
        if self.model not in CIS_KINDS:
            changed = [k for k, v in CIS_DEFAULTS.items() if getattr(self, k) != v]
            if changed:
                what = spelled(changed[0])
                raise ConfigError(f"{what} applies to the resid-mlp and mlp models only, not {self.model!r}.")
            return
        if self.model == "resid-mlp" and self.mixing != "none":
            raise ConfigError(
                f"{spelled('mixing')} applies to the mlp model; resid-mlp labels are x + act(x) (its embedding mixes)."
            )
        if self.model == "mlp" and self.n_layers != 1:
            raise ConfigError(f"the mlp model has one layer, got {spelled('n_layers')} {self.n_layers}.")
        unsupported = {
            "distribution": (self.distribution, "independent"), "hidden_l1": (self.hidden_l1, 0.0),
            "sparse": (self.sparse, False), "init_scale": (self.init_scale, 1.0), "lr_b": (self.lr_b, None),
        }  # fmt: skip
        for name, (value, allowed) in unsupported.items():
            if value != allowed:
                raise ConfigError(f"{spelled(name)} must be {allowed!r} for the {self.model} model, got {value!r}.")
        if self.weight_decay < 0:
            raise ConfigError(f"weight growth (weight_decay < 0) needs a tied model, not {self.model}.")
        if self.engine == "fast":
            raise ConfigError(f"engine 'fast' does not implement the {self.model} model; use engine auto or reference.")

    def _validate_shift(self) -> None:
        """off_features and eval_density (distribution-shift targets, paper-spec §6.6)."""
        off = self.off_features
        if not isinstance(off, (list, tuple)) or any(isinstance(i, bool) or not isinstance(i, int) for i in off):
            raise ConfigError(f"{spelled('off_features')} must be a list of feature indices, got {off!r}.")
        if any(not 0 <= i < self.n_features for i in off) or len(set(off)) != len(off):
            raise ConfigError(
                f"{spelled('off_features')} must be distinct indices in [0, {self.n_features - 1}], got {list(off)}."
            )
        self.off_features = sorted(off)
        if off and self.distribution != "independent":
            raise ConfigError(f"off_features needs the independent distribution, got {self.distribution!r}.")
        if self.eval_density is None:
            return
        if self.distribution == "one-hot":
            raise ConfigError("eval_density has no effect with the one-hot distribution (it ignores densities).")
        if not isinstance(self.eval_density, (list, tuple)) or len(self.eval_density) != len(self.density):
            raise ConfigError(
                f"eval_density needs {len(self.density)} entries (one per configuration), got {self.eval_density!r}."
            )
        self.eval_density = [_density(d, self.n_features, allow_zero=True) for d in self.eval_density]

    def _validate_scaling_options(self) -> None:
        """The data and optimiser options of paper-spec §6.5 (value range, density laws, signed decay)."""
        if _finite("value_max", self.value_max) <= 0:
            raise ConfigError(f"{spelled('value_max')} must be > 0, got {self.value_max}.")
        if _finite("expected_active", self.expected_active) <= 0:
            raise ConfigError(f"{spelled('expected_active')} must be > 0, got {self.expected_active}.")
        if self.lr_b is not None and _finite("lr_b", self.lr_b) <= 0:
            raise ConfigError(f"{spelled('lr_b')} must be a positive number or None, got {self.lr_b!r}.")
        if not 0.0 <= _finite("lr_floor", self.lr_floor) <= 1.0:
            raise ConfigError(f"{spelled('lr_floor')} must be in [0, 1], got {self.lr_floor}.")
        _choice("device", self.device, Device)
        if self.device == "cuda" and self.engine == "fast":
            raise ConfigError("engine 'fast' runs on the CPU; use engine auto or reference with device cuda.")
        if self.sparse is None:
            self.sparse = self.sparse_by_default()
        for flag in ("decay_bias", "sparse"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be true or false, got {getattr(self, flag)!r}.")
        if self.weight_decay < 0 and self.model == "abs":
            raise ConfigError("weight growth (weight_decay < 0) needs a tied model (W per feature), not abs.")
        for d in self.density:
            if isinstance(d, str):
                density_law(d, self.n_features, self.expected_active)  # raises if a probability exceeds 1

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
        self.init_scale = _finite("init_scale", self.init_scale)
        if self.init_scale <= 0:
            raise ConfigError(f"init_scale must be > 0, got {self.init_scale}.")

    def validate(self) -> TrainConfig:
        """Check (and normalise) every field again, e.g. after editing a config; returns self."""
        self.__post_init__()
        return self

    def _validate_importance(self, value: Any) -> list[Any]:
        name = spelled("importance")
        value = _plain(value)
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise ConfigError(f"{name} must be a list of {self.n_features} numbers, got {value!r}.")
        value = [_plain(v) for v in value]
        per_config = isinstance(value[0], (list, tuple))
        rows = list(value) if per_config else [value]
        if per_config and len(rows) != len(self.density):
            raise ConfigError(
                f"per-configuration {name} needs {len(self.density)} lists (one per density), got {len(rows)}."
            )
        out = []
        for row in rows:
            if not isinstance(row, (list, tuple)) or len(row) != self.n_features:
                raise ConfigError(f"{name} needs {self.n_features} values (one per feature), got {row!r}.")
            vals = [_finite("importance", v) for v in row]
            if any(v < 0 for v in vals):
                raise ConfigError(f"{name} values must be >= 0, got {vals}.")
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
        """Per-feature training density of configuration `config` (0 for off_features)."""
        d = self.density[config]
        if isinstance(d, str):
            d = density_law(d, self.n_features, self.expected_active)
        out = list(d) if isinstance(d, list) else [d] * self.n_features
        for i in self.off_features:
            out[i] = 0.0
        return out

    def config_eval_density(self, config: int) -> list[float] | None:
        """Per-feature eval_density of configuration `config`, None without a shifted evaluation."""
        if self.eval_density is None:
            return None
        d = self.eval_density[config]
        if isinstance(d, str):
            return density_law(d, self.n_features, self.expected_active)
        return list(d) if isinstance(d, list) else [d] * self.n_features

    def sparse_by_default(self) -> bool:
        """What `sparse=None` means for this configuration: the sparse path wherever it trains a density law.

        True iff some density entry is a named law (§6.5: "power:ALPHA", …) and the fast engine trains the
        configuration sparsely: a tied model (relu-output, linear, hidden-relu), the independent distribution, fresh
        samples (no finite dataset), on the CPU, engine auto or fast. Elsewhere — numeric densities, the reference
        loop, CUDA, other models — the dense path, as before. (A sweep resolves it from the law's name before it
        turns the law into per-feature lists: tmslab.sweep.plan.)"""
        return (
            any(isinstance(d, str) for d in self.density)
            and self.model in SPARSE_KINDS
            and self.distribution == "independent"
            and self.dataset_size == 0
            and self.device == "cpu"
            and self.engine != "reference"
        )

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
        """The fields as JSON values; the resid-mlp / mlp options only where they differ from their defaults."""
        return {k: v for k, v in asdict(self).items() if k not in CIS_DEFAULTS or v != CIS_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From JSON/YAML-style data; field names, the aliases and kebab-case spellings are accepted."""
        return cls(**canonical_keys(data))


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
