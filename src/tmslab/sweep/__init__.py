"""Sweeps: grids of toy-model trainings packed into batched jobs, resumable, local or on Ray.

    df = tmslab.sweep({"base": {...}, "grid": {...}, "restarts": 10}, out="runs/phase")

`tmslab.sweep` is this module, and calling it runs `run_sweep` (so the name can be both the
package and the function without one shadowing the other). See docs/sweeps.md.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from tmslab.sweep.backends import SweepJobError
from tmslab.sweep.plan import Job, plan_jobs
from tmslab.sweep.run import load_results, load_weights, merge, run_sweep
from tmslab.sweep.spec import SweepSpec, load_spec

__all__ = [
    "Job",
    "SweepJobError",
    "SweepSpec",
    "load_results",
    "load_spec",
    "load_weights",
    "merge",
    "plan_jobs",
    "run_sweep",
    "sweep",
]


def sweep(spec: Any, out: Any, **kwargs: Any) -> Any:
    """Same as run_sweep(spec, out, **kwargs)."""
    return run_sweep(spec, out, **kwargs)


class _CallableModule(types.ModuleType):
    """Lets `tmslab.sweep(spec, out=...)` call run_sweep while `tmslab.sweep` stays this module."""

    def __call__(self, spec: Any, out: Any, **kwargs: Any) -> Any:
        return run_sweep(spec, out, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
