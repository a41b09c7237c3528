"""Compiling the fast engine's kernels ahead of need, each in a child process, into numba's on-disk cache.

A first run after an install compiles the training kernels (≈ 10 s on 2 cores). They are compiled in a child
rather than in the process that trains: with fastmath, a kernel compiled in the calling process can round
differently from the same kernel loaded from the cache (LLVM optimises the freshly linked callees together),
so the first run would differ in the last bits from every later run; compiled in a child and loaded from the
cache, the very first run gives the same weights as every later one. The child loads `training/_kernels.py`
by path, without PyTorch or the rest of tmslab (≈ 1 s to start instead of ≈ 3 s), and returns at once when
the cache already holds the kernel. This module imports neither PyTorch nor numba, so that the CLI can start
the children before its own slow imports (`start`); `training.fast.ensure_cached` waits for them (`wait`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

KERNELS = Path(__file__).parent / "training" / "_kernels.py"

_children: dict[str, subprocess.Popen] = {}


def kernels(config: Any) -> list[str]:
    """The compiled kernels a run of `config` (a TrainConfig) will call, if it runs on the fast engine."""
    if config.engine == "reference" or config.device == "cuda" or config.finite or config.model in ("resid-mlp", "mlp"):
        return []
    return ["train_sparse", "evaluate_sparse"] if config.sparse else ["train_dense"]


def started(kernel: str) -> bool:
    return kernel in _children


def start(names: list[str]) -> None:
    """Start one child per kernel not started yet in this process; do not wait."""
    for kernel in names:
        if kernel in _children:
            continue
        code = (
            "import importlib.util as u, sys\n"
            f"s = u.spec_from_file_location('tmslab.training._kernels', {str(KERNELS)!r})\n"
            "k = sys.modules[s.name] = u.module_from_spec(s)\n"
            f"s.loader.exec_module(k)\nk.warm_up({kernel!r})"
        )
        _children[kernel] = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


def wait(kernel: str) -> None:
    """Wait for the kernel's child, if one was started (a failed child leaves the compilation to the caller)."""
    child = _children.get(kernel)
    if child is not None:
        child.wait()
