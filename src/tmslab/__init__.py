"""tmslab: train, measure and reproduce Toy Models of Superposition (Elhage et al., 2022).

The public names are imported on first use (PEP 562), so `import tmslab` and `tms --help` do not pay
for torch and pandas until a model is trained or loaded.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name → module that defines it
_LAZY = {
    "TrainConfig": "tmslab.config",
    "Run": "tmslab.io",
    "load_run": "tmslab.io",
    "save_run": "tmslab.io",
    "TrainResult": "tmslab.training",
    "train": "tmslab.training",
}

if TYPE_CHECKING:
    from tmslab import sweep
    from tmslab.config import TrainConfig
    from tmslab.io import Run, load_run, save_run
    from tmslab.training import TrainResult, train


def __getattr__(name: str) -> Any:
    if name == "sweep":  # a callable module: tmslab.sweep(spec, out=...) runs a sweep
        return import_module("tmslab.sweep")
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tmslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "sweep"])


__all__ = ["TrainConfig", "TrainResult", "Run", "train", "load_run", "save_run", "sweep", "__version__"]
