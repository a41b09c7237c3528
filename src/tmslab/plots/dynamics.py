"""Learning dynamics (paper §2.7): feature directions of an m = 3 model across training snapshots, and each
feature's D_i over training above the loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from matplotlib.figure import Figure as MplFigure
from plotly.subplots import make_subplots

from tmslab.plots._common import as_np, feature_palette, figure_kind, one_colour_each, panel_titles, suptitle, to_rgb

# ---- 3-D feature directions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Points:
    S: np.ndarray  # [snapshots, 3, features]
    labels: list[str]  # per snapshot
    colours: list[str]  # per feature
    lim: float  # half-width of the cube shown
    static_picks: np.ndarray  # the snapshots the static version shows
    title: str | None


def _points_3d(
    snapshots: Float[Any, "snapshots 3 features"],
    labels: Sequence[str] | None = None,
    *,
    feature_colors: Sequence[str] | None = None,
    title: str | None = None,
    max_panels: int = 4,
) -> Points:
    """Feature directions of an m = 3 model at several snapshots (e.g. training steps): one 3-D scene with a
    slider over snapshots; features keep their colour across snapshots (pass ``feature_colors`` to colour by
    correlated set). Each snapshot is two traces (spokes from the origin, tips). The static version shows up
    to ``max_panels`` evenly spaced snapshots (always the first and last) as 3-D axes side by side."""
    S = as_np(snapshots)
    if S.ndim != 3 or S.shape[1] != 3:
        raise ValueError(f"snapshots must be [snapshots, 3, features], got {S.shape}.")
    t, _, n = S.shape
    colours = one_colour_each(feature_colors, n, feature_palette)
    picks = np.unique(np.linspace(0, t - 1, min(t, max_panels)).round().astype(int))
    lim = max(1.0, float(np.linalg.norm(S, axis=1).max())) * 1.1
    return Points(S, panel_titles(labels, t, "snapshot"), colours, lim, picks, title)


def _points_3d_plotly(d: Points) -> go.Figure:
    S = d.S
    t, _, n = S.shape
    fig = go.Figure()
    for s in range(t):
        xs, ys, zs = [], [], []  # spokes from the origin, separated by gaps
        for i in range(n):
            xs += [0, S[s, 0, i], None]
            ys += [0, S[s, 1, i], None]
            zs += [0, S[s, 2, i], None]
        fig.add_trace(
            go.Scatter3d(
                x=xs,
                y=ys,
                z=zs,
                mode="lines",
                line=dict(color="#999", width=3),
                hoverinfo="skip",
                showlegend=False,
                visible=(s == t - 1),
                name=f"spokes {s}",
            )
        )
        fig.add_trace(
            go.Scatter3d(
                x=S[s, 0],
                y=S[s, 1],
                z=S[s, 2],
                mode="markers+text",
                visible=(s == t - 1),
                marker=dict(size=6, color=d.colours),
                text=[str(i) for i in range(n)],
                textposition="top center",
                showlegend=False,
                name=d.labels[s],
                hovertemplate="feature %{text}<br>(%{x:.2f}, %{y:.2f}, %{z:.2f})<extra></extra>",
            )
        )
    steps = []
    for s in range(t):
        vis = [False] * (2 * t)
        vis[2 * s] = vis[2 * s + 1] = True
        steps.append(dict(method="update", label=d.labels[s], args=[{"visible": vis}]))
    axis = dict(range=[-d.lim, d.lim], zeroline=True, showbackground=False)
    fig.update_layout(
        sliders=[dict(active=t - 1, steps=steps, currentvalue=dict(prefix=""), pad=dict(t=10))],
        scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube"),
        height=560,
        width=620,
        title=d.title,
        margin=dict(l=0, r=0, t=50 if d.title else 20, b=0),
    )
    return fig


def _points_3d_mpl(d: Points) -> MplFigure:
    S, n = d.S, d.S.shape[2]
    rgb = [to_rgb(c) for c in d.colours]
    fig = MplFigure(figsize=(3.0 * len(d.static_picks), 3.2), layout="constrained")
    for j, s in enumerate(d.static_picks):
        ax = fig.add_subplot(1, len(d.static_picks), j + 1, projection="3d")
        for i in range(n):
            ax.plot([0, S[s, 0, i]], [0, S[s, 1, i]], [0, S[s, 2, i]], color="#999", lw=1)
        ax.scatter(S[s, 0], S[s, 1], S[s, 2], c=rgb, s=20, depthshade=False)
        for axis_set in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            axis_set(-d.lim, d.lim)
        ax.set_box_aspect((1, 1, 1))
        ax.tick_params(labelsize=5)
        ax.set_title(d.labels[s], fontsize=8)
    return suptitle(fig, d.title)


points_3d, points_3d_mpl = figure_kind("points_3d", _points_3d, _points_3d_plotly, _points_3d_mpl)


# ---- per-feature D_i over training, above the loss -------------------------------------------------


@dataclass(frozen=True)
class Traces:
    steps: np.ndarray
    D: np.ndarray  # [steps, features]
    loss: np.ndarray  # [steps]
    colours: list[str]  # per feature
    log_loss: bool
    log_steps: bool
    guides: Sequence[float]
    title: str | None


def _traces(
    steps: Float[Any, " steps"],
    d_i: Float[Any, "steps features"],
    loss: Float[Any, " steps"],
    *,
    log_loss: bool = True,
    log_steps: bool = False,
    feature_colors: Sequence[str] | None = None,
    guides: Sequence[float] = (1.0, 1 / 2),
    title: str | None = None,
) -> Traces:
    """Learning dynamics (paper §2.7): each feature's D_i over training (one line per feature, top) above the
    loss curve (bottom), sharing the step axis."""
    x, D, L = as_np(steps), as_np(d_i), as_np(loss)
    if D.ndim != 2 or D.shape[0] != len(x) or L.shape != x.shape:
        raise ValueError(
            f"d_i must be [steps, features] and loss [steps] for {len(x)} steps; got {D.shape}, {L.shape}."
        )
    colours = one_colour_each(feature_colors, D.shape[1], feature_palette)
    return Traces(x, D, L, colours, log_loss, log_steps, guides, title)


def _traces_plotly(d: Traces) -> go.Figure:
    n = d.D.shape[1]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.05)
    for i, colour in enumerate(d.colours):
        fig.add_trace(
            go.Scatter(
                x=d.steps,
                y=d.D[:, i],
                mode="lines",
                name=f"feature {i}",
                line=dict(color=colour, width=1.2),
                showlegend=n <= 20,
                hovertemplate=f"feature {i}<br>step %{{x}}<br>D_i %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    loss = go.Scatter(x=d.steps, y=d.loss, mode="lines", name="loss", line=dict(color="black", width=1.5))
    fig.add_trace(loss, row=2, col=1)
    for g in d.guides:
        fig.add_hline(y=g, line=dict(color="#999", dash="dot", width=1), row=1, col=1)
    fig.update_yaxes(title="D_i", range=[-0.05, 1.1], row=1, col=1)
    fig.update_yaxes(title="loss", type="log" if d.log_loss else "linear", row=2, col=1)
    fig.update_xaxes(type="log" if d.log_steps else "linear")
    fig.update_xaxes(title="step", row=2, col=1)
    fig.update_layout(height=560, width=760, title=d.title, margin=dict(l=60, r=20, t=60 if d.title else 30, b=50))
    return fig


def _traces_mpl(d: Traces) -> MplFigure:
    fig = MplFigure(figsize=(7, 5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    for i, colour in enumerate(d.colours):
        ax1.plot(d.steps, d.D[:, i], color=to_rgb(colour), lw=1)
    for g in d.guides:
        ax1.axhline(g, color="#999", ls=":", lw=0.8)
    ax1.set_ylim(-0.05, 1.1)
    ax1.set_ylabel("D_i")
    ax2.plot(d.steps, d.loss, color="black", lw=1.2)
    if d.log_loss:
        ax2.set_yscale("log")
    if d.log_steps:
        ax2.set_xscale("log")
    ax2.set_ylabel("loss")
    ax2.set_xlabel("step")
    return suptitle(fig, d.title)


traces, traces_mpl = figure_kind("traces", _traces, _traces_plotly, _traces_mpl)
