"""Feature geometry (paper §2.1, §2.6): arrows in the plane, WᵀW with norms and biases, dimensions per
feature, and feature geometry graphs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from matplotlib import cm
from matplotlib import colors as mcolors
from matplotlib.figure import Figure as MplFigure
from plotly.subplots import make_subplots

from tmslab import metrics
from tmslab.plots._common import (
    DIVERGING,
    DIVERGING_MPL,
    PANEL_IN,
    PANEL_PX,
    SEQUENTIAL,
    Grid,
    as_np,
    axis_suffix,
    figure_kind,
    grid,
    mpl_grid,
    panel_titles,
    per_instance,
    plotly_grid,
    stack3,
    suptitle,
    viridis,
)

#: Guide lines of the dimensions-per-feature plot (paper-spec §2.6.2): value -> label.
POLYTOPE_FRACTIONS: dict[float, str] = {
    3 / 4: "3/4 tetrahedron",
    2 / 3: "2/3 triangle",
    1 / 2: "1/2 antipodal pair",
    2 / 5: "2/5 pentagon",
    3 / 8: "3/8 square antiprism",
    1 / 3: "1/3 hexagon",
}


# ---- metrics used for colouring (the canonical definitions in tmslab.metrics) ----------------------


def superposition(W: Float[Any, "instances hidden features"]) -> Float[np.ndarray, "instances features"]:
    """Σ_{j≠i} (Ŵ_i·W_j)² per feature (paper-spec §2.3), as numpy."""
    return metrics.superposition(torch.as_tensor(stack3(W))).numpy()


def feature_dimensionality(W: Float[Any, "instances hidden features"]) -> Float[np.ndarray, "instances features"]:
    """D_i per feature (paper-spec §2.6.2), as numpy."""
    return metrics.feature_dimensionality(torch.as_tensor(stack3(W))).numpy()


# ---- 1. arrows in the plane ------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrows:
    W: np.ndarray  # [instances, 2, features]
    importance: np.ndarray  # [instances, features]
    vmin: float  # colour range of the importances
    vmax: float
    grid: Grid
    lim: float
    title: str | None


def _arrows_2d(
    W: Float[Any, "instances 2 features"],
    importance: Float[Any, " features"] | Float[Any, "instances features"] | None = None,
    titles: Sequence[str] | None = None,
    *,
    lim: float = 1.5,
    ncols: int | None = None,
    title: str | None = None,
) -> Arrows:
    """Each instance's feature directions W_i as arrows from the origin, coloured by importance (paper §2.1)."""
    W = stack3(W)
    k, m, n = W.shape
    if m != 2:
        raise ValueError(f"arrows_2d needs a 2-dimensional hidden space, got hidden = {m}.")
    imp = per_instance(np.ones(n) if importance is None else importance, k, n, "importance")
    vmin, vmax = float(imp.min()), float(imp.max())
    vmax = vmax if vmax > vmin else vmin + 1  # equal importances: all at the low end of the scale
    return Arrows(W, imp, vmin, vmax, grid(k, titles, "instance", ncols, default=6), lim, title)


def _arrows_2d_plotly(d: Arrows) -> go.Figure:
    g, n = d.grid, d.W.shape[2]
    fig = plotly_grid(g, horizontal_spacing=0.02, vertical_spacing=0.08)
    for p in range(g.k):
        colours = viridis(d.importance[p], d.vmin, d.vmax)
        for i in range(n):
            fig.add_trace(
                go.Scatter(
                    x=[0, d.W[p, 0, i]],
                    y=[0, d.W[p, 1, i]],
                    mode="lines+markers",
                    name=f"feature {i}",
                    legendgroup=f"f{i}",
                    showlegend=(p == 0),
                    line=dict(color=colours[i], width=2),
                    marker=dict(size=[0, 7], color=colours[i]),
                    hovertemplate=(
                        f"feature {i}<br>importance {d.importance[p, i]:.3g}"
                        "<br>W = (%{x:.3f}, %{y:.3f})<extra></extra>"
                    ),
                ),
                **g.cell(p),
            )
        ax = axis_suffix(p)
        axis = dict(range=[-d.lim, d.lim], zeroline=True, zerolinecolor="#888", showgrid=False, showticklabels=False)
        fig.layout[f"xaxis{ax}"].update(**axis)
        fig.layout[f"yaxis{ax}"].update(**axis, scaleanchor=f"x{ax}", scaleratio=1)
    fig.update_layout(
        height=PANEL_PX * g.rows + 60,
        width=max(420, int(PANEL_PX * 0.8 * g.cols) + 160),
        title=d.title,
        legend_title_text="colour = importance",
        plot_bgcolor="white",
        margin=dict(l=20, r=20, t=60 if d.title else 40, b=20),
    )
    return fig


def _arrows_2d_mpl(d: Arrows) -> MplFigure:
    g, n = d.grid, d.W.shape[2]
    fig = MplFigure(figsize=(PANEL_IN * 0.8 * g.cols, PANEL_IN * 0.8 * g.rows + 0.4), layout="constrained")
    axes = mpl_grid(fig, g)
    norm = mcolors.Normalize(d.vmin, d.vmax)
    for p, ax in enumerate(axes):
        for i in range(n):
            col = cm.viridis(norm(d.importance[p, i]))
            ax.plot([0, d.W[p, 0, i]], [0, d.W[p, 1, i]], color=col, lw=1.5)
            ax.scatter([d.W[p, 0, i]], [d.W[p, 1, i]], color=[col], s=12, zorder=3)
        ax.set_xlim(-d.lim, d.lim)
        ax.set_ylim(-d.lim, d.lim)
        ax.set_aspect("equal")
        for side in ("left", "bottom"):
            ax.spines[side].set_position("zero")
            ax.spines[side].set_color("#888")
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(g.titles[p], fontsize=8)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="importance", shrink=0.8)
    return suptitle(fig, d.title)


arrows_2d, arrows_2d_mpl = figure_kind("arrows_2d", _arrows_2d, _arrows_2d_plotly, _arrows_2d_mpl)


# ---- 2. WᵀW, b and norm bars -----------------------------------------------------------------------


@dataclass(frozen=True)
class Gram:
    gram: np.ndarray  # [models, features, features]
    b: np.ndarray | None  # [models, features]
    norms: np.ndarray  # ‖W_i‖ [models, features]
    sup: np.ndarray  # superposition [models, features]
    titles: list[str]
    vline_at: int | None
    title: str | None

    @property
    def per(self) -> int:
        """Grid columns per model: WᵀW, and b beside it when given."""
        return 2 if self.b is not None else 1

    @property
    def norm_max(self) -> float:
        return max(1.2, float(self.norms.max()) * 1.05)


def _gram_heatmaps(
    W: Float[Any, "instances hidden features"],
    b: Float[Any, "instances features"] | None = None,
    titles: Sequence[str] | None = None,
    *,
    title: str | None = None,
    vline_at: int | None = None,
) -> Gram:
    """Per model (one column each): feature-norm bars coloured by superposition (top), WᵀW and b heatmaps
    on a diverging scale fixed to [−1, 1] (bottom). Features in the given order (most important first).
    ``vline_at``: draw a separator after this many features (the notebook marks feature m)."""
    W = stack3(W)
    k, _, n = W.shape
    gram = np.einsum("khi,khj->kij", W, W)
    bb = None if b is None else per_instance(b, k, n, "b")
    norms = np.linalg.norm(W, axis=1)
    return Gram(gram, bb, norms, superposition(W), panel_titles(titles, k, "model"), vline_at, title)


def _gram_heatmaps_plotly(d: Gram) -> go.Figure:
    k, n, _ = d.gram.shape
    per = d.per
    specs = [sum(([{"colspan": per}] + [None] * (per - 1) for _ in range(k)), []), [{} for _ in range(per * k)]]
    fig = make_subplots(
        rows=2,
        cols=per * k,
        specs=specs,
        column_widths=([0.86, 0.14] if per == 2 else [1.0]) * k,
        row_heights=[0.35, 0.65],
        subplot_titles=d.titles,
        horizontal_spacing=0.015,
        vertical_spacing=0.06,
    )
    feats = list(range(n))
    heat = dict(y=feats, colorscale=DIVERGING, zmin=-1, zmax=1, zmid=0)
    for p in range(k):
        c0 = per * p + 1
        fig.add_trace(
            go.Bar(
                x=d.norms[p],
                y=feats,
                orientation="h",
                name=f"‖W_i‖ {p}",
                showlegend=False,
                # colours resolved here: plotly.js warns on numeric bar colours with a colorscale
                marker=dict(color=viridis(d.sup[p], 0.0, 1.0)),
                customdata=d.sup[p],
                hovertemplate="feature %{y}<br>‖W_i‖ %{x:.3f}<br>superposition %{customdata:.3f}<extra></extra>",
            ),
            row=1,
            col=c0,
        )
        if p == k - 1:  # colour bar for the superposition colours (an empty trace carrying the scale)
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    showlegend=False,
                    hoverinfo="skip",
                    name="superposition scale",
                    marker=dict(
                        color=[0.0],
                        colorscale=SEQUENTIAL,
                        cmin=0,
                        cmax=1,
                        showscale=True,
                        colorbar=dict(title="superposition<br>Σ(Ŵᵢ·Wⱼ)²", len=0.35, y=0.82, x=1.02),
                    ),
                ),
                row=1,
                col=c0,
            )
        fig.add_trace(
            go.Heatmap(
                z=d.gram[p],
                x=feats,
                showscale=(p == k - 1),
                name=f"WᵀW {p}",
                colorbar=dict(title="weight / bias<br>element value", len=0.6, y=0.3, x=1.02),
                hovertemplate="(WᵀW)[%{y}, %{x}] = %{z:.3f}<extra></extra>",
                **heat,
            ),
            row=2,
            col=c0,
        )
        if d.b is not None:
            fig.add_trace(
                go.Heatmap(
                    z=d.b[p][:, None],
                    x=["b"],
                    showscale=False,
                    name=f"b {p}",
                    hovertemplate="b[%{y}] = %{z:.3f}<extra></extra>",
                    **heat,
                ),
                row=2,
                col=c0 + 1,
            )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(range=[0, d.norm_max], row=1)
    fig.update_yaxes(showticklabels=True, row=1, col=1)
    fig.update_yaxes(showticklabels=True, row=2, col=1)
    if d.vline_at is not None:
        for p in range(k):
            fig.add_hline(y=d.vline_at - 0.5, line=dict(color="#444", width=1, dash="dot"), row=1, col=per * p + 1)
    fig.update_layout(
        height=560,
        width=max(500, 170 * k + 160),
        title=d.title,
        plot_bgcolor="white",
        margin=dict(l=40, r=110, t=70 if d.title else 40, b=20),
    )
    return fig


def _gram_heatmaps_mpl(d: Gram) -> MplFigure:
    k, n, _ = d.gram.shape
    per = d.per
    fig = MplFigure(figsize=(1.9 * k + 1.2, 4.6), layout="constrained")
    gs = fig.add_gridspec(2, per * k, width_ratios=([8, 1] if per == 2 else [1]) * k, height_ratios=[1, 2])
    norm01 = mcolors.Normalize(0, 1)
    heat = dict(cmap=DIVERGING_MPL, vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
    im = None
    bar_axes, heat_axes = [], []
    for p in range(k):
        c0 = per * p
        axb = fig.add_subplot(gs[0, c0 : c0 + per])
        bar_axes.append(axb)
        axb.barh(np.arange(n), d.norms[p], color=cm.viridis(norm01(np.clip(d.sup[p], 0, 1))))
        axb.set_ylim(n - 0.5, -0.5)
        axb.set_xlim(0, d.norm_max)
        axb.set_title(d.titles[p], fontsize=8)
        axb.tick_params(labelsize=6)
        if d.vline_at is not None:
            axb.axhline(d.vline_at - 0.5, color="#444", lw=0.8, ls=":")
        if p:
            axb.set_yticks([])
        axg = fig.add_subplot(gs[1, c0])
        heat_axes.append(axg)
        im = axg.imshow(d.gram[p], **heat)
        axg.set_xticks([])
        if p:
            axg.set_yticks([])
        axg.tick_params(labelsize=6)
        if d.b is not None:
            axc = fig.add_subplot(gs[1, c0 + 1])
            axc.imshow(d.b[p][:, None], **heat)
            axc.set_xticks([0], ["b"], fontsize=6)
            axc.set_yticks([])
            heat_axes.append(axc)
    fig.colorbar(cm.ScalarMappable(norm=norm01, cmap="viridis"), ax=bar_axes, label="superposition", shrink=0.9)
    if im is not None:
        fig.colorbar(im, ax=heat_axes, label="weight / bias value", shrink=0.9)
    return suptitle(fig, d.title)


gram_heatmaps, gram_heatmaps_mpl = figure_kind(
    "gram_heatmaps", _gram_heatmaps, _gram_heatmaps_plotly, _gram_heatmaps_mpl
)


# ---- 3. dimensions per feature ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dimensions:
    x: np.ndarray  # 1/(1−S) per point
    dstar: np.ndarray
    features: tuple[np.ndarray, np.ndarray] | None  # every feature's (jittered x, D_i)
    fractions: Mapping[float, str]
    title: str | None


def _jittered(x: np.ndarray, d_i: np.ndarray, jitter: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature points at each x, jittered horizontally by ±jitter of the log-x spacing."""
    logx = np.log(x)
    step = float(np.median(np.abs(np.diff(np.sort(logx))))) if len(x) > 1 else 0.1
    step = step if step > 0 else 0.1
    rng = np.random.default_rng(seed)
    jit = rng.uniform(-jitter, jitter, size=d_i.shape) * step
    xs = np.exp(logx[:, None] + jit)
    return xs.ravel(), d_i.ravel()


def _dimensions_per_feature(
    density: Float[Any, " points"],
    dstar: Float[Any, " points"],
    d_i: Float[Any, "points features"] | None = None,
    *,
    fractions: Mapping[float, str] | None = None,
    jitter: float = 0.1,
    seed: int = 0,
    title: str | None = None,
) -> Dimensions:
    """D* = m/‖W‖²_F against 1/(1−S) (log x, markers), each feature's D_i as small black jittered dots,
    dotted guide lines at the polytope fractions (paper §2.6.1–2.6.2)."""
    x = 1.0 / as_np(density)
    features = None if d_i is None else _jittered(x, as_np(d_i), jitter, seed)
    return Dimensions(x, as_np(dstar), features, POLYTOPE_FRACTIONS if fractions is None else fractions, title)


def _dimensions_per_feature_plotly(d: Dimensions) -> go.Figure:
    fig = go.Figure()
    for v, label in d.fractions.items():
        fig.add_hline(
            y=v,
            line=dict(color="#7b5ea7", width=1, dash="dot"),
            annotation_text=label,
            annotation_position="right",
            annotation_font_size=10,
        )
    if d.features is not None:
        fig.add_trace(
            go.Scatter(
                x=d.features[0],
                y=d.features[1],
                mode="markers",
                name="feature D_i",
                marker=dict(color="black", size=3, opacity=0.5),
                hovertemplate="1/(1−S) %{x:.3g}<br>D_i %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=d.x,
            y=d.dstar,
            mode="lines+markers",
            name="D* = m/‖W‖²_F",
            line=dict(color="#1f77b4", width=2),
            marker=dict(size=6),
            hovertemplate="1/(1−S) %{x:.3g}<br>D* %{y:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="log", title="1/(1−S)")
    fig.update_yaxes(title="dimensions per feature", range=[-0.03, 1.1])
    fig.update_layout(
        height=460,
        width=760,
        title=d.title,
        plot_bgcolor="white",
        margin=dict(l=60, r=170, t=60 if d.title else 30, b=50),
    )
    return fig


def _dimensions_per_feature_mpl(d: Dimensions) -> MplFigure:
    fig = MplFigure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for v, label in d.fractions.items():
        ax.axhline(v, color="#7b5ea7", lw=0.8, ls=":")
        ax.annotate(
            label,
            xy=(1.0, v),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=7,
            va="center",
            color="#7b5ea7",
        )
    if d.features is not None:
        ax.scatter(*d.features, s=2, c="black", alpha=0.5, linewidths=0, label="feature D_i")
    ax.plot(d.x, d.dstar, "o-", ms=4, label="D* = m/‖W‖²_F")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.1)
    ax.set_xlabel("1/(1−S)")
    ax.set_ylabel("dimensions per feature")
    ax.legend(loc="upper right", fontsize=7)
    if d.title:
        ax.set_title(d.title)
    return fig


dimensions_per_feature, dimensions_per_feature_mpl = figure_kind(
    "dimensions_per_feature", _dimensions_per_feature, _dimensions_per_feature_plotly, _dimensions_per_feature_mpl
)


# ---- 4. feature geometry graph ---------------------------------------------------------------------


@dataclass(frozen=True)
class GraphPanel:
    pos: np.ndarray  # node positions [features, 2]
    edges: list[tuple[int, int]]  # i < j with |W_i·W_j| > threshold
    A: np.ndarray  # |W_i·W_j| above the threshold, else 0 [features, features]
    norms: np.ndarray  # ‖W_i‖ [features]


@dataclass(frozen=True)
class Graphs:
    panels: list[GraphPanel]
    dims: np.ndarray  # D_i [models, features]
    grid: Grid
    threshold: float
    title: str | None


def _graph_layout(A: np.ndarray, layout: str, seed: int) -> np.ndarray:
    """Node positions [n, 2]: on a circle ordered by connected component, or a small deterministic
    force-directed layout (Fruchterman–Reingold) in which disconnected tegum factors drift apart."""
    n = A.shape[0]
    # order nodes by component so that each component occupies a contiguous arc
    seen, order = np.zeros(n, bool), []
    for s in range(n):
        if seen[s]:
            continue
        stack = [s]
        seen[s] = True
        while stack:
            u = stack.pop()
            order.append(u)
            for v in np.nonzero(A[u] > 0)[0]:
                if not seen[v]:
                    seen[v] = True
                    stack.append(v)
    theta = 2 * np.pi * np.arange(n) / max(n, 1)
    pos = np.zeros((n, 2))
    pos[order] = np.stack([np.cos(theta), np.sin(theta)], 1)
    if layout == "circle" or n < 3:
        return pos
    if layout != "spring":
        raise ValueError(f"layout must be 'circle' or 'spring', got {layout!r}.")
    rng = np.random.default_rng(seed)
    pos = pos + rng.normal(0, 0.05, pos.shape)
    kopt = 1.0 / math.sqrt(n)
    temp = 0.1
    for _ in range(200):
        d = pos[:, None, :] - pos[None, :, :]
        dist = np.linalg.norm(d, axis=-1) + 1e-9
        rep = (kopt**2 / dist**2)[..., None] * d
        att = -(A * dist / kopt)[..., None] * d
        disp = (rep + att).sum(1)
        length = np.linalg.norm(disp, axis=1, keepdims=True) + 1e-9
        pos = pos + disp / length * np.minimum(length, temp)
        pos = pos - pos.mean(0)
        temp *= 0.98
    return pos / (np.abs(pos).max() + 1e-9)


def _feature_geometry_graph(
    W: Float[Any, "instances hidden features"],
    titles: Sequence[str] | None = None,
    *,
    threshold: float = 0.1,
    layout: str = "circle",
    ncols: int | None = None,
    seed: int = 0,
    title: str | None = None,
) -> Graphs:
    """Feature geometry graphs (paper §2.6.2): nodes = features (colour = D_i, hollow if ‖W_i‖ < 0.1),
    edges where |W_i·W_j| > threshold, drawn in four width/opacity bins by weight. One panel per model;
    disconnected components are tegum factors."""
    W = stack3(W)
    panels = []
    for Wp in W:
        G = np.abs(Wp.T @ Wp)
        np.fill_diagonal(G, 0)
        A = np.where(G > threshold, G, 0.0)
        ii, jj = np.nonzero(np.triu(A))
        edges = list(zip(ii.tolist(), jj.tolist(), strict=True))
        panels.append(GraphPanel(_graph_layout(A, layout, seed), edges, A, np.linalg.norm(Wp, axis=0)))
    g = grid(len(W), titles, "model", ncols, default=4)
    return Graphs(panels, feature_dimensionality(W), g, threshold, title)


def _feature_geometry_graph_plotly(d: Graphs) -> go.Figure:
    g = d.grid
    fig = plotly_grid(g, horizontal_spacing=0.03, vertical_spacing=0.08)
    bins = [(d.threshold, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, np.inf)]
    for p, panel in enumerate(d.panels):
        pos, A = panel.pos, panel.A
        for bi, (lo, hi) in enumerate(bins):
            xs: list[float | None] = []
            ys: list[float | None] = []
            for i, j in panel.edges:
                if lo < A[i, j] <= hi or (bi == 0 and A[i, j] == lo):
                    xs += [pos[i, 0], pos[j, 0], None]
                    ys += [pos[i, 1], pos[j, 1], None]
            if xs:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        hoverinfo="skip",
                        showlegend=False,
                        name=f"|Wᵢ·Wⱼ| in ({lo:g}, {hi:g}]",
                        line=dict(color="#555", width=0.6 + 1.2 * bi),
                        opacity=0.35 + 0.2 * bi,
                    ),
                    **g.cell(p),
                )
        dims, norms = d.dims[p], panel.norms
        fig.add_trace(
            go.Scatter(
                x=pos[:, 0],
                y=pos[:, 1],
                mode="markers",
                showlegend=False,
                name=f"features {p}",
                marker=dict(
                    size=9,
                    color=dims,
                    colorscale=SEQUENTIAL,
                    cmin=0,
                    cmax=1,
                    symbol=["circle" if ok else "circle-open" for ok in norms >= 0.1],
                    line=dict(color="#222", width=0.5),
                    showscale=(p == 0),
                    colorbar=dict(title="D_i", len=0.6),
                ),
                text=[f"feature {i}<br>D_i {dims[i]:.3f}<br>‖W_i‖ {norms[i]:.3f}" for i in range(len(norms))],
                hovertemplate="%{text}<extra></extra>",
            ),
            **g.cell(p),
        )
        ax = axis_suffix(p)
        fig.layout[f"xaxis{ax}"].update(visible=False, range=[-1.2, 1.2])
        fig.layout[f"yaxis{ax}"].update(visible=False, range=[-1.2, 1.2], scaleanchor=f"x{ax}", scaleratio=1)
    fig.update_layout(
        height=PANEL_PX * g.rows + 50,
        width=max(420, PANEL_PX * g.cols + 80),
        title=d.title,
        plot_bgcolor="white",
        margin=dict(l=10, r=10, t=60 if d.title else 40, b=10),
    )
    return fig


def _feature_geometry_graph_mpl(d: Graphs) -> MplFigure:
    g = d.grid
    fig = MplFigure(figsize=(PANEL_IN * g.cols, PANEL_IN * g.rows + 0.3), layout="constrained")
    axes = mpl_grid(fig, g)
    norm01 = mcolors.Normalize(0, 1)
    for p, (ax, panel) in enumerate(zip(axes, d.panels, strict=True)):
        ax.set_axis_off()
        pos, A = panel.pos, panel.A
        for i, j in panel.edges:
            w = min(A[i, j], 1.0)
            ax.plot(pos[[i, j], 0], pos[[i, j], 1], color="#555", lw=0.4 + 2 * w, alpha=0.3 + 0.6 * w, zorder=1)
        learned = panel.norms >= 0.1
        colours = cm.viridis(norm01(d.dims[p]))
        ax.scatter(
            pos[learned, 0], pos[learned, 1], c=colours[learned], s=28, edgecolors="#222", linewidths=0.5, zorder=2
        )
        ax.scatter(
            pos[~learned, 0], pos[~learned, 1], facecolors="none", edgecolors="#222", s=28, linewidths=0.5, zorder=2
        )
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)
        ax.set_aspect("equal")
        ax.set_title(g.titles[p], fontsize=8)
    fig.colorbar(cm.ScalarMappable(norm=norm01, cmap="viridis"), ax=axes, label="D_i", shrink=0.7)
    return suptitle(fig, d.title)


feature_geometry_graph, feature_geometry_graph_mpl = figure_kind(
    "feature_geometry_graph", _feature_geometry_graph, _feature_geometry_graph_plotly, _feature_geometry_graph_mpl
)
