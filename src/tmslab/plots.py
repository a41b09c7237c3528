"""Figures for the report: every kind comes as an interactive plotly figure and a static matplotlib one.

Conventions
-----------
* Inputs are plain tensors or arrays (torch tensors are detached and moved to the CPU); weights use the
  on-disk layout of `tmslab.models`: ``W`` [instances, hidden, features] (column ``W[k, :, i]`` is feature
  i's direction), ``b`` [instances, features].
* ``name(...)`` returns a ``plotly.graph_objects.Figure``; ``name_mpl(...)`` takes the same arguments and
  returns a ``matplotlib.figure.Figure`` (built without pyplot, so nothing global is touched and nothing is
  shown). `figure_pair(name, ...)` builds both; `save_figure(fig, fig_mpl, stem)` writes ``stem.html`` (a
  plotly fragment without plotly.js, for embedding in the report) and ``stem.png``, each atomically.
* Plotly PNG export (kaleido) needs Chrome, so static images always come from matplotlib.
* No ``$`` in any label: plotly would hand it to MathJax, which the offline report does not load.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from matplotlib import cm, ticker
from matplotlib import colors as mcolors
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Patch
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from tmslab import metrics
from tmslab.io import atomic_write_bytes

__all__ = [
    "POLYTOPE_FRACTIONS",
    "arrows_2d",
    "arrows_2d_mpl",
    "gram_heatmaps",
    "gram_heatmaps_mpl",
    "dimensions_per_feature",
    "dimensions_per_feature_mpl",
    "feature_geometry_graph",
    "feature_geometry_graph_mpl",
    "phase_diagram",
    "phase_diagram_mpl",
    "lines",
    "lines_mpl",
    "heatmap2d",
    "heatmap2d_mpl",
    "neuron_stack",
    "neuron_stack_mpl",
    "weight_matrix",
    "weight_matrix_mpl",
    "points_3d",
    "points_3d_mpl",
    "traces",
    "traces_mpl",
    "superposition",
    "feature_dimensionality",
    "KINDS",
    "figure_pair",
    "plotly_fragment",
    "save_figure",
]

#: Guide lines of the dimensions-per-feature plot (paper-spec §2.6.2): value -> label.
POLYTOPE_FRACTIONS: dict[float, str] = {
    3 / 4: "3/4 tetrahedron",
    2 / 3: "2/3 triangle",
    1 / 2: "1/2 antipodal pair",
    2 / 5: "2/5 pentagon",
    3 / 8: "3/8 square antiprism",
    1 / 3: "1/3 hexagon",
}

DIVERGING = "RdBu_r"  # plotly: blue negative, white 0, red positive
DIVERGING_MPL = "coolwarm"  # the notebook's map
SEQUENTIAL = "Viridis"
SEQUENTIAL_MPL = "viridis"
PANEL_PX = 260  # plotly panel size in pixels
PANEL_IN = 2.6  # matplotlib panel size in inches


# ---- input helpers -------------------------------------------------------------------------------


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy copy of a tensor / array / sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _stack3(W: Any) -> np.ndarray:
    """[instances, hidden, features]; a single [hidden, features] matrix becomes one instance."""
    W = _np(W)
    if W.ndim == 2:
        W = W[None]
    if W.ndim != 3:
        raise ValueError(f"W must be [instances, hidden, features] or [hidden, features], got shape {W.shape}.")
    return W


def _rows(v: Any, k: int, n: int, name: str) -> np.ndarray:
    """Broadcast a per-feature vector ([features] or [instances, features]) to [instances, features]."""
    v = _np(v)
    if v.ndim == 1:
        v = np.broadcast_to(v, (k, v.shape[0]))
    if v.shape != (k, n):
        raise ValueError(f"{name} must be [features] or [instances, features] = [{k}, {n}], got {v.shape}.")
    return v


def _titles(titles: Sequence[str] | None, k: int, prefix: str = "instance") -> list[str]:
    if titles is None:
        return [f"{prefix} {i}" for i in range(k)]
    titles = [str(t) for t in titles]
    if len(titles) != k:
        raise ValueError(f"need {k} titles (one per panel), got {len(titles)}.")
    return titles


def _grid(k: int, ncols: int | None, default: int = 5) -> tuple[int, int]:
    cols = max(1, min(k, ncols or default))
    return math.ceil(k / cols), cols


def _axis_name(i: int) -> str:
    """plotly's name of the i-th (0-based) x/y axis suffix: '', '2', '3', ..."""
    return "" if i == 0 else str(i + 1)


def _viridis(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> list[str]:
    v = np.asarray(values, dtype=float)
    lo = float(np.nanmin(v)) if vmin is None else vmin
    hi = float(np.nanmax(v)) if vmax is None else vmax
    t = np.zeros_like(v) if hi <= lo else np.clip((v - lo) / (hi - lo), 0, 1)
    return sample_colorscale(SEQUENTIAL, list(map(float, t)))


def _feature_palette(n: int) -> list[str]:
    """Consistent categorical colours per feature index (cycled when there are many features)."""
    pal = qualitative.D3 + qualitative.Set2 + qualitative.Dark2
    return [pal[i % len(pal)] for i in range(n)]


def _rgb(c: str) -> tuple[float, float, float]:
    """plotly colour string ('rgb(r, g, b)' or '#hex') -> matplotlib RGB tuple."""
    c = c.strip()
    if c.startswith("rgb"):
        parts = c[c.index("(") + 1 : c.index(")")].split(",")
        return tuple(float(p) / 255.0 for p in parts[:3])  # type: ignore[return-value]
    return mcolors.to_rgb(c)


# ---- metrics used for colouring (the canonical definitions in tmslab.metrics) ----------------------


def superposition(W: Float[Any, "instances hidden features"]) -> Float[np.ndarray, "instances features"]:
    """Σ_{j≠i} (Ŵ_i·W_j)² per feature (paper-spec §2.3), as numpy."""
    return metrics.superposition(torch.as_tensor(_stack3(W))).numpy()


def feature_dimensionality(W: Float[Any, "instances hidden features"]) -> Float[np.ndarray, "instances features"]:
    """D_i per feature (paper-spec §2.6.2), as numpy."""
    return metrics.feature_dimensionality(torch.as_tensor(_stack3(W))).numpy()


# ---- 1. arrows in the plane ------------------------------------------------------------------------


def arrows_2d(
    W: Float[Any, "instances 2 features"],
    importance: Float[Any, "features"] | Float[Any, "instances features"] | None = None,
    titles: Sequence[str] | None = None,
    *,
    lim: float = 1.5,
    ncols: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Each instance's feature directions W_i as arrows from the origin, coloured by importance (paper §2.1)."""
    W = _stack3(W)
    k, m, n = W.shape
    if m != 2:
        raise ValueError(f"arrows_2d needs a 2-dimensional hidden space, got hidden = {m}.")
    imp = _rows(np.ones(n) if importance is None else importance, k, n, "importance")
    rows, cols = _grid(k, ncols, default=6)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=_titles(titles, k), horizontal_spacing=0.02, vertical_spacing=0.08
    )
    for p in range(k):
        r, c = divmod(p, cols)
        colours = _viridis(imp[p], vmin=float(imp.min()), vmax=float(imp.max()))
        for i in range(n):
            x, y = W[p, 0, i], W[p, 1, i]
            fig.add_trace(
                go.Scatter(
                    x=[0, x],
                    y=[0, y],
                    mode="lines+markers",
                    name=f"feature {i}",
                    legendgroup=f"f{i}",
                    showlegend=(p == 0),
                    line=dict(color=colours[i], width=2),
                    marker=dict(size=[0, 7], color=colours[i]),
                    hovertemplate=(
                        f"feature {i}<br>importance {imp[p, i]:.3g}<br>W = (%{{x:.3f}}, %{{y:.3f}})<extra></extra>"
                    ),
                ),
                row=r + 1,
                col=c + 1,
            )
        ax = _axis_name(p)
        fig.layout[f"xaxis{ax}"].update(
            range=[-lim, lim], zeroline=True, zerolinecolor="#888", showgrid=False, showticklabels=False
        )
        fig.layout[f"yaxis{ax}"].update(
            range=[-lim, lim],
            zeroline=True,
            zerolinecolor="#888",
            showgrid=False,
            showticklabels=False,
            scaleanchor=f"x{ax}",
            scaleratio=1,
        )
    fig.update_layout(
        height=PANEL_PX * rows + 60,
        width=max(420, int(PANEL_PX * 0.8 * cols) + 160),
        title=title,
        legend_title_text="colour = importance",
        plot_bgcolor="white",
        margin=dict(l=20, r=20, t=60 if title else 40, b=20),
    )
    return fig


def arrows_2d_mpl(
    W: Float[Any, "instances 2 features"],
    importance: Float[Any, "features"] | Float[Any, "instances features"] | None = None,
    titles: Sequence[str] | None = None,
    *,
    lim: float = 1.5,
    ncols: int | None = None,
    title: str | None = None,
) -> MplFigure:
    W = _stack3(W)
    k, m, n = W.shape
    if m != 2:
        raise ValueError(f"arrows_2d needs a 2-dimensional hidden space, got hidden = {m}.")
    imp = _rows(np.ones(n) if importance is None else importance, k, n, "importance")
    rows, cols = _grid(k, ncols, default=6)
    fig = MplFigure(figsize=(PANEL_IN * 0.8 * cols, PANEL_IN * 0.8 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    norm = mcolors.Normalize(float(imp.min()), float(imp.max()) if imp.max() > imp.min() else float(imp.min()) + 1)
    for p, ax in enumerate(axes):
        if p >= k:
            ax.set_axis_off()
            continue
        for i in range(n):
            col = cm.viridis(norm(imp[p, i]))
            ax.plot([0, W[p, 0, i]], [0, W[p, 1, i]], color=col, lw=1.5)
            ax.scatter([W[p, 0, i]], [W[p, 1, i]], color=[col], s=12, zorder=3)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        for side in ("left", "bottom"):
            ax.spines[side].set_position("zero")
            ax.spines[side].set_color("#888")
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(_titles(titles, k)[p], fontsize=8)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=list(axes[:k]), label="importance", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


# ---- 2. WᵀW, b and norm bars -----------------------------------------------------------------------


def _gram_data(W: Any, b: Any | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    W = _stack3(W)
    k, _, n = W.shape
    gram = np.einsum("khi,khj->kij", W, W)
    bb = None if b is None else _rows(b, k, n, "b")
    return gram, bb, np.linalg.norm(W, axis=1), superposition(W)


def gram_heatmaps(
    W: Float[Any, "instances hidden features"],
    b: Float[Any, "instances features"] | None = None,
    titles: Sequence[str] | None = None,
    *,
    title: str | None = None,
    vline_at: int | None = None,
) -> go.Figure:
    """Per model (one column each): feature-norm bars coloured by superposition (top), WᵀW and b heatmaps
    on a diverging scale fixed to [−1, 1] (bottom). Features in the given order (most important first).
    ``vline_at``: draw a separator after this many features (the notebook marks feature m)."""
    gram, bb, norms, sup = _gram_data(W, b)
    k, n, _ = gram.shape
    per = 2 if bb is not None else 1
    widths = ([0.86, 0.14] if per == 2 else [1.0]) * k
    specs = [sum(([{"colspan": per}] + [None] * (per - 1) for _ in range(k)), []), [{} for _ in range(per * k)]]
    fig = make_subplots(
        rows=2,
        cols=per * k,
        specs=specs,
        column_widths=widths,
        row_heights=[0.35, 0.65],
        subplot_titles=_titles(titles, k, "model"),
        horizontal_spacing=0.015,
        vertical_spacing=0.06,
    )
    feats = list(range(n))
    for p in range(k):
        c0 = per * p + 1
        fig.add_trace(
            go.Bar(
                x=norms[p],
                y=feats,
                orientation="h",
                name=f"‖W_i‖ {p}",
                showlegend=False,
                # colours resolved here: plotly.js warns on numeric bar colours with a colorscale
                marker=dict(color=_viridis(sup[p], 0.0, 1.0)),
                customdata=sup[p],
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
                z=gram[p],
                x=feats,
                y=feats,
                colorscale=DIVERGING,
                zmin=-1,
                zmax=1,
                zmid=0,
                showscale=(p == k - 1),
                name=f"WᵀW {p}",
                colorbar=dict(title="weight / bias<br>element value", len=0.6, y=0.3, x=1.02),
                hovertemplate="(WᵀW)[%{y}, %{x}] = %{z:.3f}<extra></extra>",
            ),
            row=2,
            col=c0,
        )
        if bb is not None:
            fig.add_trace(
                go.Heatmap(
                    z=bb[p][:, None],
                    x=["b"],
                    y=feats,
                    colorscale=DIVERGING,
                    zmin=-1,
                    zmax=1,
                    zmid=0,
                    showscale=False,
                    name=f"b {p}",
                    hovertemplate="b[%{y}] = %{z:.3f}<extra></extra>",
                ),
                row=2,
                col=c0 + 1,
            )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(range=[0, max(1.2, float(norms.max()) * 1.05)], row=1)
    fig.update_yaxes(showticklabels=True, row=1, col=1)
    fig.update_yaxes(showticklabels=True, row=2, col=1)
    if vline_at is not None:
        for p in range(k):
            fig.add_hline(y=vline_at - 0.5, line=dict(color="#444", width=1, dash="dot"), row=1, col=per * p + 1)
    fig.update_layout(
        height=560,
        width=max(500, 170 * k + 160),
        title=title,
        plot_bgcolor="white",
        margin=dict(l=40, r=110, t=70 if title else 40, b=20),
    )
    return fig


def gram_heatmaps_mpl(
    W: Float[Any, "instances hidden features"],
    b: Float[Any, "instances features"] | None = None,
    titles: Sequence[str] | None = None,
    *,
    title: str | None = None,
    vline_at: int | None = None,
) -> MplFigure:
    gram, bb, norms, sup = _gram_data(W, b)
    k, n, _ = gram.shape
    fig = MplFigure(figsize=(1.9 * k + 1.2, 4.6), layout="constrained")
    per = 2 if bb is not None else 1
    gs = fig.add_gridspec(2, per * k, width_ratios=([8, 1] if per == 2 else [1]) * k, height_ratios=[1, 2])
    titles_ = _titles(titles, k, "model")
    norm01 = mcolors.Normalize(0, 1)
    im = None
    bar_axes, heat_axes = [], []
    for p in range(k):
        c0 = per * p
        axb = fig.add_subplot(gs[0, c0 : c0 + per])
        bar_axes.append(axb)
        axb.barh(np.arange(n), norms[p], color=cm.viridis(norm01(np.clip(sup[p], 0, 1))))
        axb.set_ylim(n - 0.5, -0.5)
        axb.set_xlim(0, max(1.2, float(norms.max()) * 1.05))
        axb.set_title(titles_[p], fontsize=8)
        axb.tick_params(labelsize=6)
        if vline_at is not None:
            axb.axhline(vline_at - 0.5, color="#444", lw=0.8, ls=":")
        if p:
            axb.set_yticks([])
        axg = fig.add_subplot(gs[1, c0])
        heat_axes.append(axg)
        im = axg.imshow(gram[p], cmap=DIVERGING_MPL, vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
        axg.set_xticks([])
        if p:
            axg.set_yticks([])
        axg.tick_params(labelsize=6)
        if bb is not None:
            axc = fig.add_subplot(gs[1, c0 + 1])
            axc.imshow(bb[p][:, None], cmap=DIVERGING_MPL, vmin=-1, vmax=1, interpolation="nearest", aspect="auto")
            axc.set_xticks([0], ["b"], fontsize=6)
            axc.set_yticks([])
            heat_axes.append(axc)
    fig.colorbar(cm.ScalarMappable(norm=norm01, cmap="viridis"), ax=bar_axes, label="superposition", shrink=0.9)
    if im is not None:
        fig.colorbar(im, ax=heat_axes, label="weight / bias value", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


# ---- 3. dimensions per feature ---------------------------------------------------------------------


def _jittered(x: np.ndarray, d_i: np.ndarray, jitter: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature points at each x, jittered horizontally by ±jitter of the log-x spacing."""
    logx = np.log(x)
    step = float(np.median(np.abs(np.diff(np.sort(logx))))) if len(x) > 1 else 0.1
    step = step if step > 0 else 0.1
    rng = np.random.default_rng(seed)
    jit = rng.uniform(-jitter, jitter, size=d_i.shape) * step
    xs = np.exp(logx[:, None] + jit)
    return xs.ravel(), d_i.ravel()


def dimensions_per_feature(
    density: Float[Any, "points"],
    dstar: Float[Any, "points"],
    d_i: Float[Any, "points features"] | None = None,
    *,
    fractions: Mapping[float, str] | None = None,
    jitter: float = 0.1,
    seed: int = 0,
    title: str | None = None,
) -> go.Figure:
    """D* = m/‖W‖²_F against 1/(1−S) (log x, markers), each feature's D_i as small black jittered dots,
    dotted guide lines at the polytope fractions (paper §2.6.1–2.6.2)."""
    x = 1.0 / _np(density)
    dstar = _np(dstar)
    fr = POLYTOPE_FRACTIONS if fractions is None else fractions
    fig = go.Figure()
    for v, label in fr.items():
        fig.add_hline(
            y=v,
            line=dict(color="#7b5ea7", width=1, dash="dot"),
            annotation_text=label,
            annotation_position="right",
            annotation_font_size=10,
        )
    if d_i is not None:
        xs, ys = _jittered(x, _np(d_i), jitter, seed)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="feature D_i",
                marker=dict(color="black", size=3, opacity=0.5),
                hovertemplate="1/(1−S) %{x:.3g}<br>D_i %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=dstar,
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
        height=460, width=760, title=title, plot_bgcolor="white", margin=dict(l=60, r=170, t=60 if title else 30, b=50)
    )
    return fig


def dimensions_per_feature_mpl(
    density: Float[Any, "points"],
    dstar: Float[Any, "points"],
    d_i: Float[Any, "points features"] | None = None,
    *,
    fractions: Mapping[float, str] | None = None,
    jitter: float = 0.1,
    seed: int = 0,
    title: str | None = None,
) -> MplFigure:
    x = 1.0 / _np(density)
    fr = POLYTOPE_FRACTIONS if fractions is None else fractions
    fig = MplFigure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for v, label in fr.items():
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
    if d_i is not None:
        xs, ys = _jittered(x, _np(d_i), jitter, seed)
        ax.scatter(xs, ys, s=2, c="black", alpha=0.5, linewidths=0, label="feature D_i")
    ax.plot(x, _np(dstar), "o-", ms=4, label="D* = m/‖W‖²_F")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.1)
    ax.set_xlabel("1/(1−S)")
    ax.set_ylabel("dimensions per feature")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title)
    return fig


# ---- 4. feature geometry graph ---------------------------------------------------------------------


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


def _graph_data(W: Any, threshold: float, layout: str, seed: int):
    W = _stack3(W)
    k, _, n = W.shape
    out = []
    for p in range(k):
        G = np.abs(W[p].T @ W[p])
        np.fill_diagonal(G, 0)
        A = np.where(G > threshold, G, 0.0)
        pos = _graph_layout(A, layout, seed)
        ii, jj = np.nonzero(np.triu(A))
        out.append((pos, list(zip(ii.tolist(), jj.tolist(), strict=True)), A, np.linalg.norm(W[p], axis=0)))
    return out, feature_dimensionality(W)


def feature_geometry_graph(
    W: Float[Any, "instances hidden features"],
    titles: Sequence[str] | None = None,
    *,
    threshold: float = 0.1,
    layout: str = "circle",
    ncols: int | None = None,
    seed: int = 0,
    title: str | None = None,
) -> go.Figure:
    """Feature geometry graphs (paper §2.6.2): nodes = features (colour = D_i, hollow if ‖W_i‖ < 0.1),
    edges where |W_i·W_j| > threshold, drawn in four width/opacity bins by weight. One panel per model;
    disconnected components are tegum factors."""
    data, dims = _graph_data(W, threshold, layout, seed)
    k = len(data)
    rows, cols = _grid(k, ncols, default=4)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=_titles(titles, k, "model"), horizontal_spacing=0.03, vertical_spacing=0.08
    )
    bins = [(threshold, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, np.inf)]
    for p, (pos, edges, A, norms) in enumerate(data):
        r, c = divmod(p, cols)
        for bi, (lo, hi) in enumerate(bins):
            xs: list[float | None] = []
            ys: list[float | None] = []
            for i, j in edges:
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
                    row=r + 1,
                    col=c + 1,
                )
        learned = norms >= 0.1
        fig.add_trace(
            go.Scatter(
                x=pos[:, 0],
                y=pos[:, 1],
                mode="markers",
                showlegend=False,
                name=f"features {p}",
                marker=dict(
                    size=9,
                    color=dims[p],
                    colorscale=SEQUENTIAL,
                    cmin=0,
                    cmax=1,
                    symbol=["circle" if ok else "circle-open" for ok in learned],
                    line=dict(color="#222", width=0.5),
                    showscale=(p == 0),
                    colorbar=dict(title="D_i", len=0.6),
                ),
                text=[f"feature {i}<br>D_i {dims[p, i]:.3f}<br>‖W_i‖ {norms[i]:.3f}" for i in range(len(norms))],
                hovertemplate="%{text}<extra></extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
        ax = _axis_name(p)
        fig.layout[f"xaxis{ax}"].update(visible=False, range=[-1.2, 1.2])
        fig.layout[f"yaxis{ax}"].update(visible=False, range=[-1.2, 1.2], scaleanchor=f"x{ax}", scaleratio=1)
    fig.update_layout(
        height=PANEL_PX * rows + 50,
        width=max(420, PANEL_PX * cols + 80),
        title=title,
        plot_bgcolor="white",
        margin=dict(l=10, r=10, t=60 if title else 40, b=10),
    )
    return fig


def feature_geometry_graph_mpl(
    W: Float[Any, "instances hidden features"],
    titles: Sequence[str] | None = None,
    *,
    threshold: float = 0.1,
    layout: str = "circle",
    ncols: int | None = None,
    seed: int = 0,
    title: str | None = None,
) -> MplFigure:
    data, dims = _graph_data(W, threshold, layout, seed)
    k = len(data)
    rows, cols = _grid(k, ncols, default=4)
    fig = MplFigure(figsize=(PANEL_IN * cols, PANEL_IN * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    norm01 = mcolors.Normalize(0, 1)
    for p, ax in enumerate(axes):
        ax.set_axis_off()
        if p >= k:
            continue
        pos, edges, A, norms = data[p]
        for i, j in edges:
            w = min(A[i, j], 1.0)
            ax.plot(pos[[i, j], 0], pos[[i, j], 1], color="#555", lw=0.4 + 2 * w, alpha=0.3 + 0.6 * w, zorder=1)
        learned = norms >= 0.1
        cols_ = cm.viridis(norm01(dims[p]))
        ax.scatter(
            pos[learned, 0], pos[learned, 1], c=cols_[learned], s=28, edgecolors="#222", linewidths=0.5, zorder=2
        )
        ax.scatter(
            pos[~learned, 0], pos[~learned, 1], facecolors="none", edgecolors="#222", s=28, linewidths=0.5, zorder=2
        )
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)
        ax.set_aspect("equal")
        ax.set_title(_titles(titles, k, "model")[p], fontsize=8)
    fig.colorbar(cm.ScalarMappable(norm=norm01, cmap="viridis"), ax=list(axes[:k]), label="D_i", shrink=0.7)
    if title:
        fig.suptitle(title)
    return fig


# ---- 5. phase diagram ------------------------------------------------------------------------------

Boundary = Callable[[np.ndarray], np.ndarray] | np.ndarray | Sequence[Sequence[float]]  # s*(r), or [N, 2] (r, s) points


def _edges_log(v: np.ndarray) -> np.ndarray:
    """Cell edges for log-spaced centres (geometric midpoints, extrapolated at the ends)."""
    lv = np.log(v)
    if len(v) == 1:
        return np.exp(np.array([lv[0] - 0.5, lv[0] + 0.5]))
    mid = (lv[1:] + lv[:-1]) / 2
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def _log_range(edges: np.ndarray, invert: bool = False) -> list[float]:
    lo, hi = math.log10(float(edges.min())), math.log10(float(edges.max()))
    return [hi, lo] if invert else [lo, hi]


def _boundaries(boundary: Boundary | Sequence[Boundary] | None, r: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    if boundary is None:
        return []
    items = (
        boundary
        if isinstance(boundary, (list, tuple))
        and (len(boundary) == 0 or callable(boundary[0]) or np.ndim(boundary[0]) == 2)
        else [boundary]
    )
    out = []
    rr = np.geomspace(float(r.min()), float(r.max()), 400)
    for b in items:
        if callable(b):
            out.append((rr, _np(b(rr))))
        else:
            pts = _np(b)
            out.append((pts[:, 0], pts[:, 1]))
    return out


DEFAULT_OUTCOME_COLORS = ["#dddddd", "#2255bb", "#dd4444", "#003399", "#33a02c", "#ff7f00", "#6a3d9a"]


def _phase_inputs(r, s, empirical, theoretical, labels, colors):
    r, s = _np(r), _np(s)
    panels = [("empirical", _np(empirical, np.int64))]
    if theoretical is not None:
        panels.append(("theoretical prediction", _np(theoretical, np.int64)))
    for name, z in panels:
        if z.shape != (len(s), len(r)):
            raise ValueError(
                f"{name} outcome grid must be [len(density), len(r)] = [{len(s)}, {len(r)}], got {z.shape}."
            )
    colors = list(colors) if colors is not None else DEFAULT_OUTCOME_COLORS[: len(labels)]
    if len(colors) < len(labels):
        raise ValueError(f"need a colour per outcome ({len(labels)}), got {len(colors)}.")
    return r, s, panels, colors


def phase_diagram(
    r: Float[Any, "r"],
    density: Float[Any, "s"],
    empirical: Int[Any, "s r"],
    theoretical: Int[Any, "s r"] | None,
    labels: Sequence[str],
    *,
    colors: Sequence[str] | None = None,
    boundary: Boundary | Sequence[Boundary] | None = None,
    xlabel: str = "relative importance of the extra feature",
    ylabel: str = "feature density 1−S",
    invert_y: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Phase diagram(s) (paper §2.5): outcome code ``z[s, r]`` in ``range(len(labels))`` on log–log axes,
    one categorical colour per outcome (legend), empirical and theoretical side by side. ``boundary``:
    a function s*(r), an [N, 2] array of (r, s) points, or a list of these, drawn dashed on every panel.
    The density axis increases upwards whatever the order of ``density``; ``invert_y`` puts dense at the bottom."""
    r, s, panels, colors = _phase_inputs(r, density, empirical, theoretical, labels, colors)
    C = len(labels)
    scale = (
        [[0.0, colors[0]], [1.0, colors[0]]]
        if C == 1
        else sum(([[c / C, colors[c]], [(c + 1) / C, colors[c]]] for c in range(C)), [])
    )
    fig = make_subplots(
        rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], shared_yaxes=True, horizontal_spacing=0.05
    )
    xe, ye = _edges_log(r), _edges_log(s)
    for p, (name, z) in enumerate(panels):
        text = np.asarray(labels, dtype=object)[np.clip(z, 0, C - 1)]
        fig.add_trace(
            go.Heatmap(
                x=xe,
                y=ye,
                z=z,
                zmin=-0.5,
                zmax=C - 0.5,
                colorscale=scale,
                showscale=False,
                name=name,
                text=text,
                hovertemplate="r %{x:.3g}<br>density %{y:.3g}<br>%{text}<extra></extra>",
            ),
            row=1,
            col=p + 1,
        )
    for c in range(C):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=labels[c],
                marker=dict(symbol="square", size=12, color=colors[c], line=dict(color="#666", width=0.5)),
            )
        )
    for bi, (bx, by) in enumerate(_boundaries(boundary, r)):
        for p in range(len(panels)):
            fig.add_trace(
                go.Scatter(
                    x=bx,
                    y=by,
                    mode="lines",
                    name="theoretical boundary",
                    legendgroup="boundary",
                    showlegend=(p == 0 and bi == 0),
                    line=dict(color="black", width=1.5, dash="dash"),
                ),
                row=1,
                col=p + 1,
            )
    fig.update_xaxes(type="log", title=xlabel, range=_log_range(xe))
    fig.update_yaxes(type="log", range=_log_range(ye, invert_y))
    fig.update_yaxes(title=ylabel, row=1, col=1)
    fig.update_layout(
        height=440, width=420 * len(panels) + 220, title=title, margin=dict(l=60, r=20, t=60 if title else 40, b=50)
    )
    return fig


def phase_diagram_mpl(
    r: Float[Any, "r"],
    density: Float[Any, "s"],
    empirical: Int[Any, "s r"],
    theoretical: Int[Any, "s r"] | None,
    labels: Sequence[str],
    *,
    colors: Sequence[str] | None = None,
    boundary: Boundary | Sequence[Boundary] | None = None,
    xlabel: str = "relative importance of the extra feature",
    ylabel: str = "feature density 1−S",
    invert_y: bool = False,
    title: str | None = None,
) -> MplFigure:
    r, s, panels, colors = _phase_inputs(r, density, empirical, theoretical, labels, colors)
    C = len(labels)
    cmap = mcolors.ListedColormap(colors[:C])
    norm = mcolors.BoundaryNorm(np.arange(C + 1) - 0.5, C)
    fig = MplFigure(figsize=(4 * len(panels) + 2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True).ravel()
    xe, ye = _edges_log(r), _edges_log(s)
    bounds = _boundaries(boundary, r)
    for ax, (name, z) in zip(axes, panels, strict=False):
        ax.pcolormesh(xe, ye, z, cmap=cmap, norm=norm, shading="flat")
        for bx, by in bounds:
            ax.plot(bx, by, "k--", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(xe.min(), xe.max())
        ax.set_ylim(*((ye.max(), ye.min()) if invert_y else (ye.min(), ye.max())))
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    handles = [Patch(facecolor=colors[c], edgecolor="#666", label=labels[c]) for c in range(C)]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ---- 6. line plots ----------------------------------------------------------------------------------

Series = Mapping[str, Any]  # name -> y (sharing x) or (x, y)


def _series(x: Any | None, series: Series) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for name, v in series.items():
        if isinstance(v, tuple) and len(v) == 2:
            xs, ys = _np(v[0]), _np(v[1])
        else:
            if x is None:
                raise ValueError(f"series {name!r} has no x: pass x or give the series as (x, y).")
            xs, ys = _np(x), _np(v)
        if xs.shape != ys.shape:
            raise ValueError(f"series {name!r}: x has shape {xs.shape} but y has {ys.shape}.")
        out.append((name, xs, ys))
    return out


def lines(
    x: Float[Any, "points"] | None,
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
) -> go.Figure:
    """Metric(s) against x, one trace per series (loss curves, vulnerability vs sparsity, collapsed pairs vs
    density, loss per geometry...). A series is y (sharing ``x``) or its own (x, y); ``dash`` maps a series
    to 'dash'/'dot'/'markers' (markers only, e.g. every restart's loss); ``hlines``/``vlines`` are
    labelled reference lines."""
    fig = go.Figure()
    pal = _feature_palette(len(series))
    for c, (name, xs, ys) in enumerate(_series(x, series)):
        style = (dash or {}).get(name)
        mode = "markers" if style == "markers" else ("lines+markers" if markers else "lines")
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode=mode,
                name=name,
                line=dict(color=pal[c], dash=None if style in (None, "markers") else style),
                marker=dict(
                    size=5 if style == "markers" else 6, color=pal[c], opacity=0.6 if style == "markers" else 1
                ),
            )
        )
    for label, v in (hlines or {}).items():
        fig.add_hline(y=v, line=dict(color="#777", dash="dot", width=1), annotation_text=label)
    for label, v in (vlines or {}).items():
        fig.add_vline(x=v, line=dict(color="#777", dash="dot", width=1), annotation_text=label)
    fig.update_xaxes(type="log" if log_x else "linear", title=xlabel)
    fig.update_yaxes(type="log" if log_y else "linear", title=ylabel)
    fig.update_layout(height=400, width=680, title=title, margin=dict(l=60, r=20, t=60 if title else 30, b=50))
    return fig


def lines_mpl(
    x: Float[Any, "points"] | None,
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
) -> MplFigure:
    fig = MplFigure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ls_map = {"dash": "--", "dot": ":", "dashdot": "-."}
    pal = _feature_palette(len(series))
    for c, (name, xs, ys) in enumerate(_series(x, series)):
        style = (dash or {}).get(name)
        if style == "markers":
            ax.scatter(xs, ys, s=10, color=pal[c], alpha=0.6, label=name)
        else:
            ax.plot(
                xs, ys, ls_map.get(style or "", "-"), marker="o" if markers else None, ms=3, color=pal[c], label=name
            )
    for label, v in (hlines or {}).items():
        ax.axhline(v, color="#777", ls=":", lw=1)
        ax.annotate(label, xy=(1.0, v), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7)
    for label, v in (vlines or {}).items():
        ax.axvline(v, color="#777", ls=":", lw=1)
        ax.annotate(label, xy=(v, 1.0), xycoords=("data", "axes fraction"), ha="left", va="top", fontsize=7)
    for on, axis, scale in ((log_x, ax.xaxis, ax.set_xscale), (log_y, ax.yaxis, ax.set_yscale)):
        if on:
            scale("log")
            lo, hi = axis.get_view_interval()
            if lo > 0 and hi / lo > 20:  # beyond ~1.3 decades matplotlib's labelled minor ticks collide
                axis.set_minor_formatter(ticker.NullFormatter())
                if hi / lo <= 1000:  # a few decades: label 1, 2, 5 × 10^k in plain numbers
                    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ---- 7. metric over two sweep axes -----------------------------------------------------------------


def _heat_inputs(x, y, Z):
    x, y, Z = _np(x), _np(y), _np(Z)
    if Z.shape != (len(y), len(x)):
        raise ValueError(f"Z must be [len(y), len(x)] = [{len(y)}, {len(x)}], got {Z.shape}.")
    return x, y, Z


def _edges(v: np.ndarray, log: bool) -> np.ndarray:
    if log:
        return _edges_log(v)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def heatmap2d(
    x: Float[Any, "x"],
    y: Float[Any, "y"],
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
) -> go.Figure:
    """A metric ``Z[y, x]`` over two sweep axes; ``diverging`` uses a 0-centred blue–red scale."""
    x, y, Z = _heat_inputs(x, y, Z)
    xe, ye = _edges(x, log_x), _edges(y, log_y)
    kw: dict[str, Any] = dict(colorscale=DIVERGING if diverging else SEQUENTIAL)
    if diverging:
        lim = float(np.nanmax(np.abs(Z))) if zrange is None else max(abs(zrange[0]), abs(zrange[1]))
        kw.update(zmin=-lim, zmax=lim, zmid=0)
    elif zrange is not None:
        kw.update(zmin=zrange[0], zmax=zrange[1])
    fig = go.Figure(
        go.Heatmap(
            x=xe,
            y=ye,
            z=Z,
            colorbar=dict(title=zlabel),
            name=zlabel or "value",
            hovertemplate="%{x:.3g}, %{y:.3g}: %{z:.4g}<extra></extra>",
            **kw,
        )
    )
    fig.update_xaxes(
        type="log" if log_x else "linear",
        title=xlabel,
        range=_log_range(xe) if log_x else [float(xe.min()), float(xe.max())],
    )
    fig.update_yaxes(
        type="log" if log_y else "linear",
        title=ylabel,
        range=_log_range(ye) if log_y else [float(ye.min()), float(ye.max())],
    )
    fig.update_layout(height=420, width=560, title=title, margin=dict(l=60, r=20, t=60 if title else 30, b=50))
    return fig


def heatmap2d_mpl(
    x: Float[Any, "x"],
    y: Float[Any, "y"],
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
) -> MplFigure:
    x, y, Z = _heat_inputs(x, y, Z)
    fig = MplFigure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.subplots()
    if diverging:
        lim = float(np.nanmax(np.abs(Z))) if zrange is None else max(abs(zrange[0]), abs(zrange[1]))
        kw: dict[str, Any] = dict(cmap=DIVERGING_MPL, vmin=-lim, vmax=lim)
    else:
        kw = dict(cmap=SEQUENTIAL_MPL) | ({} if zrange is None else dict(vmin=zrange[0], vmax=zrange[1]))
    mesh = ax.pcolormesh(_edges(x, log_x), _edges(y, log_y), Z, shading="flat", **kw)
    fig.colorbar(mesh, ax=ax, label=zlabel)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


# ---- 8. neuron stack -------------------------------------------------------------------------------


def _stack_inputs(W, feature_colors, order):
    W = _stack3(W)
    k, m, n = W.shape
    colours = list(feature_colors) if feature_colors is not None else _viridis(np.arange(n), 0, max(n - 1, 1))
    if len(colours) != n:
        raise ValueError(f"need one colour per feature ({n}), got {len(colours)}.")
    orders = []
    for p in range(k):
        if order == "largest-feature":
            # neurons sorted by the index (= importance rank) of their largest-magnitude feature
            top = np.abs(W[p]).argmax(1)
            orders.append(np.lexsort((-np.abs(W[p]).max(1), top)))
        elif order is None:
            orders.append(np.arange(m))
        else:
            raise ValueError(f"order must be None or 'largest-feature', got {order!r}.")
    return W, colours, orders


def neuron_stack(
    W: Float[Any, "instances neurons features"],
    titles: Sequence[str] | None = None,
    *,
    feature_colors: Sequence[str] | None = None,
    order: str | None = None,
    ncols: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Neuron stack plot (paper §2.9): one column per neuron, each weight W[neuron, feature] a rectangle of
    height |w| coloured by feature (default viridis by feature index = importance rank); positive weights
    stack up, negative ones down. ``order='largest-feature'`` sorts neurons by their largest feature."""
    W, colours, orders = _stack_inputs(W, feature_colors, order)
    k, m, n = W.shape
    rows, cols = _grid(k, ncols, default=4)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=_titles(titles, k, "model"), horizontal_spacing=0.04, vertical_spacing=0.1
    )
    for p in range(k):
        r, c = divmod(p, cols)
        Wp = W[p][orders[p]]
        for f in range(n):
            fig.add_trace(
                go.Bar(
                    x=list(range(m)),
                    y=Wp[:, f],
                    name=f"feature {f}",
                    legendgroup=f"f{f}",
                    showlegend=(p == 0 and n <= 20),
                    marker=dict(color=colours[f], line=dict(color="white", width=0.3)),
                    customdata=orders[p],
                    hovertemplate=f"feature {f}<br>neuron %{{customdata}}<br>w = %{{y:.3f}}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
    fig.update_layout(
        barmode="relative",
        bargap=0.15,
        height=300 * rows + 60,
        width=max(480, 60 + cols * max(220, 28 * m)),
        title=title,
        plot_bgcolor="white",
        margin=dict(l=50, r=20, t=60 if title else 40, b=40),
    )
    fig.update_xaxes(title="neuron", showticklabels=m <= 40)
    fig.update_yaxes(zeroline=True, zerolinecolor="#333", zerolinewidth=1)
    return fig


def neuron_stack_mpl(
    W: Float[Any, "instances neurons features"],
    titles: Sequence[str] | None = None,
    *,
    feature_colors: Sequence[str] | None = None,
    order: str | None = None,
    ncols: int | None = None,
    title: str | None = None,
) -> MplFigure:
    W, colours, orders = _stack_inputs(W, feature_colors, order)
    k, m, n = W.shape
    rows, cols = _grid(k, ncols, default=4)
    fig = MplFigure(figsize=(cols * max(2.4, 0.25 * m), 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    rgb = [_rgb(c) for c in colours]
    for p, ax in enumerate(axes):
        if p >= k:
            ax.set_axis_off()
            continue
        Wp = W[p][orders[p]]
        up, down = np.zeros(m), np.zeros(m)
        for f in range(n):
            w = Wp[:, f]
            pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
            ax.bar(np.arange(m), pos, bottom=up, color=rgb[f], edgecolor="white", linewidth=0.3, width=0.85)
            ax.bar(np.arange(m), neg, bottom=down, color=rgb[f], edgecolor="white", linewidth=0.3, width=0.85)
            up, down = up + pos, down + neg
        ax.axhline(0, color="#333", lw=0.8)
        ax.set_xlabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_title(_titles(titles, k, "model")[p], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ---- 9. W as a matrix -------------------------------------------------------------------------------


def weight_matrix(
    W: Float[Any, "instances neurons features"],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """W (neurons × features) per model on a 0-centred diverging scale, symmetric range max|W| (paper §2.9)."""
    W = _stack3(W)
    k, m, n = W.shape
    lim = float(np.abs(W).max()) or 1.0
    rows, cols = _grid(k, ncols, default=4)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=_titles(titles, k, "model"), horizontal_spacing=0.04, vertical_spacing=0.12
    )
    for p in range(k):
        r, c = divmod(p, cols)
        fig.add_trace(
            go.Heatmap(
                z=W[p],
                colorscale=DIVERGING,
                zmin=-lim,
                zmax=lim,
                zmid=0,
                showscale=(p == 0),
                colorbar=dict(title="weight"),
                name=f"W {p}",
                hovertemplate="neuron %{y}, feature %{x}: %{z:.3f}<extra></extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
    fig.update_yaxes(autorange="reversed", title="neuron")
    fig.update_xaxes(title="feature")
    fig.update_layout(
        height=max(260, 14 * m + 120) * rows,
        width=max(420, cols * max(240, 10 * n) + 120),
        title=title,
        margin=dict(l=60, r=20, t=60 if title else 40, b=40),
    )
    return fig


def weight_matrix_mpl(
    W: Float[Any, "instances neurons features"],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    title: str | None = None,
) -> MplFigure:
    W = _stack3(W)
    k, m, n = W.shape
    lim = float(np.abs(W).max()) or 1.0
    rows, cols = _grid(k, ncols, default=4)
    fig = MplFigure(figsize=(cols * max(2.6, 0.12 * n) + 0.8, rows * max(2.2, 0.15 * m + 0.8)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    im = None
    for p, ax in enumerate(axes):
        if p >= k:
            ax.set_axis_off()
            continue
        im = ax.imshow(W[p], cmap=DIVERGING_MPL, vmin=-lim, vmax=lim, interpolation="nearest", aspect="auto")
        ax.set_title(_titles(titles, k, "model")[p], fontsize=8)
        ax.set_xlabel("feature", fontsize=7)
        ax.set_ylabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=list(axes[:k]), label="weight", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


# ---- 10. 3-D feature directions ---------------------------------------------------------------------


def _points_inputs(snapshots, labels, feature_colors):
    S = _np(snapshots)
    if S.ndim != 3 or S.shape[1] != 3:
        raise ValueError(f"snapshots must be [snapshots, 3, features], got {S.shape}.")
    t, _, n = S.shape
    colours = list(feature_colors) if feature_colors is not None else _feature_palette(n)
    if len(colours) != n:
        raise ValueError(f"need one colour per feature ({n}), got {len(colours)}.")
    return S, _titles(labels, t, "snapshot"), colours


def points_3d(
    snapshots: Float[Any, "snapshots 3 features"],
    labels: Sequence[str] | None = None,
    *,
    feature_colors: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Feature directions of an m = 3 model at several snapshots (e.g. training steps): one 3-D scene with a
    slider over snapshots; features keep their colour across snapshots (pass ``feature_colors`` to colour by
    correlated set). Each snapshot is two traces (spokes from the origin, tips)."""
    S, labels_, colours = _points_inputs(snapshots, labels, feature_colors)
    t, _, n = S.shape
    lim = max(1.0, float(np.linalg.norm(S, axis=1).max())) * 1.1
    fig = go.Figure()
    for s in range(t):
        xs, ys, zs = [], [], []
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
                marker=dict(size=6, color=colours),
                text=[str(i) for i in range(n)],
                textposition="top center",
                showlegend=False,
                name=labels_[s],
                hovertemplate="feature %{text}<br>(%{x:.2f}, %{y:.2f}, %{z:.2f})<extra></extra>",
            )
        )
    steps = []
    for s in range(t):
        vis = [False] * (2 * t)
        vis[2 * s] = vis[2 * s + 1] = True
        steps.append(dict(method="update", label=labels_[s], args=[{"visible": vis}]))
    axis = dict(range=[-lim, lim], zeroline=True, showbackground=False)
    fig.update_layout(
        sliders=[dict(active=t - 1, steps=steps, currentvalue=dict(prefix=""), pad=dict(t=10))],
        scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="cube"),
        height=560,
        width=620,
        title=title,
        margin=dict(l=0, r=0, t=50 if title else 20, b=0),
    )
    return fig


def points_3d_mpl(
    snapshots: Float[Any, "snapshots 3 features"],
    labels: Sequence[str] | None = None,
    *,
    feature_colors: Sequence[str] | None = None,
    title: str | None = None,
    max_panels: int = 4,
) -> MplFigure:
    """Static version: up to ``max_panels`` evenly spaced snapshots (always the first and last) as 3-D axes."""
    S, labels_, colours = _points_inputs(snapshots, labels, feature_colors)
    t, _, n = S.shape
    pick = np.unique(np.linspace(0, t - 1, min(t, max_panels)).round().astype(int))
    lim = max(1.0, float(np.linalg.norm(S, axis=1).max())) * 1.1
    rgb = [_rgb(c) for c in colours]
    fig = MplFigure(figsize=(3.0 * len(pick), 3.2), layout="constrained")
    for j, s in enumerate(pick):
        ax = fig.add_subplot(1, len(pick), j + 1, projection="3d")
        for i in range(n):
            ax.plot([0, S[s, 0, i]], [0, S[s, 1, i]], [0, S[s, 2, i]], color="#999", lw=1)
        ax.scatter(S[s, 0], S[s, 1], S[s, 2], c=rgb, s=20, depthshade=False)
        for axis_set in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            axis_set(-lim, lim)
        ax.set_box_aspect((1, 1, 1))
        ax.tick_params(labelsize=5)
        ax.set_title(labels_[s], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ---- 11. per-feature D_i over training, above the loss ---------------------------------------------


def traces(
    steps: Float[Any, "steps"],
    d_i: Float[Any, "steps features"],
    loss: Float[Any, "steps"],
    *,
    log_loss: bool = True,
    log_steps: bool = False,
    feature_colors: Sequence[str] | None = None,
    guides: Sequence[float] = (1.0, 1 / 2),
    title: str | None = None,
) -> go.Figure:
    """Learning dynamics (paper §2.7): each feature's D_i over training (one line per feature, top) above the
    loss curve (bottom), sharing the step axis."""
    x, D, L = _np(steps), _np(d_i), _np(loss)
    if D.shape[0] != len(x) or L.shape != x.shape:
        raise ValueError(
            f"d_i must be [steps, features] and loss [steps] for {len(x)} steps; got {D.shape}, {L.shape}."
        )
    n = D.shape[1]
    colours = list(feature_colors) if feature_colors is not None else _feature_palette(n)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.05)
    for i in range(n):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=D[:, i],
                mode="lines",
                name=f"feature {i}",
                line=dict(color=colours[i], width=1.2),
                showlegend=n <= 20,
                hovertemplate=f"feature {i}<br>step %{{x}}<br>D_i %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(go.Scatter(x=x, y=L, mode="lines", name="loss", line=dict(color="black", width=1.5)), row=2, col=1)
    for g in guides:
        fig.add_hline(y=g, line=dict(color="#999", dash="dot", width=1), row=1, col=1)
    fig.update_yaxes(title="D_i", range=[-0.05, 1.1], row=1, col=1)
    fig.update_yaxes(title="loss", type="log" if log_loss else "linear", row=2, col=1)
    fig.update_xaxes(type="log" if log_steps else "linear")
    fig.update_xaxes(title="step", row=2, col=1)
    fig.update_layout(height=560, width=760, title=title, margin=dict(l=60, r=20, t=60 if title else 30, b=50))
    return fig


def traces_mpl(
    steps: Float[Any, "steps"],
    d_i: Float[Any, "steps features"],
    loss: Float[Any, "steps"],
    *,
    log_loss: bool = True,
    log_steps: bool = False,
    feature_colors: Sequence[str] | None = None,
    guides: Sequence[float] = (1.0, 1 / 2),
    title: str | None = None,
) -> MplFigure:
    x, D, L = _np(steps), _np(d_i), _np(loss)
    n = D.shape[1]
    colours = list(feature_colors) if feature_colors is not None else _feature_palette(n)
    fig = MplFigure(figsize=(7, 5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    for i in range(n):
        ax1.plot(x, D[:, i], color=_rgb(colours[i]), lw=1)
    for g in guides:
        ax1.axhline(g, color="#999", ls=":", lw=0.8)
    ax1.set_ylim(-0.05, 1.1)
    ax1.set_ylabel("D_i")
    ax2.plot(x, L, color="black", lw=1.2)
    if log_loss:
        ax2.set_yscale("log")
    if log_steps:
        ax2.set_xscale("log")
    ax2.set_ylabel("loss")
    ax2.set_xlabel("step")
    if title:
        fig.suptitle(title)
    return fig


# ---- pairs and saving -------------------------------------------------------------------------------

_KINDS: dict[str, tuple[Callable[..., go.Figure], Callable[..., MplFigure]]] = {
    name: (globals()[name], globals()[name + "_mpl"])
    for name in (
        "arrows_2d",
        "gram_heatmaps",
        "dimensions_per_feature",
        "feature_geometry_graph",
        "phase_diagram",
        "lines",
        "heatmap2d",
        "neuron_stack",
        "weight_matrix",
        "points_3d",
        "traces",
    )
}
KINDS: tuple[str, ...] = tuple(_KINDS)


def figure_pair(kind: str, *args: Any, **kwargs: Any) -> tuple[go.Figure, MplFigure]:
    """Both versions of one figure kind (a name in `KINDS`) from the same arguments."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    interactive, static = _KINDS[kind]
    return interactive(*args, **kwargs), static(*args, **kwargs)


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    """Render with `write` into memory, then write the file atomically."""
    buffer = io.StringIO() if "b" not in mode else io.BytesIO()
    write(buffer)
    value = buffer.getvalue()
    atomic_write_bytes(path, value.encode("utf-8") if isinstance(value, str) else value)


def plotly_fragment(fig: go.Figure) -> str:
    """An embeddable ``<div>`` + ``<script>`` for a figure, without plotly.js (the report loads it once)."""
    height = fig.layout.height
    return fig.to_html(
        include_plotlyjs=False,
        full_html=False,
        include_mathjax=False,
        default_height=f"{int(height)}px" if height else "480px",
        default_width="100%",
        config={"responsive": True, "displaylogo": False},
    )


def save_figure(
    fig: go.Figure | None, fig_mpl: MplFigure | None, stem: str | os.PathLike[str], *, dpi: int = 130
) -> tuple[Path | None, Path | None]:
    """Write ``stem.html`` (plotly fragment, no plotly.js) and ``stem.png`` (matplotlib), each through a
    temporary file in the same directory and `os.replace`, so a reader never sees a partial file.
    Either figure may be None (its path is then None). Returns (html_path, png_path)."""
    stem = Path(stem)
    html_path = png_path = None
    if fig is not None:
        html_path = stem.with_name(stem.name + ".html")
        text = plotly_fragment(fig)
        _atomic_write(html_path, lambda fh: fh.write(text), "w")
    if fig_mpl is not None:
        png_path = stem.with_name(stem.name + ".png")
        _atomic_write(png_path, lambda fh: fig_mpl.savefig(fh, format="png", dpi=dpi), "wb")
    return html_path, png_path
