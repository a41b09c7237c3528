"""The optional `sae:` section of a sweep: SAE hyperparameters as axes, one SAE per (run, SAE point).

    sae:
      arch: [topk, standard]        # any tmslab.sae.SAESettings field: a value, a list or a range
      ratio: {log_range: [0.25, 8], points: 6}
      samples: 1000000
      runs: best                    # best (default: the best restart of each grid point) | all

After the toy models are trained, every selected run gets one SAE per point of the SAE grid, trained on
its instance's hidden activations (standard and TopK points together by tmslab.sae_batched with
SAELens's training semantics, other architectures one at a time by SAELens's SAETrainer), saved under
DIR/saes/<job>-i<instance>-s<point>/ and reused on resume when its settings match; results.parquet has
one row per SAE: the run's columns, `sae_<axis>` columns and the ground-truth metrics of tmslab.sae.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd

from tmslab.config import ConfigError

SAES = "saes"
METRICS = ("mmcs", "mcc", "recovered", "dead", "l0", "nmse", "shrinkage", "n_true", "n_latents")


def normalise(raw: Any) -> dict[str, Any]:
    """The `sae:` section with every axis resolved to its list of values; validated (one-line errors)."""
    from tmslab.sae import SAESettings, require_saelens
    from tmslab.sweep.spec import _resolve_values, _suggest

    require_saelens()  # refuse before any training without the extra

    if not isinstance(raw, Mapping):
        raise ConfigError(f"sae must be a mapping of SAE settings → values, got {raw!r}.")
    names = [f.name for f in fields(SAESettings)]
    runs = raw.get("runs", "best")
    if runs not in ("best", "all"):
        raise ConfigError(f"sae.runs must be best or all, got {runs!r}.")
    axes: dict[str, list[Any]] = {}
    for key, value in raw.items():
        if key == "runs":
            continue
        if key not in names:
            raise ConfigError(f"unknown sae key {key!r}{_suggest(str(key), [*names, 'runs'])}.")
        axes[key] = _resolve_values(f"sae.{key}", value)
    out = {"axes": axes, "runs": runs}
    for point in points(out):
        try:
            SAESettings(**point)
        except TypeError as e:
            raise ConfigError(f"sae: {e}.") from None
    return out


def points(sae: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the SAE axes, first axis outermost."""
    axes = sae["axes"]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def train_saes(out: Path, sae: dict[str, Any], runs: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Train (or reuse) the SAEs of a finished sweep; one row per SAE."""
    from tqdm.auto import tqdm

    from tmslab import sae as tsae
    from tmslab.io import load_run, make_dir
    from tmslab.sae_batched import train_many

    chosen = runs[runs["is_best"]] if sae["runs"] == "best" else runs
    grid = points(sae)
    rows = []
    bar = tqdm(total=len(chosen) * len(grid), desc="saes", unit="sae", disable=not progress)
    make_dir(out / SAES)
    for _, row in chosen.iterrows():
        source = tsae.RunSource(load_run(out / row["job_dir"]), int(row["instance"]))
        settings = [tsae.SAESettings(**point) for point in grid]
        paths = [out / SAES / f"{row['job']}-i{int(row['instance'])}-s{s}" for s in range(len(grid))]
        records = [_saved(path, s, source) for path, s in zip(paths, settings, strict=True)]
        todo = [i for i, r in enumerate(records) if r is None]
        if todo:  # standard / TopK points train together (tmslab.sae_batched), the others through SAELens
            results = train_many(source, [settings[i] for i in todo], [paths[i] for i in todo], force=True)
            for i, result in zip(todo, results, strict=True):
                records[i] = result.record
        for point, path, record in zip(grid, paths, records, strict=True):
            rows.append({**row.to_dict(), **{f"sae_{k}": v for k, v in point.items()},
                         **{k: record["metrics"][k] for k in METRICS}, "sae_dir": f"{SAES}/{path.name}",
                         "sae_seconds": record["train_seconds"]})
        bar.update(len(grid))
    bar.close()
    return pd.DataFrame(rows)


def _saved(path: Path, settings: Any, source: Any) -> dict[str, Any] | None:
    """The SAE saved at `path` if it was trained with `settings` on the activations of `source` (the run's
    configuration, instance and data law: a resumed sweep whose runs changed retrains its SAEs), else None."""
    from tmslab.sae import METRICS_FILE

    try:
        record = json.loads((path / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    # As the JSON file holds it; not the run's path, which depends on how --out was spelled (the weights'
    # fingerprint in the description identifies the run).
    now = {k: v for k, v in json.loads(json.dumps(source.describe())).items() if k != "run"}
    then = {k: v for k, v in (record.get("source") or {}).items() if k != "run"}
    return record if record.get("settings") == asdict(settings) and now == then else None
