"""Lines and heatmaps: metrics against one sweep axis (loss curves, vulnerability vs sparsity, loss per
geometry...) and a metric over two sweep axes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from matplotlib import ticker
from matplotlib.figure import Figure as MplFigure

from tmslab.plots._common import (
    DIVERGING,
    DIVERGING_MPL,
    SEQUENTIAL,
    SEQUENTIAL_MPL,
    as_np,
    axis_range,
    edges,
    feature_palette,
    figure_kind,
    to_rgb,
)

Series = Mapping[str, Any]  # name -> y (sharing x) or (x, y)


# ---- metric(s) against x -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    name: str
    x: np.ndarray
    y: np.ndarray
    colour: str
    style: str | None  # None (solid), 'dash', 'dot', 'dashdot' or 'markers' (markers only)


@dataclass(frozen=True)
class Lines:
    lines: list[Line]
    hlines: Mapping[str, float]
    vlines: Mapping[str, float]
    xlabel: str
    ylabel: str
    log_x: bool
    log_y: bool
    markers: bool
    title: str | None


def _lines(
    x: Float[Any, " points"] | None,
    series: Series,
    *,
    xlabel: str = "",
    ylabel: str = "",
    log_x: bool = False,
    log_y: bool = False,
    markers: bool = True,
    dash: Mapping[str, str] | None = None,
    hlines: Mapping[str, float] | None = None,
    vlines: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Lines:
    """Metric(s) against x, one trace per series (loss curves, vulnerability vs sparsity, collapsed pairs vs
    density, loss per geometry...). A series is y (sharing ``x``) or its own (x, y); ``dash`` maps a series
    to 'dash'/'dot'/'markers' (markers only, e.g. every restart's loss); ``hlines``/``vlines`` are
    labelled reference lines."""
    pal = feature_palette(len(series))
    out = []
    for c, (name, v) in enumerate(series.items()):
        if isinstance(v, tuple) and len(v) == 2:
            xs, ys = as_np(v[0]), as_np(v[1])
        else:
            if x is None:
                raise ValueError(f"series {name!r} has no x: pass x or give the series as (x, y).")
            xs, ys = as_np(x), as_np(v)
        if xs.shape != ys.shape:
            raise ValueError(f"series {name!r}: x has shape {xs.shape} but y has {ys.shape}.")
        out.append(Line(name, xs, ys, pal[c], (dash or {}).get(name)))
    return Lines(out, hlines or {}, vlines or {}, xlabel, ylabel, log_x, log_y, markers, title)


def _lines_plotly(d: Lines) -> go.Figure:
    fig = go.Figure()
    for line in d.lines:
        only_markers = line.style == "markers"
        fig.add_trace(
            go.Scatter(
                x=line.x,
                y=line.y,
                mode="markers" if only_markers else ("lines+markers" if d.markers else "lines"),
                name=line.name,
                line=dict(color=line.colour, dash=None if line.style in (None, "markers") else line.style),
                marker=dict(size=5 if only_markers else 6, color=line.colour, opacity=0.6 if only_markers else 1),
            )
        )
    for label, v in d.hlines.items():
        fig.add_hline(y=v, line=dict(color="#777", dash="dot", width=1), annotation_text=label)
    for label, v in d.vlines.items():
        fig.add_vline(x=v, line=dict(color="#777", dash="dot", width=1), annotation_text=label)
    fig.update_xaxes(type="log" if d.log_x else "linear", title=d.xlabel)
    fig.update_yaxes(type="log" if d.log_y else "linear", title=d.ylabel)
    fig.update_layout(height=400, width=680, title=d.title, margin=dict(l=60, r=20, t=60 if d.title else 30, b=50))
    return fig


def _lines_mpl(d: Lines) -> MplFigure:
    fig = MplFigure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ls_map = {"dash": "--", "dot": ":", "dashdot": "-."}
    for line in d.lines:
        if line.style == "markers":
            ax.scatter(line.x, line.y, s=10, color=to_rgb(line.colour), alpha=0.6, label=line.name)
        else:
            fmt = ls_map.get(line.style or "", "-")
            marker = "o" if d.markers else None
            ax.plot(line.x, line.y, fmt, marker=marker, ms=3, color=to_rgb(line.colour), label=line.name)
    for label, v in d.hlines.items():
        ax.axhline(v, color="#777", ls=":", lw=1)
        ax.annotate(label, xy=(1.0, v), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7)
    for label, v in d.vlines.items():
        ax.axvline(v, color="#777", ls=":", lw=1)
        ax.annotate(label, xy=(v, 1.0), xycoords=("data", "axes fraction"), ha="left", va="top", fontsize=7)
    for on, axis, scale in ((d.log_x, ax.xaxis, ax.set_xscale), (d.log_y, ax.yaxis, ax.set_yscale)):
        if on:
            scale("log")
            lo, hi = axis.get_view_interval()
            if lo > 0 and hi / lo > 20:  # beyond ~1.3 decades matplotlib's labelled minor ticks collide
                axis.set_minor_formatter(ticker.NullFormatter())
                if hi / lo <= 1000:  # a few decades: label 1, 2, 5 × 10^k in plain numbers
                    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(d.xlabel)
    ax.set_ylabel(d.ylabel)
    if d.lines:
        ax.legend(fontsize=7)
    if d.title:
        ax.set_title(d.title, fontsize=10)
    return fig


lines, lines_mpl = figure_kind("lines", _lines, _lines_plotly, _lines_mpl)


# ---- metric over two sweep axes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Heatmap:
    Z: np.ndarray  # [y, x]
    xe: np.ndarray  # cell edges
    ye: np.ndarray
    log_x: bool
    log_y: bool
    diverging: bool
    zrange: tuple[float, float] | None  # colour limits (symmetric about 0 when diverging); None: the data's
    xlabel: str
    ylabel: str
    zlabel: str
    title: str | None


def _heatmap2d(
    x: Float[Any, " x"],
    y: Float[Any, " y"],
    Z: Float[Any, "y x"],
    *,
    xlabel: str = "",
    ylabel: str = "",
    zlabel: str = "",
    log_x: bool = True,
    log_y: bool = True,
    diverging: bool = False,
    zrange: tuple[float, float] | None = None,
    title: str | None = None,
) -> Heatmap:
    """A metric ``Z[y, x]`` over two sweep axes; ``diverging`` uses a 0-centred blue–red scale."""
    x, y, Z = as_np(x), as_np(y), as_np(Z)
    if Z.shape != (len(y), len(x)):
        raise ValueError(f"Z must be [len(y), len(x)] = [{len(y)}, {len(x)}], got {Z.shape}.")
    if diverging:
        lim = float(np.nanmax(np.abs(Z))) if zrange is None else max(abs(zrange[0]), abs(zrange[1]))
        zrange = (-lim, lim)
    xe, ye = edges(x, log_x), edges(y, log_y)
    return Heatmap(Z, xe, ye, log_x, log_y, diverging, zrange, xlabel, ylabel, zlabel, title)


def _heatmap2d_plotly(d: Heatmap) -> go.Figure:
    kw: dict[str, Any] = dict(colorscale=DIVERGING if d.diverging else SEQUENTIAL)
    if d.zrange is not None:
        kw.update(zmin=d.zrange[0], zmax=d.zrange[1])
    if d.diverging:
        kw.update(zmid=0)
    fig = go.Figure(
        go.Heatmap(
            x=d.xe,
            y=d.ye,
            z=d.Z,
            colorbar=dict(title=d.zlabel),
            name=d.zlabel or "value",
            hovertemplate="%{x:.3g}, %{y:.3g}: %{z:.4g}<extra></extra>",
            **kw,
        )
    )
    fig.update_xaxes(type="log" if d.log_x else "linear", title=d.xlabel, range=axis_range(d.xe, d.log_x))
    fig.update_yaxes(type="log" if d.log_y else "linear", title=d.ylabel, range=axis_range(d.ye, d.log_y))
    fig.update_layout(height=420, width=560, title=d.title, margin=dict(l=60, r=20, t=60 if d.title else 30, b=50))
    return fig


def _heatmap2d_mpl(d: Heatmap) -> MplFigure:
    fig = MplFigure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.subplots()
    kw: dict[str, Any] = dict(cmap=DIVERGING_MPL if d.diverging else SEQUENTIAL_MPL)
    if d.zrange is not None:
        kw.update(vmin=d.zrange[0], vmax=d.zrange[1])
    mesh = ax.pcolormesh(d.xe, d.ye, d.Z, shading="flat", **kw)
    fig.colorbar(mesh, ax=ax, label=d.zlabel)
    if d.log_x:
        ax.set_xscale("log")
    if d.log_y:
        ax.set_yscale("log")
    ax.set_xlabel(d.xlabel)
    ax.set_ylabel(d.ylabel)
    if d.title:
        ax.set_title(d.title)
    return fig


heatmap2d, heatmap2d_mpl = figure_kind("heatmap2d", _heatmap2d, _heatmap2d_plotly, _heatmap2d_mpl)
