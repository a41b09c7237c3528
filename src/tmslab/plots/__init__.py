"""Figures for the report: every kind comes as an interactive plotly figure and a static matplotlib one.

Conventions
-----------
* Inputs are plain tensors or arrays (torch tensors are detached and moved to the CPU); weights use the
  on-disk layout of `tmslab.models`: ``W`` [instances, hidden, features] (column ``W[k, :, i]`` is feature
  i's direction), ``b`` [instances, features].
* ``name(...)`` returns a ``plotly.graph_objects.Figure``; ``name_mpl(...)`` takes the same arguments and
  returns a ``matplotlib.figure.Figure`` (built without pyplot, so nothing global is touched and nothing is
  shown). `figure_pair(name, ...)` builds both from one preparation of the data; `save_figure(fig, fig_mpl,
  stem)` writes ``stem.html`` (a plotly fragment without plotly.js, for embedding in the report) and
  ``stem.png``, each atomically.
* Plotly PNG export (kaleido) needs Chrome, so static images always come from matplotlib.
* No ``$`` in any label: plotly would hand it to MathJax, which the offline report does not load.

Layout
------
One module per figure family — `geometry` (arrows, WᵀW, dimensions per feature, feature graphs), `phase`
(phase diagrams), `charts` (lines and heatmaps over sweep axes), `neurons` (neuron stacks, weight matrices),
`dynamics` (3-D snapshots, D_i traces over training) — and in each, per kind, one function that prepares
the data (arrays, labels, colours, panel grid) and two renderers of it. `_common.figure_kind` registers a
kind and makes its two public functions, so a new figure is one preparation + two renderers in its family's
module; `figure_pair` finds it by name (re-export its two functions below for `tmslab.plots.name` access).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from matplotlib.figure import Figure as MplFigure

from tmslab.plots._common import REGISTRY
from tmslab.plots.charts import heatmap2d, heatmap2d_mpl, lines, lines_mpl
from tmslab.plots.dynamics import points_3d, points_3d_mpl, traces, traces_mpl
from tmslab.plots.geometry import (
    POLYTOPE_FRACTIONS,
    arrows_2d,
    arrows_2d_mpl,
    dimensions_per_feature,
    dimensions_per_feature_mpl,
    feature_dimensionality,
    feature_geometry_graph,
    feature_geometry_graph_mpl,
    gram_heatmaps,
    gram_heatmaps_mpl,
    superposition,
)
from tmslab.plots.neurons import neuron_stack, neuron_stack_mpl, weight_matrix, weight_matrix_mpl
from tmslab.plots.phase import phase_diagram, phase_diagram_mpl
from tmslab.plots.save import plotly_fragment, save_figure

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

#: Every figure kind `figure_pair` accepts.
KINDS: tuple[str, ...] = tuple(REGISTRY)


def figure_pair(kind: str, *args: Any, **kwargs: Any) -> tuple[go.Figure, MplFigure]:
    """Both versions of one figure kind (a name in `KINDS`) from the same arguments, prepared once."""
    if kind not in REGISTRY:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    return REGISTRY[kind].pair(*args, **kwargs)
