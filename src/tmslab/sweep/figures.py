"""`tms report DIR` on a sweep: each metric of the best restart per grid point, over one axis (lines) or
two axes (heatmaps, phase-diagram style, log axes where the axis is positive and spans a decade or more)."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tmslab.config import ConfigError
from tmslab.sweep.run import load_results
from tmslab.sweep.store import load_stored_spec

#: Columns of results.parquet plotted by default, with their axis titles.
METRICS = {
    "eval_loss": "eval loss L (best restart)",
    "mmcs": "SAE: MMCS against the learned features",
    "recovered": "SAE: fraction of learned features recovered (cos ≥ 0.9)",
    "dead": "SAE: dead latents",
    "l0": "SAE: L0",
    "nmse": "SAE: normalised MSE",
    "learned": "learned features (‖W_i‖ > 0.5)",
    "D_star": "D* = m / ‖W‖²_F",
    "sum_D": "Σ_i D_i",
}
#: At most this many figures per metric when a sweep has more than two axes.
MAX_SLICES = 6


def _is_log(values: list[Any]) -> bool:
    v = [x for x in values if isinstance(x, (int, float))]
    return len(v) == len(values) and min(v) > 0 and max(v) / min(v) >= 10


def _numeric(values: Any) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


def sweep_figures(df: pd.DataFrame, axes: list[str], metric: str) -> list[tuple[str, Any, Any, str]]:
    """(name, plotly, matplotlib, caption) for `metric` of the best restarts over the sweep's axes.

    Numeric axes are plotted (one: lines; two or more: heatmaps over the first two); a categorical axis (e.g.
    `model: [linear, relu-output]`) gives one line per value beside a single numeric axis, otherwise one heatmap
    per value (at most `MAX_SLICES` figures)."""
    from tmslab.plots import figure_pair

    best = df[df["is_best"]]
    label = METRICS.get(metric, metric)
    numeric = [a for a in axes if _numeric(best[a].unique())]
    if not numeric:
        raise ConfigError(f"no numeric sweep axis to plot {metric} against; the axes are {', '.join(axes)}.")
    categorical = [a for a in axes if a not in numeric]
    out = []
    if len(numeric) == 1:
        (a,) = numeric
        groups = list(best.groupby(categorical, sort=True)) if categorical else [((), best)]
        series = {}
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            name = ", ".join(f"{c} = {v}" for c, v in zip(categorical, key, strict=True)) or label
            g = g.sort_values(a)
            series[name] = (g[a].tolist(), g[metric].tolist())
        fig = figure_pair("lines", None, series, xlabel=a, ylabel=label, log_x=_is_log(best[a].unique().tolist()))
        by = f" per {' × '.join(categorical)}" if categorical else ""
        out.append((f"{metric}-vs-{a}", *fig, f"{label} against {a}{by}."))
        return out
    x, y, rest = numeric[1], numeric[0], numeric[2:] + categorical
    slices = list(itertools.product(*[sorted(best[r].unique()) for r in rest]))[:MAX_SLICES] if rest else [()]
    for values in slices:
        sub = best
        for r, v in zip(rest, values, strict=True):
            sub = sub[sub[r] == v]
        table = sub.pivot_table(index=y, columns=x, values=metric, aggfunc="first")
        xs, ys = table.columns.tolist(), table.index.tolist()
        where = ", ".join(f"{r} = {v}" for r, v in zip(rest, values, strict=True))
        fig = figure_pair("heatmap2d", xs, ys, table.to_numpy(dtype=float), xlabel=x, ylabel=y, zlabel=label,
                          log_x=_is_log(xs), log_y=_is_log(ys), title=f"{label}{' — ' + where if where else ''}")
        suffix = "-".join(f"{r}{v}" for r, v in zip(rest, values, strict=True))
        out.append((f"{metric}-{x}-{y}{'-' + suffix if suffix else ''}", *fig,
                    f"{label} over {x} × {y}{' at ' + where if where else ''}."))
    return out


def sweep_report(out: str | os.PathLike[str], metrics: tuple[str, ...] = ("eval_loss", "learned", "D_star", "sum_D")
                 ) -> Path:
    """Write DIR/figures/* and DIR/index.html for a sweep directory; returns the page's path."""
    from tmslab.config import versions
    from tmslab.plots import save_figure
    from tmslab.report import Section, build_report

    out = Path(out)
    spec = load_stored_spec(out)
    df = load_results(out)
    axes = [a for a, v in spec.grid.items() if len(v) > 1 and a in df.columns]
    if spec.sae is not None:  # one row per SAE: its axes join the grid's, its ground-truth metrics are plotted
        axes += [f"sae_{a}" for a, v in spec.sae["axes"].items() if len(v) > 1]
        metrics = ("mmcs", "recovered", "dead", "l0", "nmse")
    if not axes:
        raise ConfigError(f"{out}: the sweep has no axis with more than one value to plot.")
    figures = []
    for metric in metrics:
        for name, fig, fig_mpl, caption in sweep_figures(df, axes, metric):
            html, png = save_figure(fig, fig_mpl, out / "figures" / name)
            figures.append((str(html.relative_to(out)), str(png.relative_to(out)), caption))
    section = Section(
        name="sweep",
        title=f"Sweep {out.name}: {len(df)} runs over {' × '.join(axes)}",
        claim="Each grid point's best restart (lowest evaluation loss); every run is in results.parquet.",
        spec_ref="",
        fidelity=f"{spec.n_points} grid points × {spec.restarts} restarts; base configuration {spec.base}",
        config=spec.to_dict(),
        figures=figures,
        checks=[],
        notes="",
    )
    meta = {"versions": versions(), "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "rows": int(len(df)), "mean_eval_loss": float(np.mean(df["eval_loss"]))}
    return build_report(out, [section], title=f"tmslab sweep — {out.name}", meta=meta)
