"""tmslab: train, measure and reproduce Toy Models of Superposition (Elhage et al., 2022)."""

from __future__ import annotations

__version__ = "0.1.0"

from tmslab import sweep  # noqa: E402  (a callable module: tmslab.sweep(spec, out=...) runs a sweep)
from tmslab.config import TrainConfig  # noqa: E402
from tmslab.io import Run, load_run, save_run  # noqa: E402
from tmslab.training import TrainResult, train  # noqa: E402

__all__ = ["TrainConfig", "TrainResult", "Run", "train", "load_run", "save_run", "sweep", "__version__"]
