"""Writing figures: a plotly fragment (no plotly.js) for the report and a matplotlib PNG, each atomically."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from matplotlib.figure import Figure as MplFigure

from tmslab.io import atomic_write_bytes


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
