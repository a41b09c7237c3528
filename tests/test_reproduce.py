"""`tms reproduce --quick`: every registered experiment runs, is checked, plotted and reported; resumable."""

import json
import time

import pytest

from browser import console_errors, dom_attributes, needs_chromium, run_chromium
from tmslab.experiments import EXPERIMENTS

#: Claims that quick mode evaluates (and that pass), per experiment (issue 12 §4; paper-spec §7.2 D18: every
#: experiment with claims evaluates at least one).
QUICK_EVALUATED = {
    "intro": 16, "basic": 15, "basic-large": 4, "phase-2x1": 3, "phase-3x2": 2, "uniform": 4, "perturb": 12,
    "correlated": 4, "local-basis": 3, "collapse": 1, "energy-jumps": 2, "geometry-dynamics": 2, "adversarial": 3,
    "privileged": 1, "abs-small": 2, "abs-sweep": 3, "l1": 3, "nonlinear-compression": 0,
    "scaling-laws": 2, "double-descent": 2, "slt": 1, "sae-synthetic": 1, "sae-tms": 1,
    "compressed-computation": 1,
}
#: The paper's own experiments (the first 18): at least 75% of their claims are evaluated in quick mode.
PAPER_EXPERIMENTS = list(QUICK_EVALUATED)[:18]
#: Experiments without a claim at any fidelity, and why (D9: a claim is measured on trained weights).
CLAIMLESS = {"nonlinear-compression": "§2.13's constructions are closed forms: every row is a sanity check"}


@pytest.fixture(scope="module")
def quick_dir(tmp_path_factory):
    from tmslab.cli import main

    out = tmp_path_factory.mktemp("reproduce")
    start = time.perf_counter()
    assert main(["reproduce", "--quick", "--out", str(out), "--quiet"]) == 0
    (out / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return out


@pytest.mark.slow
def test_every_experiment_writes_checks_figures_and_runs(quick_dir):
    summary = json.loads((quick_dir / "summary.json").read_text())
    assert summary["experiments"] == list(EXPERIMENTS)
    assert summary["fidelity"] == "quick" and summary["line"].startswith("quick fidelity: claims ")
    assert sum(summary["counts"].values()) == len(summary["checks"]) > 0
    for row in summary["checks"]:
        assert set(row) >= {"experiment", "name", "measured", "expected", "source", "passed", "kind", "status"}
    for name in EXPERIMENTS:
        res = json.loads((quick_dir / name / "results.json").read_text())
        assert res["quick"] is True and res["checks"], name
        assert res["figures"], f"{name} has no figure"
        for fig in res["figures"]:
            assert (quick_dir / fig["html"]).stat().st_size > 0
            assert (quick_dir / fig["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert res["fidelity"]
    html = (quick_dir / "index.html").read_text()
    import re

    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)  # plotly.js itself mentions URLs
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup), "the report must load nothing remote"
    assert "<script src" not in html
    from html import unescape

    text = unescape(markup)  # titles are HTML-escaped in the page (&amp;, &#39;)
    for name in EXPERIMENTS:
        assert EXPERIMENTS[name].title in text


@pytest.mark.slow
def test_quick_mode_evaluates_the_pinned_claims_and_they_pass(quick_dir):
    """Issue 12 §4 and D18: at quick fidelity no check fails; every experiment with claims evaluates at least one;
    a claim quick mode cannot show reads "not evaluated (needs full / paper fidelity)" (the paper experiments name
    theirs in `quick_not_evaluated`); at least 75% of the paper experiments' claims are evaluated."""
    summary = json.loads((quick_dir / "summary.json").read_text())
    rows = summary["checks"]
    failed = [f"{r['experiment']}: {r['name']} = {r['measured']} (expected {r['expected']})" for r in rows
              if r["status"] == "fail"]
    assert failed == []
    claims = [r for r in rows if r["kind"] == "claim" and r["status"] != "superseded"]
    for r in (r for r in rows if r["status"] == "not evaluated"):
        assert r["reason"] in ("needs full fidelity", "needs paper fidelity"), r["name"]
        if r["experiment"] in PAPER_EXPERIMENTS and r["reason"] == "needs full fidelity":
            assert any(k in r["name"] for k in EXPERIMENTS[r["experiment"]].quick_not_evaluated), r["name"]
    evaluated = {name: sum(r["status"] in ("pass", "not reproduced") for r in claims if r["experiment"] == name)
                 for name in EXPERIMENTS}  # fmt: skip
    assert evaluated == QUICK_EVALUATED
    assert [n for n, k in evaluated.items() if k == 0] == list(CLAIMLESS)  # D18
    assert not any(r["experiment"] in CLAIMLESS for r in claims)
    paper = [r for r in claims if r["experiment"] in PAPER_EXPERIMENTS]
    evaluated = {n: k for n, k in evaluated.items() if n in PAPER_EXPERIMENTS}
    assert sum(evaluated.values()) >= 0.75 * len(paper)


@pytest.mark.slow
def test_every_claim_fails_on_the_initial_weights(quick_dir, tmp_path):
    """D20 (the null-model pass): every run of every experiment reset to its initialisation (same configuration
    and seed), the analyses run again — no claim may pass: a claim is a statement about what training produces."""
    from tmslab.experiments.null import null_pass

    rows = null_pass(quick_dir, tmp_path / "null")
    assert {r["experiment"] for r in rows} == set(EXPERIMENTS)
    passing = [f"{r['experiment']}: {r['name']} = {r['measured']} (expected {r['expected']})" for r in rows
               if r["kind"] == "claim" and r["status"] == "pass"]
    assert passing == []
    assert sum(r["kind"] == "claim" and r["status"] in ("fail", "not reproduced") for r in rows) > 0


@pytest.mark.slow
def test_a_broken_experiment_makes_reproduce_exit_1(quick_dir, tmp_path, capsys):
    """D10: zeroed weights in a finished experiment, its results removed, the same command re-run → exit 1 with
    the failing rows named; the untouched folder exits 0."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from tmslab.cli import main

    work = tmp_path / "broken"
    shutil.copytree(quick_dir, work)
    for weights in (work / "intro").rglob("model.safetensors"):
        save_file({k: torch.zeros_like(v) for k, v in load_file(weights).items()}, weights,
                  metadata={"format": "tmslab-run-1"})
    (work / "intro" / "results.json").unlink()
    capsys.readouterr()
    assert main(["reproduce", "--quick", "--out", str(work), "--only", "intro", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "FAILED intro: " in err
    assert main(["report", str(quick_dir)]) == 0


@pytest.mark.slow
def test_rerun_skips_finished_experiments(quick_dir, capsys):
    from tmslab.cli import main

    before = {n: (quick_dir / n / "results.json").stat().st_mtime_ns for n in EXPERIMENTS}
    assert main(["reproduce", "--quick", "--out", str(quick_dir)]) == 0  # --quiet would hide the log
    out = capsys.readouterr().out
    assert out.count("skipped") == len(EXPERIMENTS)
    assert before == {n: (quick_dir / n / "results.json").stat().st_mtime_ns for n in EXPERIMENTS}


@pytest.mark.slow
def test_report_rebuilds_without_training(quick_dir):
    from tmslab.cli import main

    index = quick_dir / "index.html"
    index.unlink()
    assert main(["report", str(quick_dir)]) == 0
    assert index.exists()


def test_interrupted_experiment_reuses_finished_runs(tmp_path, monkeypatch):
    """A run saved before an interruption is loaded, not retrained."""
    from tmslab.experiments import runner

    exp = EXPERIMENTS["intro"]
    configs = exp.runs(quick=True)
    first = next(iter(configs))
    calls = []
    real_train = runner._train_run

    def counting(rdir, config, progress, desc):
        calls.append(rdir.name)
        return real_train(rdir, config, progress, desc)

    monkeypatch.setattr(runner, "_train_run", counting)
    import tmslab.training as training

    trained = []
    real = training.train

    def spy(config, **kw):
        trained.append(config)
        return real(config, **kw)

    monkeypatch.setattr(training, "train", spy)
    runner.run_experiment(exp, tmp_path, "quick", progress=False)
    assert len(trained) == len(configs)
    (tmp_path / "intro" / "results.json").unlink()  # as if interrupted before the analysis finished
    trained.clear()
    runner.run_experiment(exp, tmp_path, "quick", progress=False)
    assert trained == [] and first in calls


@pytest.mark.parametrize("args, fragment", [(["--only", "intr"], "did you mean 'intro'"), (["--only", ","], "--only")])
def test_bad_reproduce_input(tms, tmp_path, args, fragment):
    code, _, err = tms("reproduce", "--out", tmp_path / "r", "--quick", *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@needs_chromium
def test_reproduce_report_renders_in_a_real_browser(quick_dir, tmp_path):
    """The reproduce report loads with no console errors and every figure renders; the screenshot is kept."""
    import os
    import shutil
    from pathlib import Path

    summary = json.loads((quick_dir / "summary.json").read_text())
    n_figures = sum(len(json.loads((quick_dir / n / "results.json").read_text())["figures"]) for n in EXPERIMENTS)
    artifacts = Path(os.environ.get("TMSLAB_ARTIFACTS") or tmp_path / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "reproduce-report.png"
    url = (quick_dir / "index.html").resolve().as_uri()
    res = run_chromium(tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}", "--dump-dom", url,
                       timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    attrs = dom_attributes(res.stdout)
    assert attrs.get("data-script-errors") == "0"
    assert console_errors(res.stderr) == []
    assert attrs.get("data-figures") == str(n_figures) == attrs.get("data-figures-rendered"), attrs
    assert summary["line"].split(": ", 1)[1] in res.stdout
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TMSLAB_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, Path(__file__).resolve().parents[1] / "docs" / "report-screenshot.png")


@pytest.mark.slow
def test_parallel_experiments_match_the_sequential_run(tmp_path):
    """`--jobs 2` (one process per experiment, one thread each) gives the checks of the in-process run."""
    from tmslab.experiments.runner import reproduce

    only = "abs-small,l1"
    seq = reproduce(tmp_path / "seq", only=only, fidelity="quick", progress=False, log=lambda line: None, jobs=1,
                    threads=1)
    par = reproduce(tmp_path / "par", only=only, fidelity="quick", progress=False, log=lambda line: None, jobs=2)
    assert par["experiments"] == seq["experiments"] == ["abs-small", "l1"]
    assert par["line"] == seq["line"]
    for a, b in zip(seq["checks"], par["checks"], strict=True):
        assert (a["name"], a["status"], a["kind"]) == (b["name"], b["status"], b["kind"])
        if isinstance(a["measured"], float):
            assert b["measured"] == pytest.approx(a["measured"], rel=1e-4, abs=1e-6)
        else:
            assert b["measured"] == a["measured"]
