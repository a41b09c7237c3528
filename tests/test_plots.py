"""Every figure kind on small synthetic inputs: right figure types, trace / panel counts, colour scales,
log axes, and atomic saving of the html fragment + PNG pair."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure as MplFigure

from tmslab import plots as P

RNG = np.random.default_rng(0)


def n_panels(fig: go.Figure) -> int:
    """Number of 2-D subplots (x axes) of a plotly figure."""
    return sum(1 for key in fig.layout.to_plotly_json() if key.startswith("xaxis"))


def pentagon() -> np.ndarray:
    a = 2 * np.pi * np.arange(5) / 5
    return np.stack([np.cos(a), np.sin(a)])  # [2, 5]


def phase_inputs():
    r = np.geomspace(0.1, 10, 12)
    s = np.geomspace(1, 0.01, 9)
    R, S = np.meshgrid(r, s)
    theo = np.where(S < np.where(R <= 1, 4 * R / (2 + 5 * R), 4 / (5 + 2 * R)), 2, np.where(R < 1, 0, 1))
    return r, s, theo.copy(), theo, ["not learned", "dedicated", "superposition"]


# (kind, args, kwargs, expected plotly trace count, expected 2-D panel count or None)
CASES = {
    "arrows_2d": (
        "arrows_2d",
        (
            torch.tensor(np.stack([pentagon(), 0.5 * pentagon(), np.zeros((2, 5))])),
            0.9 ** np.arange(5),
            ["a", "b", "c"],
        ),
        {},
        3 * 5,
        3,
    ),
    "gram_heatmaps": (
        "gram_heatmaps",
        (RNG.normal(size=(3, 4, 8)), RNG.normal(size=(3, 8))),
        {"vline_at": 4},
        3 * 3 + 1,
        3 * 3,
    ),
    "gram_no_bias": ("gram_heatmaps", (RNG.normal(size=(2, 4, 8)),), {}, 2 * 2 + 1, 2 * 2),
    "dimensions_per_feature": (
        "dimensions_per_feature",
        (np.geomspace(1, 0.05, 6), RNG.random(6), RNG.random((6, 10))),
        {},
        2,
        1,
    ),
    "feature_geometry_graph": (
        "feature_geometry_graph",
        (np.stack([np.eye(3, 6), np.concatenate([np.eye(3), -np.eye(3)], 1)]),),
        {"layout": "spring"},
        None,
        2,
    ),
    "phase_diagram": (
        "phase_diagram",
        phase_inputs(),
        {"boundary": lambda r: np.where(r <= 1, 4 * r / (2 + 5 * r), 4 / (5 + 2 * r))},
        2 + 3 + 2,
        2,
    ),
    "lines": (
        "lines",
        (np.arange(1, 6), {"a": np.arange(5.0) + 1, "b": (np.arange(3) + 1, np.ones(3))}),
        {"log_x": True, "log_y": True, "hlines": {"ref": 1.0}},
        2,
        1,
    ),
    "heatmap2d": (
        "heatmap2d",
        (np.geomspace(1, 100, 5), np.geomspace(0.01, 1, 4), RNG.normal(size=(4, 5))),
        {"diverging": True},
        1,
        1,
    ),
    "neuron_stack": ("neuron_stack", (RNG.normal(size=(2, 5, 7)),), {"order": "largest-feature"}, 2 * 7, 2),
    "weight_matrix": ("weight_matrix", (RNG.normal(size=(2, 5, 7)),), {}, 2, 2),
    "points_3d": ("points_3d", (RNG.normal(size=(4, 3, 6)), [f"step {i}" for i in range(4)]), {}, 2 * 4, 0),
    "traces": ("traces", (np.arange(50), RNG.random((50, 6)), np.exp(-np.arange(50) / 10)), {}, 6 + 1, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_figure_pair_types_counts_and_save(case: str, tmp_path: Path) -> None:
    kind, args, kwargs, n_traces, panels = CASES[case]
    fig, fig_mpl = P.figure_pair(kind, *args, **kwargs)
    assert isinstance(fig, go.Figure)
    assert isinstance(fig_mpl, MplFigure)
    if n_traces is not None:
        assert len(fig.data) == n_traces
    if panels is not None:
        assert n_panels(fig) == panels
    assert len(fig_mpl.axes) >= 1

    html, png = P.save_figure(fig, fig_mpl, tmp_path / "sub" / case)
    assert html == tmp_path / "sub" / f"{case}.html" and png == tmp_path / "sub" / f"{case}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    text = html.read_text()
    assert "plotly-graph-div" in text and "<html" not in text.lower()
    assert "<script src" not in text  # plotly.js is not bundled into fragments
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [f"{case}.html", f"{case}.png"]  # no temp files


def test_mpl_variants_accept_same_arguments() -> None:
    for kind, args, kwargs, *_ in CASES.values():
        assert isinstance(getattr(P, kind + "_mpl")(*args, **kwargs), MplFigure)
    assert set(P.KINDS) == {c[0] for c in CASES.values()}


def test_many_series_use_palette_colours_both_renderers_accept() -> None:
    """Past the first palette (10 series) the colours are plotly 'rgb(…)' strings; matplotlib must get tuples."""
    series = {f"s{i}": [float(i), float(i + 1)] for i in range(14)}
    fig, fig_mpl = P.figure_pair("lines", [1, 2], series)
    assert any(str(t.line.color).startswith("rgb(") for t in fig.data)
    assert len(fig_mpl.axes[0].lines) == 14


def test_failed_save_leaves_old_files_and_no_temp(tmp_path: Path) -> None:
    fig, fig_mpl = P.figure_pair("lines", [1, 2], {"a": [1.0, 2.0]})
    P.save_figure(fig, fig_mpl, tmp_path / "x")
    before = (tmp_path / "x.png").read_bytes()

    class Broken:
        def savefig(self, fh, **_: object) -> None:
            fh.write(b"partial")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        P.save_figure(None, Broken(), tmp_path / "x")  # type: ignore[arg-type]
    assert (tmp_path / "x.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.html", "x.png"]


def test_save_figure_accepts_only_one_kind(tmp_path: Path) -> None:
    fig = P.lines([1, 2], {"a": [1, 2]})
    html, png = P.save_figure(fig, None, tmp_path / "only")
    assert html is not None and html.is_file() and png is None


def test_diverging_heatmaps_centred_at_zero() -> None:
    W, b = RNG.normal(size=(2, 3, 6)), RNG.normal(size=(2, 6))
    heat = [t for t in P.gram_heatmaps(W, b).data if isinstance(t, go.Heatmap)]
    assert heat and all(t.zmid == 0 and t.zmin == -1 and t.zmax == 1 for t in heat)
    for t in P.weight_matrix(W).data:
        assert t.zmid == 0 and t.zmin == -t.zmax
    (t,) = P.heatmap2d([1, 2], [1, 2, 3], np.array([[1, -3], [0, 2], [1, 1]]), diverging=True).data
    assert t.zmid == 0 and t.zmin == -3 and t.zmax == 3
    # static versions: symmetric limits on the diverging map
    mpl = P.gram_heatmaps_mpl(W, b)
    ims = [im for ax in mpl.axes for im in ax.images]
    assert ims and all(im.get_clim() == (-1, 1) for im in ims)


def test_gram_values_and_superposition_colouring() -> None:
    # two antipodal features + one orthogonal + one unused, in m = 2
    W = np.array([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
    # metrics.superposition keeps the notebook's ‖W_i‖ + 1e-5 guard, hence atol
    np.testing.assert_allclose(P.superposition(W)[0], [1, 1, 0, 0], atol=1e-4)
    np.testing.assert_allclose(P.feature_dimensionality(W)[0], [0.5, 0.5, 1, 0])
    fig = P.gram_heatmaps(W, np.zeros((1, 4)))
    gram = next(t for t in fig.data if isinstance(t, go.Heatmap) and t.name.startswith("WᵀW"))
    np.testing.assert_allclose(np.asarray(gram.z), W[0].T @ W[0])
    bars = next(t for t in fig.data if isinstance(t, go.Bar))
    np.testing.assert_allclose(np.asarray(bars.x), [1, 1, 1, 0])
    assert bars.marker.color[0] != bars.marker.color[2]  # superposed vs orthogonal differ in colour


def test_log_axes_where_required() -> None:
    dens = np.geomspace(1, 0.05, 5)
    fig = P.dimensions_per_feature(dens, np.full(5, 0.5), np.full((5, 3), 0.5))
    assert fig.layout.xaxis.type == "log"
    np.testing.assert_allclose(np.asarray(fig.data[-1].x), 1 / dens)
    assert {round(s.y0, 4) for s in fig.layout.shapes} == {round(v, 4) for v in P.POLYTOPE_FRACTIONS}
    ph = P.phase_diagram(*phase_inputs())
    for ax in ("xaxis", "xaxis2", "yaxis", "yaxis2"):
        assert ph.layout[ax].type == "log"
    y0, y1 = ph.layout.yaxis.range
    assert y0 < y1 and math.isclose(10**y1, 1.0, rel_tol=0.5)  # density increases upwards
    assert P.lines([1, 10], {"a": [1, 2]}, log_x=True).layout.xaxis.type == "log"
    assert P.lines([1, 10], {"a": [1, 2]}).layout.xaxis.type == "linear"
    hm = P.heatmap2d([1, 10, 100], [0.1, 1], np.zeros((2, 3)))
    assert hm.layout.xaxis.type == "log" and hm.layout.yaxis.type == "log"
    tr = P.traces(np.arange(3), np.zeros((3, 2)), np.ones(3))
    assert tr.layout.yaxis2.type == "log"
    # static versions
    ax = P.dimensions_per_feature_mpl(dens, np.full(5, 0.5)).axes[0]
    assert ax.get_xscale() == "log"
    for ax in P.phase_diagram_mpl(*phase_inputs()).axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_arrows_axes_limits_and_colours() -> None:
    W = np.stack([pentagon(), pentagon()])
    fig = P.arrows_2d(W, 0.9 ** np.arange(5), lim=1.5)
    assert tuple(fig.layout.xaxis.range) == (-1.5, 1.5) and fig.layout.yaxis2.scaleanchor == "x2"
    colours = [t.line.color for t in fig.data[:5]]
    assert len(set(colours)) == 5  # one viridis colour per importance
    ax = P.arrows_2d_mpl(W, 0.9 ** np.arange(5)).axes[0]
    assert ax.get_xlim() == (-1.5, 1.5) and ax.get_aspect() == 1.0
    with pytest.raises(ValueError, match="2-dimensional"):
        P.arrows_2d(np.zeros((1, 3, 5)))


def test_neuron_stack_signs_and_order() -> None:
    W = np.array([[[0.5, -0.25, 0.0], [0.0, 1.0, 0.3]]])  # 2 neurons, 3 features
    fig = P.neuron_stack(W)
    assert fig.layout.barmode == "relative"  # negatives stack below the axis
    np.testing.assert_allclose(np.asarray(fig.data[1].y), [-0.25, 1.0])
    fig2 = P.neuron_stack(W, order="largest-feature")
    np.testing.assert_allclose(np.asarray(fig2.data[0].customdata), [0, 1])


def test_points_3d_slider_and_consistent_colours() -> None:
    snaps = RNG.normal(size=(3, 3, 4))
    fig = P.points_3d(snaps, ["a", "b", "c"])
    assert len(fig.layout.sliders[0].steps) == 3
    tips = [t for t in fig.data if t.mode == "markers+text"]
    assert all(list(t.marker.color) == list(tips[0].marker.color) for t in tips)
    assert sum(bool(t.visible) for t in fig.data) == 2  # one snapshot shown at a time
    assert len(P.points_3d_mpl(snaps, max_panels=2).axes) == 2


def test_feature_graph_edges_follow_threshold() -> None:
    # features 0,1 antipodal (|W0·W1| = 1), feature 2 orthogonal -> one edge, node 2 isolated
    W = np.array([[[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])
    fig = P.feature_geometry_graph(W, threshold=0.1)
    edges = [t for t in fig.data if t.mode == "lines"]
    assert len(edges) == 1 and len([v for v in edges[0].x if v is None]) == 1


def test_bad_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="titles"):
        P.arrows_2d(np.zeros((2, 2, 3)), titles=["only one"])
    with pytest.raises(ValueError, match=r"\[len\(density\), len\(r\)\]"):
        P.phase_diagram([1, 2], [1, 2, 3], np.zeros((2, 2)), None, ["a"])
    with pytest.raises(ValueError, match="kind must be one of"):
        P.figure_pair("nope")


# ---- the package: one preparation per pair, both renderers drawing the same numbers --------------------


def test_kinds_come_from_the_families_with_their_signatures() -> None:
    import inspect

    from tmslab.plots import _common, charts, dynamics, geometry, neurons, phase

    families = (geometry, phase, charts, neurons, dynamics)
    assert set(P.KINDS) == set(_common.REGISTRY)
    for kind in P.KINDS:
        interactive, static = getattr(P, kind), getattr(P, kind + "_mpl")
        assert interactive.__name__ == kind and static.__name__ == kind + "_mpl"
        assert sum(getattr(f, kind, None) is interactive for f in families) == 1  # defined in exactly one family
        prepared = inspect.signature(_common.REGISTRY[kind].prepare).parameters
        assert inspect.signature(interactive).parameters == prepared == inspect.signature(static).parameters
        assert interactive.__doc__ and static.__doc__
    with pytest.raises(ValueError, match="registered twice"):
        _common.figure_kind("lines", lambda: None, go.Figure, MplFigure)


def test_figure_pair_prepares_the_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from tmslab.plots import _common

    kind = _common.REGISTRY["feature_geometry_graph"]
    calls = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return kind.prepare(*args, **kwargs)

    monkeypatch.setitem(_common.REGISTRY, kind.name, dataclasses.replace(kind, prepare=counting))
    fig, fig_mpl = P.figure_pair("feature_geometry_graph", RNG.normal(size=(2, 3, 6)), layout="spring")
    assert len(calls) == 1 and len(fig_mpl.axes) == 2 + 1  # two panels and the D_i colour bar


def test_both_versions_draw_the_same_numbers() -> None:
    # geometry: the jittered per-feature D_i dots and the D* curve
    dens, dstar, d_i = np.geomspace(1, 0.05, 6), RNG.random(6), RNG.random((6, 4))
    fig, fig_mpl = P.figure_pair("dimensions_per_feature", dens, dstar, d_i, seed=3)
    ax = fig_mpl.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), np.stack([fig.data[0].x, fig.data[0].y], 1))
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), fig.data[1].y)
    # phase: the outcome grids
    r, s, emp, theo, labels = phase_inputs()
    fig, fig_mpl = P.figure_pair("phase_diagram", r, s, emp, theo, labels)
    z_plotly = [np.asarray(t.z) for t in fig.data if isinstance(t, go.Heatmap)]
    z_mpl = [np.asarray(c.get_array()).reshape(len(s), len(r)) for ax in fig_mpl.axes for c in ax.collections]
    assert len(z_plotly) == len(z_mpl) == 2
    for a, b in zip(z_plotly, z_mpl, strict=True):
        np.testing.assert_array_equal(a, b)
    # lines and heatmaps: each series, and Z
    fig, fig_mpl = P.figure_pair("lines", None, {"a": ([1, 2, 3], [3.0, 1, 2]), "b": ([1, 4], [0.5, 0.7])})
    for t, line in zip(fig.data, fig_mpl.axes[0].lines, strict=True):
        np.testing.assert_allclose(line.get_xydata(), np.stack([t.x, t.y], 1))
    Z = RNG.normal(size=(3, 4))
    fig, fig_mpl = P.figure_pair("heatmap2d", np.arange(1, 5), np.arange(1, 4), Z, diverging=True)
    (mesh,) = fig_mpl.axes[0].collections
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 4), fig.data[0].z)
    assert mesh.get_clim() == (fig.data[0].zmin, fig.data[0].zmax)
    # neurons: each model's matrix, and the stacked heights per neuron and feature (in display order)
    W = RNG.normal(size=(2, 5, 3))
    fig, fig_mpl = P.figure_pair("weight_matrix", W)
    for t, im in zip(fig.data, [ax.images[0] for ax in fig_mpl.axes if ax.images], strict=True):
        np.testing.assert_allclose(np.asarray(im.get_array()), t.z)
    fig, fig_mpl = P.figure_pair("neuron_stack", W[:1], order="largest-feature")
    bars = fig_mpl.axes[0].containers  # per feature: the positive parts, then the negative parts
    for f, t in enumerate(fig.data):
        heights = [b.get_height() for b in bars[2 * f]] + [b.get_height() for b in bars[2 * f + 1]]
        np.testing.assert_allclose(np.add(*np.split(np.asarray(heights), 2)), t.y)
    # dynamics: every D_i trace and the loss; the static snapshots are the slider's first and last
    steps, D, loss = np.arange(20), RNG.random((20, 3)), np.exp(-np.arange(20) / 5)
    fig, fig_mpl = P.figure_pair("traces", steps, D, loss)
    for t, line in zip(fig.data, fig_mpl.axes[0].lines[:3] + fig_mpl.axes[1].lines, strict=True):
        np.testing.assert_allclose(line.get_ydata(), t.y)
    snaps = RNG.normal(size=(5, 3, 4))
    fig, fig_mpl = P.figure_pair("points_3d", snaps, max_panels=2)  # an mpl-only option passes through the pair
    assert [ax.get_title() for ax in fig_mpl.axes] == ["snapshot 0", "snapshot 4"]
    assert len(fig.layout.sliders[0].steps) == 5


def test_shape_errors_are_the_same_for_both_versions() -> None:
    for make in (P.traces, P.traces_mpl):
        with pytest.raises(ValueError, match=r"d_i must be \[steps, features\]"):
            make(np.arange(3), np.zeros((4, 2)), np.ones(3))
    for make in (P.neuron_stack, P.neuron_stack_mpl):
        with pytest.raises(ValueError, match="one colour per feature"):
            make(np.zeros((1, 2, 3)), feature_colors=["red"])
