"""The report page: built offline from figure fragments, then opened in real headless Chromium.

How the browser check works: Chromium runs with ``--dump-dom``, which prints the DOM after the page's
scripts ran. The page itself (templates/report.html.j2) records script errors from its first line
(``window.onerror``, unhandled rejections, ``console.error``) into ``<html data-script-errors>`` and
``#tmslab-errors``, and after load writes how many ``.plotly-graph-div`` it holds and how many contain
plotly's ``.main-svg`` (``data-figures`` / ``data-figures-rendered``). Chromium's own console log
(``--enable-logging=stderr``) is scanned as a second opinion for uncaught errors. A second Chromium run
takes a full-page screenshot: saved under $TMSLAB_ARTIFACTS (or tmp_path), and copied to
docs/report-screenshot.png only when TMSLAB_UPDATE_SCREENSHOT=1.

Needs the Debian packages ``chromium`` (binary ``chromium``; override with $TMSLAB_CHROMIUM); the
browser tests are skipped with a clear reason when it is missing. The other tests here need no browser.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from browser import console_errors, needs_chromium, run_chromium
from tmslab import plots as P
from tmslab.report import Section, build_report, check, default_meta

REPO = Path(__file__).resolve().parents[1]


def make_figures(out: Path) -> dict[str, tuple[str, str]]:
    """A handful of figure pairs written into out/figures, as (html, png) paths relative to out."""
    rng = np.random.default_rng(1)
    a = 2 * np.pi * np.arange(5) / 5
    W2 = np.stack([np.eye(2, 5), np.stack([np.cos(a), np.sin(a)])])
    r, s = np.geomspace(0.1, 10, 20), np.geomspace(1, 0.01, 15)
    R, S = np.meshgrid(r, s)
    theo = np.where(S < np.where(R <= 1, 4 * R / (2 + 5 * R), 4 / (5 + 2 * R)), 2, np.where(R < 1, 0, 1))
    dens = np.geomspace(1, 0.05, 8)
    specs = {
        "arrows": ("arrows_2d", (W2, 0.9 ** np.arange(5), ["dense", "sparse"]), {}),
        "gram": ("gram_heatmaps", (rng.normal(size=(2, 3, 8)) / 2, rng.normal(size=(2, 8)) / 3), {}),
        "phase": ("phase_diagram", (r, s, theo, theo, ["not learned", "dedicated", "superposition"]), {}),
        "dims": ("dimensions_per_feature", (dens, rng.random(8), rng.random((8, 12))), {}),
        "points": ("points_3d", (rng.normal(size=(3, 3, 6)), ["step 0", "step 100", "step 1000"]), {}),
    }
    out_paths = {}
    for stem, (kind, args, kwargs) in specs.items():
        html, png = P.save_figure(*P.figure_pair(kind, *args, **kwargs), out / "figures" / stem)
        assert html is not None and png is not None
        out_paths[stem] = (html.relative_to(out).as_posix(), png.relative_to(out).as_posix())
    return out_paths


@pytest.fixture(scope="module")
def figure_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """Figures are built once per module; each test copies them into its own report directory."""
    base = tmp_path_factory.mktemp("figs")
    return base, make_figures(base)


def report_dir(figure_dir: tuple[Path, dict[str, tuple[str, str]]], out: Path) -> dict[str, tuple[str, str]]:
    base, figs = figure_dir
    shutil.copytree(base / "figures", out / "figures")
    return figs


def make_sections(figs: dict[str, tuple[str, str]]) -> list[Section]:
    return [
        Section(
            name="e1-intro",
            title="Superposition appears with sparsity",
            spec_ref="§2.1, E1",
            claim="As sparsity increases, models use superposition to represent more features than dimensions.",
            fidelity="test data (synthetic weights)",
            config={"n_features": 5, "n_hidden": 2, "density": [1.0, 0.05]},
            figures=[
                (*figs["arrows"], "Feature directions W_i, colour = importance."),
                (*figs["gram"], "WᵀW, b and feature norms."),
            ],
            checks=[
                check("pentagon angular gap", 72.0, "72° ± 1°", True, "§2.1 [R]"),
                check("negative bias", 0.1, "< 0", False, "§2.6.4", note="synthetic <b>escaped</b>"),
            ],
            notes="Synthetic weights; this section only exercises the page.",
        ),
        Section(
            name="e2-phase",
            title="Phase diagram & geometry",
            spec_ref="§2.5, §2.6",
            claim="Superposition is a phase change.",
            fidelity="analytic grid",
            figures=[
                (*figs["phase"], "Phase diagram."),
                (*figs["dims"], "Dimensions per feature."),
                (*figs["points"], "3-D feature directions over training."),
            ],
            checks=[check("not evaluated", None, 1, None)],
        ),
    ]


# ---- page content (no browser needed) -----------------------------------------------------------------


def test_report_is_self_contained_and_offline(tmp_path: Path, figure_dir) -> None:
    figs = report_dir(figure_dir, tmp_path)
    index = build_report(tmp_path, make_sections(figs), "tmslab test report", default_meta() | {"seeds": [0, 1]})
    html = index.read_text()
    assert index == tmp_path / "index.html"
    # no network: no remote script/link/img, no CDN
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']https?:", html)
    # plotly.js inlined exactly once (its own text mentions cdn.plot.ly for geo data we never use)
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert html.count(js[:300]) == 1 and '<script src="plotly.min.js">' not in html
    assert "cdn.plot.ly" not in html.replace(js, "")
    # every fragment inlined
    assert html.count('class="plotly-graph-div"') == 5
    assert "claims 1/2 pass · 0 not reproduced (findings) · 1 failed" in html and "1 not evaluated" in html
    assert "synthetic &lt;b&gt;escaped&lt;/b&gt;" in html  # user text is escaped
    assert 'href="#e1-intro"' in html and 'id="e2-phase"' in html
    assert "figures/arrows.png" in html
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_report_plotlyjs_as_file_and_missing_fragment(tmp_path: Path, figure_dir) -> None:
    figs = report_dir(figure_dir, tmp_path)
    sec = Section(
        name="x",
        title="X",
        claim="c",
        spec_ref="§0",
        figures=[("figures/nope.html", figs["arrows"][1], "missing"), (None, figs["gram"][1], "png only")],
    )
    index = build_report(tmp_path, [sec], "t", {}, plotlyjs="file")
    html = index.read_text()
    assert '<script src="plotly.min.js"></script>' in html
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert "interactive version missing" in html and html.count('<img class="static"') == 2


# ---- in a real browser ---------------------------------------------------------------------------------


def artifacts_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("TMSLAB_ARTIFACTS") or tmp_path / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path: Path, figure_dir) -> None:
    out = tmp_path / "report"
    figs = report_dir(figure_dir, out)
    index = build_report(out, make_sections(figs), "tmslab test report", default_meta() | {"seeds": [0, 1]})
    url = index.resolve().as_uri()

    shot = artifacts_dir(tmp_path) / "report-screenshot.png"
    # one run: the DOM after scripts ran (stdout) and a screenshot of the viewport
    res = run_chromium(tmp_path / "profile", "--window-size=1280,2400", f"--screenshot={shot}", "--dump-dom", url)
    dom = res.stdout
    assert res.returncode == 0, res.stderr[-3000:]
    root = re.search(r"<html[^>]*>", dom)
    assert root, dom[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))
    errors = re.search(r'<pre id="tmslab-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert attrs.get("data-script-errors") == "0", errors.group(1) if errors else attrs
    assert console_errors(res.stderr) == []
    assert attrs.get("data-render-done") == "1"
    assert attrs.get("data-figures") == "5" and attrs.get("data-figures-rendered") == "5", attrs
    # every figure div holds plotly's output
    assert dom.count('class="plot-container plotly"') == 5
    assert len(re.findall(r'<svg[^>]+class="main-svg"', dom)) >= 5
    assert "gl-container" in dom  # the 3-D scene (WebGL) was created

    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, (
        res.stderr[-2000:]
    )
    if os.environ.get("TMSLAB_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "report-screenshot.png")


@needs_chromium
def test_browser_check_catches_a_broken_figure(tmp_path: Path) -> None:
    """Negative control: a fragment whose script throws must be reported, so a pass above means something."""
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "bad.html").write_text(
        '<div class="plotly-graph-div" id="bad"></div><script>Plotly.newPlot("bad", undefinedData);</script>'
    )
    index = build_report(
        out,
        [Section(name="bad", title="Bad", claim="", spec_ref="", figures=[("figures/bad.html", None, "broken")])],
        "t",
        {},
    )
    res = run_chromium(tmp_path / "profile", "--dump-dom", index.resolve().as_uri())
    root = re.search(r"<html[^>]*>", res.stdout)
    assert root
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))
    assert int(attrs["data-script-errors"]) >= 1
    assert attrs["data-figures-rendered"] == "0" and attrs["data-figures"] == "1"
    assert "undefinedData" in res.stdout  # the error text is in the page (banner + #tmslab-errors)
    assert console_errors(res.stderr)
