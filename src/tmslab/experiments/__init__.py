"""Paper experiments, one small declarative module each, registered by name (paper order)."""

from __future__ import annotations

import difflib
import importlib

from tmslab.config import ConfigError
from tmslab.experiments.base import Experiment

EXPERIMENTS: dict[str, Experiment] = {}

#: Modules in paper order; each registers its experiment(s) on import.
_MODULES = [
    "intro", "basic", "phase", "uniform", "perturb", "correlated",
    "dynamics", "adversarial", "privileged", "absval", "l1", "compression",
    "scaling", "double_descent", "slt", "sae", "compressed",
]


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: add an experiment to the registry under its `name`."""
    EXPERIMENTS[cls.name] = cls()
    return cls


def get(name: str) -> Experiment:
    """The experiment called `name`, or a one-line error suggesting the closest name."""
    if name not in EXPERIMENTS:
        hint = difflib.get_close_matches(name, EXPERIMENTS, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"unknown experiment {name!r}{extra}; known: {', '.join(EXPERIMENTS)}.")
    return EXPERIMENTS[name]


for _module in _MODULES:
    importlib.import_module(f"tmslab.experiments.{_module}")
