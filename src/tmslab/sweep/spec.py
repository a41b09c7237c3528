"""Sweep specifications: parsing, validation and normalisation (docs/sweeps.md).

A spec is a mapping with four keys:

    base:      any `tms train` option (TrainConfig field name, CLI kebab-case name, or the aliases
               features / hidden) — the configuration every run starts from.
    grid:      axis name → values (a list, or {log_range: [a, b], points: N}, or
               {linear_range: [a, b], points: N}); the runs are the cartesian product of the axes,
               first axis outermost, in the order written.
    restarts:  seeds per grid point (default 1); may also be given in base.
    max_instances: instances per packed job, or "auto" (default): see plan.py.

`seed` may be given at the top level or in base. Normalising resolves every range to its list of
values, so the normalised spec (stored in DIR/spec.json) alone determines the job list.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tmslab.config import ConfigError, TrainConfig
from tmslab.naming import ALIASES, canonical  # features / hidden, accepted in base and grid like everywhere else

#: TrainConfig fields a grid can vary per configuration: packed as instances of one job.
CONFIG_AXES = ("density", "density_of", "importance_ratio", "importance_decay")
#: TrainConfig fields that are never axes: restarts is its own key, the rest are per-run lists.
NOT_AXES = ("restarts", "seed", "importance", "record_every")
TOP_KEYS = ("base", "grid", "restarts", "seed", "max_instances", "sae")
RANGE_KEYS = ("log_range", "linear_range", "points")
#: Refuse grids whose job list alone would be unreasonably large to enumerate.
MAX_RUNS = 2_000_000

_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _suggest(name: str, valid: list[str] | tuple[str, ...]) -> str:
    hint = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def canonical_name(name: Any, where: str, valid: list[str] | tuple[str, ...]) -> str:
    """'batch-size' → 'batch_size', 'features' → 'n_features'; unknown names suggest the closest valid one."""
    if not isinstance(name, str):
        raise ConfigError(f"{where} keys must be names, got {name!r}.")
    canon = canonical(name)
    if canon not in valid:
        candidates = [*valid, *(a for a, target in ALIASES.items() if target in valid)]
        raise ConfigError(f"unknown {where} key {name!r}{_suggest(canon, candidates)}.")
    return canon


@dataclass
class SweepSpec:
    """A normalised sweep: a base configuration, resolved grid axes, restarts and packing."""

    base: dict[str, Any]
    """TrainConfig keyword arguments shared by every run (canonical field names; no restarts/seed)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Axis name → its resolved values, in spec order (first axis outermost)."""

    density_of_feature: int | None = None
    """The feature whose density the `density_of` axis scales (None when there is no such axis)."""

    restarts: int = 1
    """Seeds per grid point; the lowest-eval-loss one is marked is_best."""

    seed: int = 0
    """The sweep seed: run r of the packed job order trains with init seed `seed + r`."""

    max_instances: int | str = "auto"
    """Most instances (grid points × restarts) per packed job, or 'auto' (≈ 20 s of work per job)."""

    sae: dict[str, Any] | None = None
    """Optional SAE stage (tmslab.sweep.saes): {'axes': SAE setting → values, 'runs': 'best' | 'all'}."""

    @property
    def n_points(self) -> int:
        return math.prod(len(v) for v in self.grid.values())

    @property
    def n_runs(self) -> int:
        return self.n_points * self.restarts

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "grid": self.grid,
            "density_of_feature": self.density_of_feature,
            "restarts": self.restarts,
            "seed": self.seed,
            "max_instances": self.max_instances,
            # Only when present, so that the digests of sweeps without SAEs are unchanged.
            **({"sae": self.sae} if self.sae is not None else {}),
        }

    def digest(self) -> str:
        """A hash of the normalised spec: two specs with the same digest produce the same jobs."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_normalised(cls, data: Mapping[str, Any]) -> SweepSpec:
        return cls(**dict(data))


# ---- loading ---------------------------------------------------------------------------------------


def read_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (.yaml/.yml/anything else) or TOML (.toml) file as a dict; one-line errors."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read sweep spec {path}: {e.__class__.__name__}.") from None
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {str(e).splitlines()[0]}.") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(e, "problem", None) or e.__class__.__name__
            raise ConfigError(f"{path} is not valid YAML{where}: {problem}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping with keys base, grid and restarts; got {type(data).__name__}.")
    return data


def load_spec(spec: Mapping[str, Any] | str | os.PathLike[str] | SweepSpec) -> SweepSpec:
    """Parse, validate and normalise a spec given as a dict, a YAML/TOML path or a SweepSpec."""
    if isinstance(spec, SweepSpec):
        return spec
    raw = read_spec_file(spec) if isinstance(spec, (str, os.PathLike)) else spec
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a sweep spec must be a mapping or a path, got {type(raw).__name__}.")
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(f"unknown sweep spec key {key!r}{_suggest(str(key), TOP_KEYS)}.")
    base = _normalise_base(raw.get("base") or {})
    restarts = _pop_twice(base, raw, "restarts", 1)
    seed = _pop_twice(base, raw, "seed", 0)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ConfigError(f"restarts must be an integer >= 1, got {restarts!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")
    max_instances = raw.get("max_instances", "auto")
    if max_instances != "auto" and (
        isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 1
    ):
        raise ConfigError(f"max_instances must be 'auto' or an integer >= 1, got {max_instances!r}.")
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        raise ConfigError(f"grid must be a mapping of axis name → values, got {grid_raw!r}.")
    grid: dict[str, list[Any]] = {}
    feature = None
    for name, value in grid_raw.items():
        canon = canonical_name(name, "grid axis", axis_names())
        if canon in grid:
            raise ConfigError(f"grid axis {canon!r} is given twice.")
        if canon == "density_of":
            feature, values = _density_of(value, base)
        else:
            values = _axis_values(canon, value)
        grid[canon] = values
    if "importance_ratio" in grid and "importance_decay" in grid:
        raise ConfigError("grid axes importance_ratio and importance_decay both set the importance; keep one.")
    sae = None
    if raw.get("sae") is not None:
        from tmslab.sweep.saes import normalise

        sae = normalise(raw["sae"])
    spec = SweepSpec(base, grid, feature, restarts, seed, max_instances, sae)
    if spec.n_runs > MAX_RUNS:
        raise ConfigError(f"the grid has {spec.n_runs:,} runs, more than the {MAX_RUNS:,} a sweep accepts; split it.")
    # Validate the base on its own so that its errors do not read as a grid point's.
    try:
        TrainConfig(**{**base, "density": [base.get("density", 1.0)]})
    except (ConfigError, TypeError) as e:
        raise ConfigError(f"base: {e}") from None
    return spec


def axis_names() -> list[str]:
    shape_axes = [n for n in _FIELDS if n not in NOT_AXES and n not in CONFIG_AXES]
    return [*CONFIG_AXES, *shape_axes]


def _pop_twice(base: dict[str, Any], raw: Mapping[str, Any], key: str, default: Any) -> Any:
    if key in base and key in raw and base[key] != raw[key]:
        raise ConfigError(f"{key} is given both in base ({base[key]!r}) and at the top level ({raw[key]!r}).")
    value = raw.get(key, base.get(key, default))
    base.pop(key, None)
    return value


def _normalise_base(base: Any) -> dict[str, Any]:
    if not isinstance(base, Mapping):
        raise ConfigError(f"base must be a mapping of training options, got {base!r}.")
    out: dict[str, Any] = {}
    for name, value in base.items():
        canon = canonical_name(name, "base", list(_FIELDS))
        if canon in out:
            raise ConfigError(f"base option {canon!r} is given twice (as {name!r}).")
        if canon == "density" and isinstance(value, list) and not all(isinstance(v, (int, float)) for v in value):
            raise ConfigError("base density must be one number or one per-feature list; use a grid axis for several.")
        out[canon] = value
    if "importance" in out and "importance_decay" in out:
        raise ConfigError("base gives both importance and importance_decay; keep one.")
    return out


def _resolve_values(where: str, value: Any) -> list[Any]:
    """A list, or {log_range: [a, b], points: N} / {linear_range: [a, b], points: N}, as a list."""
    if isinstance(value, Mapping):
        for key in value:
            if key not in RANGE_KEYS:
                raise ConfigError(f"{where}: unknown range key {key!r}{_suggest(str(key), RANGE_KEYS)}.")
        kinds = [k for k in ("log_range", "linear_range") if k in value]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: give exactly one of log_range or linear_range, with points.")
        ends, points = value[kinds[0]], value.get("points")
        if not isinstance(ends, (list, tuple)) or len(ends) != 2:
            raise ConfigError(f"{where}: {kinds[0]} must be [start, stop], got {ends!r}.")
        a, b = (_number(where, v) for v in ends)
        if isinstance(points, bool) or not isinstance(points, int) or points < 1:
            raise ConfigError(f"{where}: points must be an integer >= 1, got {points!r}.")
        if kinds[0] == "log_range":
            if a <= 0 or b <= 0:
                raise ConfigError(f"{where}: log_range ends must be > 0, got [{a}, {b}].")
            if points == 1:
                return [a]
            la, lb = math.log(a), math.log(b)
            vals = [math.exp(la + (lb - la) * i / (points - 1)) for i in range(points)]
        else:
            vals = [a + (b - a) * i / (points - 1) for i in range(points)] if points > 1 else [a]
        # Hit the written ends exactly (exp∘log rounding would turn 1.0 into 0.9999999999999998).
        vals[0], vals[-1] = a, (b if points > 1 else a)
        return vals
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{where}: an axis needs at least one value, got an empty list.")
        return list(value)
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return [value]
    raise ConfigError(f"{where}: values must be a list or a {{log_range|linear_range, points}} mapping, got {value!r}.")


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{where}: values must be finite numbers, got {v!r}.")
    return float(v)


def _axis_values(name: str, value: Any) -> list[Any]:
    where = f"grid.{name}"
    vals = _resolve_values(where, value)
    if name == "density" and all(isinstance(v, str) for v in vals):  # named laws (§6.5): "power:0.5", …
        return [TrainConfig(density=[v]).density[0] for v in vals]
    if name in CONFIG_AXES:
        vals = [_number(where, v) for v in vals]
        low = {"density": "> 0 and <= 1", "importance_ratio": ">= 0", "importance_decay": "> 0"}[name]
        for v in vals:
            if (
                (name == "density" and not 0 < v <= 1)
                or (name == "importance_ratio" and v < 0)
                or (name == "importance_decay" and v <= 0)
            ):
                raise ConfigError(f"{where}: values must be {low}, got {v}.")
        return vals
    kind = _FIELDS[name].type
    out = []
    for v in vals:
        if kind.split(" |")[0] == "int":  # int, or int | list[int] (dataset_size): an axis value is one int
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{where}: values must be integers, got {v!r}.")
        elif kind == "float":
            v = _number(where, v)
        elif not isinstance(v, str):
            raise ConfigError(f"{where}: values must be names, got {v!r}.")
        out.append(v)
    return out


def _density_of(value: Any, base: dict[str, Any]) -> tuple[int, list[float]]:
    where = "grid.density_of"
    if not isinstance(value, Mapping) or set(value) != {"feature", "relative"}:
        raise ConfigError(f"{where} must be {{feature: i, relative: values}}, got {value!r}.")
    feature = value["feature"]
    # The index is checked against n_features per grid point (n_features may itself be an axis).
    if isinstance(feature, bool) or not isinstance(feature, int):
        raise ConfigError(f"{where}: feature must be a feature index (negative counts from the end), got {feature!r}.")
    rel = [_number(where, v) for v in _resolve_values(where, value["relative"])]
    if any(v <= 0 for v in rel):
        raise ConfigError(f"{where}: relative densities must be > 0, got {min(rel)}.")
    return feature, rel
