"""What every figure family shares: input coercion, panel grids, colours, cell edges, and the registry of
figure kinds (each kind = one data preparation + a plotly and a matplotlib renderer of that data)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

import numpy as np
import plotly.graph_objects as go
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

DIVERGING = "RdBu_r"  # plotly: blue negative, white 0, red positive
DIVERGING_MPL = "coolwarm"  # the notebook's map
SEQUENTIAL = "Viridis"
SEQUENTIAL_MPL = "viridis"
PANEL_PX = 260  # plotly panel size in pixels
PANEL_IN = 2.6  # matplotlib panel size in inches


# ---- the registry of figure kinds ------------------------------------------------------------------

Params = ParamSpec("Params")
Data = TypeVar("Data")


@dataclass(frozen=True)
class Kind(Generic[Data]):
    """A figure kind: `prepare` turns the caller's arguments into the data (arrays, labels, layout) that
    `plotly` and `mpl` draw, so both versions show the same numbers and the work is done once per pair."""

    name: str
    prepare: Callable[..., Data]
    plotly: Callable[[Data], go.Figure]
    mpl: Callable[[Data], MplFigure]

    def pair(self, *args: Any, **kwargs: Any) -> tuple[go.Figure, MplFigure]:
        data = self.prepare(*args, **kwargs)
        return self.plotly(data), self.mpl(data)


#: Every registered kind by name, in registration order (the order the families are imported).
REGISTRY: dict[str, Kind[Any]] = {}


def figure_kind(
    name: str,
    prepare: Callable[Params, Data],
    plotly: Callable[[Data], go.Figure],
    mpl: Callable[[Data], MplFigure],
) -> tuple[Callable[Params, go.Figure], Callable[Params, MplFigure]]:
    """Register a kind and return its two public functions, ``name`` (plotly) and ``name_mpl``
    (matplotlib), both taking `prepare`'s arguments and carrying its signature and docstring."""
    if name in REGISTRY:
        raise ValueError(f"figure kind {name!r} is registered twice.")
    REGISTRY[name] = Kind(name, prepare, plotly, mpl)

    def interactive(*args: Params.args, **kwargs: Params.kwargs) -> go.Figure:
        return plotly(prepare(*args, **kwargs))

    def static(*args: Params.args, **kwargs: Params.kwargs) -> MplFigure:
        return mpl(prepare(*args, **kwargs))

    signature = inspect.signature(prepare)
    for fn, fn_name, returns, doc in (
        (interactive, name, go.Figure, prepare.__doc__),
        (static, name + "_mpl", MplFigure, f"Static (matplotlib) version of `{name}`, from the same arguments."),
    ):
        fn.__name__ = fn.__qualname__ = fn_name
        fn.__module__ = prepare.__module__
        fn.__doc__ = doc
        fn.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
    return interactive, static


# ---- input helpers ---------------------------------------------------------------------------------


def as_np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy copy of a tensor / array / sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def stack3(W: Any) -> np.ndarray:
    """[instances, hidden, features]; a single [hidden, features] matrix becomes one instance."""
    W = as_np(W)
    if W.ndim == 2:
        W = W[None]
    if W.ndim != 3:
        raise ValueError(f"W must be [instances, hidden, features] or [hidden, features], got shape {W.shape}.")
    return W


def per_instance(v: Any, k: int, n: int, name: str) -> np.ndarray:
    """Broadcast a per-feature vector ([features] or [instances, features]) to [instances, features]."""
    v = as_np(v)
    if v.ndim == 1:
        v = np.broadcast_to(v, (k, v.shape[0]))
    if v.shape != (k, n):
        raise ValueError(f"{name} must be [features] or [instances, features] = [{k}, {n}], got {v.shape}.")
    return v


def panel_titles(titles: Sequence[str] | None, k: int, prefix: str = "instance") -> list[str]:
    if titles is None:
        return [f"{prefix} {i}" for i in range(k)]
    titles = [str(t) for t in titles]
    if len(titles) != k:
        raise ValueError(f"need {k} titles (one per panel), got {len(titles)}.")
    return titles


def one_colour_each(colours: Sequence[str] | None, n: int, default: Callable[[int], list[str]]) -> list[str]:
    """The caller's per-feature colours (checked: one per feature) or ``default(n)``."""
    out = list(colours) if colours is not None else default(n)
    if len(out) != n:
        raise ValueError(f"need one colour per feature ({n}), got {len(out)}.")
    return out


# ---- panel grids -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """One panel per model (instance) in reading order, ``cols`` panels a row."""

    titles: list[str]
    rows: int
    cols: int

    @property
    def k(self) -> int:
        return len(self.titles)

    def cell(self, p: int) -> dict[str, int]:
        """plotly's 1-based ``row=, col=`` of panel p."""
        r, c = divmod(p, self.cols)
        return dict(row=r + 1, col=c + 1)


def grid(k: int, titles: Sequence[str] | None, prefix: str, ncols: int | None, default: int) -> Grid:
    cols = max(1, min(k, ncols or default))
    return Grid(panel_titles(titles, k, prefix), math.ceil(k / cols), cols)


def plotly_grid(g: Grid, horizontal_spacing: float, vertical_spacing: float) -> go.Figure:
    return make_subplots(
        rows=g.rows,
        cols=g.cols,
        subplot_titles=g.titles,
        horizontal_spacing=horizontal_spacing,
        vertical_spacing=vertical_spacing,
    )


def mpl_grid(fig: MplFigure, g: Grid) -> list[Axes]:
    """The grid's axes, one per panel; the unused cells of the last row are hidden."""
    axes = list(fig.subplots(g.rows, g.cols, squeeze=False).ravel())
    for ax in axes[g.k :]:
        ax.set_axis_off()
    return axes[: g.k]


def axis_suffix(i: int) -> str:
    """plotly's name of the i-th (0-based) x/y axis suffix: '', '2', '3', ..."""
    return "" if i == 0 else str(i + 1)


def suptitle(fig: MplFigure, title: str | None) -> MplFigure:
    if title:
        fig.suptitle(title)
    return fig


# ---- colours ---------------------------------------------------------------------------------------


def viridis(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> list[str]:
    """plotly colour strings of `values` on the viridis scale between vmin and vmax (default: their range)."""
    v = np.asarray(values, dtype=float)
    lo = float(np.nanmin(v)) if vmin is None else vmin
    hi = float(np.nanmax(v)) if vmax is None else vmax
    t = np.zeros_like(v) if hi <= lo else np.clip((v - lo) / (hi - lo), 0, 1)
    return sample_colorscale(SEQUENTIAL, list(map(float, t)))


def feature_palette(n: int) -> list[str]:
    """Consistent categorical colours per feature index (cycled when there are many features)."""
    pal = qualitative.D3 + qualitative.Set2 + qualitative.Dark2
    return [pal[i % len(pal)] for i in range(n)]


def to_rgb(c: str) -> tuple[float, float, float]:
    """plotly colour string ('rgb(r, g, b)' or '#hex') -> matplotlib RGB tuple."""
    c = c.strip()
    if c.startswith("rgb"):
        parts = c[c.index("(") + 1 : c.index(")")].split(",")
        return tuple(float(p) / 255.0 for p in parts[:3])  # type: ignore[return-value]
    return mcolors.to_rgb(c)


# ---- cell edges for heatmaps -----------------------------------------------------------------------


def edges(v: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around centres `v`: midpoints (geometric ones on a log axis), extrapolated at the ends."""
    w = np.log(v) if log else v
    if len(v) == 1:
        out = np.array([w[0] - 0.5, w[0] + 0.5])
    else:
        mid = (w[1:] + w[:-1]) / 2
        out = np.concatenate([[2 * w[0] - mid[0]], mid, [2 * w[-1] - mid[-1]]])
    return np.exp(out) if log else out


def axis_range(e: np.ndarray, log: bool, invert: bool = False) -> list[float]:
    """plotly axis range spanning cell edges `e` (in log10 units on a log axis)."""
    lo, hi = float(e.min()), float(e.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    return [hi, lo] if invert else [lo, hi]
