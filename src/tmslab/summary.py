"""Per-instance summary tables of a run, computed from its saved weights (used by `tms inspect`,
experiments and sweeps)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tmslab import metrics


def instance_metrics(W: Any) -> dict[str, list[Any]]:
    """Geometry metrics per instance of an encoder W [instances, hidden, features]."""
    W = W.double()
    norms = metrics.feature_norms(W)
    D = metrics.feature_dimensionality(W)
    return {
        "learned": (norms > 0.5).sum(-1).tolist(),
        "frob2": metrics.learned_features(W).tolist(),
        "D*": metrics.dimensions_per_feature(W).tolist(),
        "sum_D": D.sum(-1).tolist(),
        "polytopes": [metrics.describe_polytopes(comps) for comps in metrics.polytopes(W)],
    }


def run_table(run: Any, best_only: bool = True) -> pd.DataFrame:
    """One row per instance (or per configuration's best restart) of a loaded run."""
    rec = pd.DataFrame(run.metrics["instances"])
    geo = pd.DataFrame(instance_metrics(run.W))
    df = pd.concat([rec, geo], axis=1)
    df["density"] = [d if isinstance(d, (float, str)) else f"per-feature (mean {sum(d) / len(d):.3g})"
                     for d in df["density"]]
    if best_only:
        df = df[df["best"]]
    cols = ["config", "density", "restart", "eval_loss", "learned", "frob2", "D*", "sum_D", "polytopes"]
    return df[cols].rename(columns={"frob2": "‖W‖²_F", "sum_D": "ΣD_i", "learned": "n(‖W_i‖>0.5)"})
