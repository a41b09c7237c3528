"""The on-disk run format (docs/format.md): safetensors weights, JSON config and metrics.

Every file is written to a temporary name and renamed into place, and a whole run directory is
assembled beside its destination and renamed at the end, so a reader never sees half a run.
Loading never unpickles anything: weights are read with safetensors only.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from tmslab.config import ConfigError, TrainConfig, versions
from tmslab.models import ToyModel

WEIGHTS, CONFIG, METRICS, HISTORY = "model.safetensors", "config.json", "metrics.json", "history.safetensors"


class RunFormatError(ValueError):
    """A run directory that is missing, incomplete or corrupted."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # mkstemp creates 0600; results are ordinary readable files
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_parquet(path: Path, df: Any) -> None:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def atomic_save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_out_dir(out: Path, force: bool = False) -> None:
    """Refuse an --out that cannot receive a run, before any work is done."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is an existing file; give a directory path.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} already exists and is not empty; choose another path or pass --force.")
    parent = out.resolve().parent
    if not parent.exists():
        raise ConfigError(f"the parent directory of --out ({parent}) does not exist.")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write to {parent} (no permission).")


def instance_records(config: TrainConfig, eval_loss: Tensor, best: Tensor) -> list[dict[str, Any]]:
    """One metrics.json record per instance: configurations in order, restarts innermost."""
    rows = []
    for k in range(config.n_instances):
        c, r = divmod(k, config.restarts)
        rows.append(
            {
                "index": k,
                "config": c,
                "density": config.density[c],
                "importance": config.config_importance(c),
                "restart": r,
                "seed": config.instance_seed(k),
                "eval_loss": float(eval_loss[k]),
                "best": bool(best[k]),
            }
        )
    return rows


def save_run(out: Path, result: Any, extra_metrics: dict[str, Any] | None = None, force: bool = False) -> Path:
    """Write a TrainResult as RUN_DIR/{model.safetensors, config.json, metrics.json[, history.safetensors]}."""
    out = Path(out)
    check_out_dir(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        config: TrainConfig = result.config
        # A single metadata key: safetensors does not keep metadata order, and identical runs must
        # give byte-identical files.
        atomic_save_tensors(tmp / WEIGHTS, result.params, metadata={"format": "tmslab-run-1"})
        atomic_write_json(
            tmp / CONFIG,
            {**config.to_dict(), "n_instances": config.n_instances, "versions": versions(), "engine": result.engine},
        )
        metrics = {
            "instances": instance_records(config, result.eval_loss, result.best),
            "train_seconds": result.train_seconds,
            "engine": result.engine,
            **(extra_metrics or {}),
        }
        atomic_write_json(tmp / METRICS, metrics)
        if result.history:
            atomic_save_tensors(tmp / HISTORY, result.history)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished directory `tmp` to `out` by renames (an existing `out` is swapped out, then removed)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@dataclass
class Run:
    """A run loaded from disk."""

    path: Path
    config: TrainConfig
    params: dict[str, Tensor]
    metrics: dict[str, Any]
    versions: dict[str, str]
    history: dict[str, Tensor]

    @property
    def model(self) -> ToyModel:
        return ToyModel.from_params(self.config.model, self.params)

    @property
    def W(self) -> Tensor:
        return self.params["W1"] if self.config.model == "abs" else self.params["W"]

    @property
    def b(self) -> Tensor:
        return self.params["b"]

    @property
    def eval_loss(self) -> Tensor:
        return torch.tensor([r["eval_loss"] for r in self.metrics["instances"]])

    @property
    def best(self) -> Tensor:
        return torch.tensor([r["best"] for r in self.metrics["instances"]])

    def best_indices(self) -> list[int]:
        """Instance index of the best restart of each configuration, in configuration order."""
        return [r["index"] for r in self.metrics["instances"] if r["best"]]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFormatError(f"{path} is missing; is {path.parent} a tmslab run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{path} is not valid JSON ({e.__class__.__name__}: {e}).") from None


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load RUN_DIR written by `tms train` (or any experiment) — weights via safetensors only."""
    path = Path(path)
    if not path.is_dir():
        raise RunFormatError(f"{path} is not a directory; give a run directory written by `tms train --out`.")
    raw = _read_json(path / CONFIG)
    vers = raw.pop("versions", {})
    raw.pop("n_instances", None)
    raw.pop("engine", None)
    try:
        config = TrainConfig.from_dict(raw)
    except (ConfigError, TypeError) as e:
        raise RunFormatError(f"{path / CONFIG} does not hold a valid configuration: {e}") from None
    metrics = _read_json(path / METRICS)
    weights = path / WEIGHTS
    if not weights.exists():
        raise RunFormatError(f"{weights} is missing.")
    try:
        params = load_file(weights)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise RunFormatError(f"{weights} is corrupted or truncated: {str(e).splitlines()[0]}") from None
    expected = {"W1", "W2", "b"} if config.model == "abs" else {"W", "b"}
    if set(params) != expected:
        raise RunFormatError(f"{weights} holds tensors {sorted(params)}, expected {sorted(expected)}.")
    enc = params["W1"] if config.model == "abs" else params["W"]
    if tuple(enc.shape) != (config.n_instances, config.n_hidden, config.n_features):
        raise RunFormatError(
            f"{weights}: weight shape {tuple(enc.shape)} does not match the configuration "
            f"({config.n_instances}, {config.n_hidden}, {config.n_features})."
        )
    history = {}
    if (path / HISTORY).exists():
        try:
            history = load_file(path / HISTORY)
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise RunFormatError(f"{path / HISTORY} is corrupted: {str(e).splitlines()[0]}") from None
    return Run(path=path, config=config, params=params, metrics=metrics, versions=vers, history=history)
