"""`tms report DIR` on a sweep: lines over one axis, heatmaps over two, an offline page."""

import pytest

BASE = {"model": "relu-output", "features": 2, "hidden": 1, "steps": 30, "batch_size": 32, "eval_samples": 256}


@pytest.mark.parametrize(
    "grid, kind",
    [
        ({"density": {"log_range": [1.0, 0.01], "points": 3}}, "lines"),
        ({"density": [1.0, 0.1], "importance_ratio": {"log_range": [0.1, 10], "points": 3}}, "heatmap"),
    ],
)
def test_sweep_report(tms, tmp_path, grid, kind):
    from tmslab.sweep import run_sweep

    out = tmp_path / "sweep"
    run_sweep({"base": BASE, "grid": grid, "restarts": 2}, out, progress=False)
    code, stdout, err = tms("report", out)
    assert code == 0, err
    figs = sorted(p.name for p in (out / "figures").iterdir() if p.name != ".tmslab")  # tmslab's marker
    assert len(figs) == 8  # 4 metrics × (html, png)
    html = (out / "index.html").read_text()
    assert "results.parquet" in html and html.count("plotly-graph-div") >= 4
    first = next((out / "figures").glob("eval_loss*.html")).read_text()
    assert ('"mode":"lines+markers"' in first) == (kind == "lines")


def test_report_of_a_non_directory(tms, tmp_path):
    code, _, err = tms("report", tmp_path / "missing")
    assert code == 2 and "not a directory" in err
