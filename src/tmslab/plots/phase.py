"""Phase diagrams (paper §2.5): the outcome of each (relative importance, density) cell, empirical beside
the theoretical prediction, with theoretical boundaries drawn over both."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float, Int
from matplotlib import colors as mcolors
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Patch
from plotly.subplots import make_subplots

from tmslab.plots._common import as_np, axis_range, edges, figure_kind, suptitle

Boundary = Callable[[np.ndarray], np.ndarray] | np.ndarray | Sequence[Sequence[float]]  # s*(r), or [N, 2] (r, s) points

DEFAULT_OUTCOME_COLORS = ["#dddddd", "#2255bb", "#dd4444", "#003399", "#33a02c", "#ff7f00", "#6a3d9a"]


@dataclass(frozen=True)
class Phase:
    panels: list[tuple[str, np.ndarray]]  # (panel title, outcome codes [density, r])
    labels: list[str]  # outcome code -> name
    colors: list[str]  # outcome code -> colour
    xe: np.ndarray  # cell edges along r
    ye: np.ndarray  # cell edges along density
    boundaries: list[tuple[np.ndarray, np.ndarray]]  # (r, s) curves
    xlabel: str
    ylabel: str
    invert_y: bool
    title: str | None


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
            out.append((rr, as_np(b(rr))))
        else:
            pts = as_np(b)
            out.append((pts[:, 0], pts[:, 1]))
    return out


def _phase_diagram(
    r: Float[Any, " r"],
    density: Float[Any, " s"],
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
) -> Phase:
    """Phase diagram(s) (paper §2.5): outcome code ``z[s, r]`` in ``range(len(labels))`` on log–log axes,
    one categorical colour per outcome (legend), empirical and theoretical side by side. ``boundary``:
    a function s*(r), an [N, 2] array of (r, s) points, or a list of these, drawn dashed on every panel.
    The density axis increases upwards whatever the order of ``density``; ``invert_y`` puts dense at the bottom."""
    r, s = as_np(r), as_np(density)
    panels = [("empirical", as_np(empirical, np.int64))]
    if theoretical is not None:
        panels.append(("theoretical prediction", as_np(theoretical, np.int64)))
    for name, z in panels:
        if z.shape != (len(s), len(r)):
            raise ValueError(
                f"{name} outcome grid must be [len(density), len(r)] = [{len(s)}, {len(r)}], got {z.shape}."
            )
    labels = list(labels)
    colors = list(colors) if colors is not None else DEFAULT_OUTCOME_COLORS[: len(labels)]
    if len(colors) < len(labels):
        raise ValueError(f"need a colour per outcome ({len(labels)}), got {len(colors)}.")
    return Phase(
        panels,
        labels,
        colors[: len(labels)],
        edges(r, log=True),
        edges(s, log=True),
        _boundaries(boundary, r),
        xlabel,
        ylabel,
        invert_y,
        title,
    )


def _phase_diagram_plotly(d: Phase) -> go.Figure:
    C = len(d.labels)
    scale = (
        [[0.0, d.colors[0]], [1.0, d.colors[0]]]
        if C == 1
        else sum(([[c / C, d.colors[c]], [(c + 1) / C, d.colors[c]]] for c in range(C)), [])
    )
    fig = make_subplots(
        rows=1, cols=len(d.panels), subplot_titles=[p[0] for p in d.panels], shared_yaxes=True, horizontal_spacing=0.05
    )
    for p, (name, z) in enumerate(d.panels):
        text = np.asarray(d.labels, dtype=object)[np.clip(z, 0, C - 1)]
        fig.add_trace(
            go.Heatmap(
                x=d.xe,
                y=d.ye,
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
                name=d.labels[c],
                marker=dict(symbol="square", size=12, color=d.colors[c], line=dict(color="#666", width=0.5)),
            )
        )
    for bi, (bx, by) in enumerate(d.boundaries):
        for p in range(len(d.panels)):
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
    fig.update_xaxes(type="log", title=d.xlabel, range=axis_range(d.xe, log=True))
    fig.update_yaxes(type="log", range=axis_range(d.ye, log=True, invert=d.invert_y))
    fig.update_yaxes(title=d.ylabel, row=1, col=1)
    fig.update_layout(
        height=440,
        width=420 * len(d.panels) + 220,
        title=d.title,
        margin=dict(l=60, r=20, t=60 if d.title else 40, b=50),
    )
    return fig


def _phase_diagram_mpl(d: Phase) -> MplFigure:
    C = len(d.labels)
    cmap = mcolors.ListedColormap(d.colors)
    norm = mcolors.BoundaryNorm(np.arange(C + 1) - 0.5, C)
    fig = MplFigure(figsize=(4 * len(d.panels) + 2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(d.panels), squeeze=False, sharey=True).ravel()
    for ax, (name, z) in zip(axes, d.panels, strict=True):
        ax.pcolormesh(d.xe, d.ye, z, cmap=cmap, norm=norm, shading="flat")
        for bx, by in d.boundaries:
            ax.plot(bx, by, "k--", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(d.xe.min(), d.xe.max())
        ax.set_ylim(*((d.ye.max(), d.ye.min()) if d.invert_y else (d.ye.min(), d.ye.max())))
        ax.set_title(name)
        ax.set_xlabel(d.xlabel)
    axes[0].set_ylabel(d.ylabel)
    handles = [Patch(facecolor=d.colors[c], edgecolor="#666", label=d.labels[c]) for c in range(C)]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    return suptitle(fig, d.title)


phase_diagram, phase_diagram_mpl = figure_kind(
    "phase_diagram", _phase_diagram, _phase_diagram_plotly, _phase_diagram_mpl
)
