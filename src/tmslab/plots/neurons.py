"""Privileged-basis figures (paper §2.9): neuron stack plots and W as a neurons × features matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from matplotlib.figure import Figure as MplFigure

from tmslab.plots._common import (
    DIVERGING,
    DIVERGING_MPL,
    Grid,
    figure_kind,
    grid,
    mpl_grid,
    one_colour_each,
    plotly_grid,
    stack3,
    suptitle,
    to_rgb,
    viridis,
)

# ---- neuron stack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stacks:
    W: list[np.ndarray]  # per model, [neurons, features] with the neurons in display order
    neuron_ids: list[np.ndarray]  # per model, the original index of each displayed neuron
    colours: list[str]  # per feature
    grid: Grid
    title: str | None


def _neuron_stack(
    W: Float[Any, "instances neurons features"],
    titles: Sequence[str] | None = None,
    *,
    feature_colors: Sequence[str] | None = None,
    order: str | None = None,
    ncols: int | None = None,
    title: str | None = None,
) -> Stacks:
    """Neuron stack plot (paper §2.9): one column per neuron, each weight W[neuron, feature] a rectangle of
    height |w| coloured by feature (default viridis by feature index = importance rank); positive weights
    stack up, negative ones down. ``order='largest-feature'`` sorts neurons by their largest feature."""
    W = stack3(W)
    k, m, n = W.shape
    colours = one_colour_each(feature_colors, n, lambda n: viridis(np.arange(n), 0, max(n - 1, 1)))
    if order not in (None, "largest-feature"):
        raise ValueError(f"order must be None or 'largest-feature', got {order!r}.")
    orders = [
        # neurons sorted by the index (= importance rank) of their largest-magnitude feature
        np.lexsort((-np.abs(Wp).max(1), np.abs(Wp).argmax(1))) if order else np.arange(m)
        for Wp in W
    ]
    shown = [Wp[o] for Wp, o in zip(W, orders, strict=True)]
    return Stacks(shown, orders, colours, grid(k, titles, "model", ncols, 4), title)


def _neuron_stack_plotly(d: Stacks) -> go.Figure:
    g = d.grid
    m = len(d.neuron_ids[0])
    fig = plotly_grid(g, horizontal_spacing=0.04, vertical_spacing=0.1)
    for p, Wp in enumerate(d.W):
        for f, colour in enumerate(d.colours):
            fig.add_trace(
                go.Bar(
                    x=list(range(m)),
                    y=Wp[:, f],
                    name=f"feature {f}",
                    legendgroup=f"f{f}",
                    showlegend=(p == 0 and len(d.colours) <= 20),
                    marker=dict(color=colour, line=dict(color="white", width=0.3)),
                    customdata=d.neuron_ids[p],
                    hovertemplate=f"feature {f}<br>neuron %{{customdata}}<br>w = %{{y:.3f}}<extra></extra>",
                ),
                **g.cell(p),
            )
    fig.update_layout(
        barmode="relative",
        bargap=0.15,
        height=300 * g.rows + 60,
        width=max(480, 60 + g.cols * max(220, 28 * m)),
        title=d.title,
        plot_bgcolor="white",
        margin=dict(l=50, r=20, t=60 if d.title else 40, b=40),
    )
    fig.update_xaxes(title="neuron", showticklabels=m <= 40)
    fig.update_yaxes(zeroline=True, zerolinecolor="#333", zerolinewidth=1)
    return fig


def _neuron_stack_mpl(d: Stacks) -> MplFigure:
    g = d.grid
    m = len(d.neuron_ids[0])
    fig = MplFigure(figsize=(g.cols * max(2.4, 0.25 * m), 2.8 * g.rows), layout="constrained")
    rgb = [to_rgb(c) for c in d.colours]
    bar = dict(edgecolor="white", linewidth=0.3, width=0.85)
    for p, ax in enumerate(mpl_grid(fig, g)):
        up, down = np.zeros(m), np.zeros(m)
        for f, colour in enumerate(rgb):
            w = d.W[p][:, f]
            pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
            ax.bar(np.arange(m), pos, bottom=up, color=colour, **bar)
            ax.bar(np.arange(m), neg, bottom=down, color=colour, **bar)
            up, down = up + pos, down + neg
        ax.axhline(0, color="#333", lw=0.8)
        ax.set_xlabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_title(g.titles[p], fontsize=8)
    return suptitle(fig, d.title)


neuron_stack, neuron_stack_mpl = figure_kind("neuron_stack", _neuron_stack, _neuron_stack_plotly, _neuron_stack_mpl)


# ---- W as a matrix -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matrices:
    W: np.ndarray  # [models, neurons, features]
    lim: float  # symmetric colour limit max|W|
    grid: Grid
    title: str | None


def _weight_matrix(
    W: Float[Any, "instances neurons features"],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    title: str | None = None,
) -> Matrices:
    """W (neurons × features) per model on a 0-centred diverging scale, symmetric range max|W| (paper §2.9)."""
    W = stack3(W)
    return Matrices(W, float(np.abs(W).max()) or 1.0, grid(len(W), titles, "model", ncols, 4), title)


def _weight_matrix_plotly(d: Matrices) -> go.Figure:
    g, (_, m, n) = d.grid, d.W.shape
    fig = plotly_grid(g, horizontal_spacing=0.04, vertical_spacing=0.12)
    for p, Wp in enumerate(d.W):
        fig.add_trace(
            go.Heatmap(
                z=Wp,
                colorscale=DIVERGING,
                zmin=-d.lim,
                zmax=d.lim,
                zmid=0,
                showscale=(p == 0),
                colorbar=dict(title="weight"),
                name=f"W {p}",
                hovertemplate="neuron %{y}, feature %{x}: %{z:.3f}<extra></extra>",
            ),
            **g.cell(p),
        )
    fig.update_yaxes(autorange="reversed", title="neuron")
    fig.update_xaxes(title="feature")
    fig.update_layout(
        height=max(260, 14 * m + 120) * g.rows,
        width=max(420, g.cols * max(240, 10 * n) + 120),
        title=d.title,
        margin=dict(l=60, r=20, t=60 if d.title else 40, b=40),
    )
    return fig


def _weight_matrix_mpl(d: Matrices) -> MplFigure:
    g, (_, m, n) = d.grid, d.W.shape
    size = (g.cols * max(2.6, 0.12 * n) + 0.8, g.rows * max(2.2, 0.15 * m + 0.8))
    fig = MplFigure(figsize=size, layout="constrained")
    axes = mpl_grid(fig, g)
    for ax, Wp, panel_title in zip(axes, d.W, g.titles, strict=True):
        im = ax.imshow(Wp, cmap=DIVERGING_MPL, vmin=-d.lim, vmax=d.lim, interpolation="nearest", aspect="auto")
        ax.set_title(panel_title, fontsize=8)
        ax.set_xlabel("feature", fontsize=7)
        ax.set_ylabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes, label="weight", shrink=0.8)
    return suptitle(fig, d.title)


weight_matrix, weight_matrix_mpl = figure_kind(
    "weight_matrix", _weight_matrix, _weight_matrix_plotly, _weight_matrix_mpl
)
