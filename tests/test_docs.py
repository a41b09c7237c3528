"""The front door (issue 31): the README's size and commands, the generated result tables and the docs site.

The result tables of docs/reproducing.md and the README's findings are generated from the records in results/
(`python -m tmslab.records docs`); these tests fail when a page and the records disagree, and check the generator
on small synthetic records (the real ones take over an hour to make).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tmslab import records
from tmslab.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


# ---- the repository's own pages ------------------------------------------------------------------------


def test_pages_agree_with_the_records() -> None:
    assert records.stale(ROOT) == [], "run `python -m tmslab.records docs` and commit the result"


def test_readme_is_one_page_with_the_two_commands_first() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) <= 12_000, len(text)
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block and text.index("```bash") < text.index("## A short tour")
    first, second = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert first.endswith("pip install -e . && tms reproduce --quick --out reproduce")
    # the second is CI's: the same extras as .ci/run installs, then the same test command
    ci = (ROOT / ".ci" / "run").read_text()
    extras = re.search(r'pip install -q -e "\.\[([^\]]+)\]"', ci)
    assert extras, "the extras line of .ci/run"
    assert second.endswith(f'pip install -e ".[{extras.group(1)}]" && python -m pytest -q')
    assert "python -m pytest -q" in ci and "mkdocs build --strict" in ci


def test_readme_and_docs_links_resolve() -> None:
    """Every relative link of the README and the docs pages names a file that exists (the site build checks the
    docs too, but only where mkdocs is installed)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert page.relative_to(ROOT / "docs").as_posix() in nav, page


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link, a missing anchor or a docstring mkdocstrings cannot render fails."""
    pytest.importorskip("mkdocs", reason='the docs extra: pip install -e ".[docs]"')
    pytest.importorskip("mkdocstrings", reason='the docs extra: pip install -e ".[docs]"')
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "core" / "index.html").read_text()
    for name in ("config.TrainConfig", "training.train", "io.load_run", "io.save_run"):
        assert f'id="tmslab.{name}"' in api, name  # rendered from the docstrings


# ---- synthetic records -------------------------------------------------------------------------------


def _check(name: str, status: str, kind: str = "claim", **fields) -> dict:
    """A results.json row with the fields runner.py writes."""
    judged = None if status == "not evaluated" else fields.pop("judged_at", "full")
    row = {"name": name, "measured": 0.5, "expected": "[0.9, 1.1]", "passed": status == "pass", "kind": kind,
           "status": status, "reason": "", "decision": "", "tier": "quick", "source": "§2.1, E1", "note": "",
           "judged_at": judged}  # fmt: skip
    row.update(fields)
    return row


def _results(name: str, checks: list[dict], quick: bool = False) -> dict:
    return {"name": name, "title": name, "claim": "", "spec_ref": "§0", "notes": "", "fidelity": "", "quick": quick,
            "configs": {}, "sweeps": {}, "checks": checks, "figures": [], "tables": {}, "seconds": 1.0,
            "versions": {}}  # fmt: skip


def _write(folder: Path, results: list[dict], fidelity: str = "full") -> None:
    for res in results:
        (folder / res["name"]).mkdir(parents=True)
        (folder / res["name"] / "results.json").write_text(json.dumps(res))
    (folder / "summary.json").write_text(
        json.dumps({"fidelity": fidelity, "experiments": [r["name"] for r in results]})
    )


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository root with copies of the real README and results page and no record."""
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "reproducing.md", tmp_path / "docs" / "reproducing.md")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


FINDING = _check("all jumps coincide with a loss drop", "not reproduced", measured=0.26, expected="≥ 0.8",
                 decision="D12", reason="9 of 35 jumps; the early splits show no drop")  # fmt: skip
SUPERSEDED = _check("pairs at density 0.1", "superseded", decision="D2", reason="a local optimum, 20% above")


def _full_record(folder: Path) -> None:
    _write(folder, [
        _results("intro", [_check("angle (°)", "pass", measured=90.5, expected="[85, 95]"), SUPERSEDED,
                           _check("Σ D_i ≤ m", "pass", kind="sanity", measured=[1.0, 2.0])]),
        _results("energy-jumps", [FINDING, _check("late jumps", "not evaluated", reason="needs paper fidelity",
                                                  tier="paper")]),
    ])  # fmt: skip


def test_no_record_reads_so_everywhere(repo: Path) -> None:
    text = records.render(repo)  # a root without results/: every region says so (the real pages hold a record)
    for region in ("summary", "findings", "superseded", "full", "paper"):
        body = re.search(rf"<!-- records:{region} -->\n(.*?)\n<!-- /records:{region} -->", text["docs/reproducing.md"],
                         re.S)  # fmt: skip
        assert body and body.group(1).startswith(records.NO_RECORD), region
    assert records.NO_RECORD in text["README.md"]


def test_generated_tables_follow_the_records(repo: Path) -> None:
    _full_record(repo / "results" / "full")
    _write(
        repo / "results" / "paper" / "scaling-laws",
        [_results("scaling-laws", [_check("α_m at γ = −1", "pass", measured=1.02, judged_at="paper")])],
        "paper",
    )
    # issue 30's layout: results/paper/<experiment>/ holding results.json itself (the one above nests it a level down)
    flat = repo / "results" / "paper" / "double-descent"
    flat.mkdir(parents=True)
    (flat / "results.json").write_text(
        json.dumps(
            _results(
                "double-descent",
                [_check("T = 5: regular T-gons", "not reproduced", decision="D17", reason="2 of 4", judged_at="paper")],
            )
        )
    )
    (flat / "summary.json").write_text(json.dumps({"fidelity": "paper"}))
    (flat / "RECORD.md").write_text("command, commit, device, date")
    assert records.stale(repo) == ["docs/reproducing.md", "README.md"]  # the records changed, the pages did not
    assert sorted(records.write_docs(repo)) == ["README.md", "docs/reproducing.md"]
    assert records.stale(repo) == [] and records.write_docs(repo) == []  # written once, then idempotent

    page = (repo / "docs" / "reproducing.md").read_text()
    assert ("- `results/full/`: full fidelity: claims 1/2 pass · 1 not reproduced (findings) · 0 failed · 1 sanity "
            "checks pass · 1 superseded · 1 not evaluated") in page  # fmt: skip
    assert "- `results/paper/scaling-laws/`: paper fidelity: claims 1/1 pass" in page
    assert "- `results/paper/double-descent/`: paper fidelity: claims 0/1 pass · 1 not reproduced (findings)" in page
    assert (
        page.index("`results/full/`:")
        < page.index("`results/paper/double-descent/`:")
        < page.index("`results/paper/scaling-laws/`:")
    )  # full first, then the paper records by name
    findings = re.search(r"<!-- records:findings -->\n(.*?)\n<!--", page, re.S).group(1)
    assert ("| energy-jumps | all jumps coincide with a loss drop | D12 | ≥ 0.8 | 0.26 | full | 9 of 35 jumps; the "
            "early splits show no drop |") in findings  # fmt: skip
    assert "| double-descent | T = 5: regular T-gons | D17 | [0.9, 1.1] | 0.5 | paper | 2 of 4 |" in findings
    assert len(_table_rows(findings)) == 3  # the header and the two findings
    superseded = re.search(r"<!-- records:superseded -->\n(.*?)\n<!--", page, re.S).group(1)
    assert "| intro | pairs at density 0.1 | D2 | 0.5 | [0.9, 1.1] | a local optimum, 20% above |" in superseded
    full = re.search(r"<!-- records:full -->\n(.*?)\n<!--", page, re.S).group(1)
    assert full.index("#### `intro`") < full.index("#### `energy-jumps`")  # the summary's order
    assert "| intro | angle (°) | claim | [85, 95] | 90.5 | pass | — | full |" in full
    assert "| intro | Σ D\\_i ≤ m | sanity | [0.9, 1.1] | [1, 2] | pass | — | full |" in full
    assert "| not evaluated (needs paper fidelity) | — | — |" in full
    paper = re.search(r"<!-- records:paper -->\n(.*?)\n<!--", page, re.S).group(1)
    assert "#### `scaling-laws` (`results/paper/scaling-laws/`)" in paper and "| 1.02 | pass | — | paper |" in paper

    readme = (repo / "README.md").read_text()
    assert "| energy-jumps | all jumps coincide with a loss drop | D12 | ≥ 0.8 | 0.26 | full |" in readme
    assert "9 of 35" not in readme  # the evidence stays on the results page

    # a record that changes under the page is caught
    res = json.loads((repo / "results" / "full" / "intro" / "results.json").read_text())
    res["checks"][0]["measured"] = 91.0
    (repo / "results" / "full" / "intro" / "results.json").write_text(json.dumps(res))
    assert records.stale(repo) == ["docs/reproducing.md"]


def test_markers_are_required(repo: Path) -> None:
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("<!-- /records:findings -->", ""))
    with pytest.raises(ConfigError, match="README.md must mark region 'findings' once"):
        records.render(repo)


def test_cells_and_values() -> None:
    assert records.cell("a | b\n c") == "a \\| b c"
    # shown as written on GitHub and on the site alike: no emphasis, code span, link or tag
    assert records.cell("max |‖W_i‖ − l*|, |b_i − b*| < 0.1") == "max \\|‖W\\_i‖ − l\\*\\|, \\|b\\_i − b\\*\\| < 0.1"
    assert records.cell("`x` [a](b) <b>") == "\\`x\\` [a]\\(b) &lt;b>"
    assert records.cell("") == "—"
    assert records.measured([0.123456, 2, "x"]) == "[0.1235, 2, x]"
    assert records.measured(list(range(10))) == "[0, 1, 2, 3, 4, 5, 6, 7, … (10 values)]"
    assert records.measured(True) == "yes" and records.measured(None) == "—"
    assert records.measured({"0.03": 11, "0.001": 0.123456}) == "{0.03: 11, 0.001: 0.1235}"
    row = _check("x", "not evaluated", reason="needs full fidelity")
    assert records.status(row) == "not evaluated (needs full fidelity)"


def test_bad_record_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "intro").mkdir()
    (tmp_path / "intro" / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not readable JSON"):
        records.load_record(tmp_path)
    (tmp_path / "intro" / "results.json").write_text(json.dumps({"name": "intro"}))
    with pytest.raises(ConfigError, match="needs a name and a checks list"):
        records.load_record(tmp_path)
    assert records.load_record(tmp_path / "missing") is None


def test_report_markdown(tmp_path: Path, tms) -> None:
    _full_record(tmp_path / "full")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = tms("report", "--markdown", tmp_path / "full")
    assert code == 0, err
    assert out.splitlines()[0].startswith("full fidelity: claims 1/2 pass · 1 not reproduced (findings) · 0 failed")
    header = "| " + " | ".join(records.COLUMNS) + " |"
    assert header in out and len(_table_rows(out)) == 1 + 5  # the header and five checks
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # read only

    # a failed check: the table all the same, and exit 1 naming it (as `tms report`)
    res = json.loads((tmp_path / "full" / "intro" / "results.json").read_text())
    res["checks"][0].update(status="fail", passed=False)
    (tmp_path / "full" / "intro" / "results.json").write_text(json.dumps(res))
    code, out, err = tms("report", "--markdown", tmp_path / "full")
    assert code == 1 and "| intro | angle (°) | claim | [85, 95] | 90.5 | fail |" in out
    assert "FAILED intro: angle (°)" in err

    code, out, err = tms("report", "--markdown", tmp_path / "empty")
    assert code == 2 and "holds no experiment results" in err and out == ""


def test_keep_records_a_folder_with_provenance_and_pages_cite_it(repo: Path, tmp_path: Path) -> None:
    """`python -m tmslab.records keep`: results.json, a summary with provenance and RECORD.md per experiment, no
    weights; the README's line and an experiment's region on its own page cite the record's device, date, commit."""
    src = tmp_path / "reproduce"
    _write(src, [_results("scaling-laws", [_check("α_m at γ = −1", "pass", measured=1.02, judged_at="paper")])],
           "paper")  # fmt: skip
    res = json.loads((src / "scaling-laws" / "results.json").read_text())
    (src / "scaling-laws" / "results.json").write_text(json.dumps({**res, "tier": "paper", "device": "cpu"}))
    for run, seconds in (("gamma-1-m10", 100.0), ("gamma+1-m10", 20.5)):
        (src / "scaling-laws" / run).mkdir()
        (src / "scaling-laws" / run / "metrics.json").write_text(json.dumps({"train_seconds": seconds,
                                                                             "eval_seconds": 1.0}))
        (src / "scaling-laws" / run / "weights.safetensors").write_bytes(b"weights")
    assert records.main(["keep", str(src), "--only", "scaling-laws", "--to", str(repo / "results" / "paper"),
                         "--command", "tms reproduce --fidelity paper --only scaling-laws --out DIR",
                         "--device", "CPU, 2 cores"]) == 0  # fmt: skip
    kept = repo / "results" / "paper" / "scaling-laws"
    assert sorted(p.name for p in kept.iterdir()) == ["RECORD.md", "results.json", "summary.json"]
    prov = json.loads((kept / "summary.json").read_text())["provenance"]
    assert prov["device"] == "CPU, 2 cores" and prov["runs"] == 2 and prov["training_seconds"] == 122.5
    assert len(prov["commit"]) >= 40 or prov["commit"] == "unknown"
    text = (kept / "RECORD.md").read_text()
    assert "- **Command:** `tms reproduce --fidelity paper --only scaling-laws --out DIR`" in text
    assert "training 0.03 h summed over its 2 saved runs" in text and "paper fidelity: claims 1/1 pass" in text
    (repo / "docs" / "scaling.md").write_text("# x\n\n<!-- records:experiment/scaling-laws -->\n(generated)\n"
                                              "<!-- /records:experiment/scaling-laws -->\n")  # fmt: skip
    records.write_docs(repo)
    readme = (repo / "README.md").read_text()
    assert "- `results/paper/scaling-laws/`: paper fidelity: claims 1/1 pass · 0 not reproduced" in readme
    assert f"(measured on CPU, 2 cores, {prov['date']}, commit {prov['commit'][:10]})" in readme
    page = (repo / "docs" / "scaling.md").read_text()
    assert "**At paper fidelity** (`results/paper/scaling-laws/`, measured on CPU, 2 cores" in page
    assert "| scaling-laws | α\\_m at γ = −1 | claim | [0.9, 1.1] | 1.02 | pass | — | paper |" in page
    assert records.main(["keep", str(src), "--only", "nope", "--to", str(tmp_path / "x"), "--command", "c"]) == 2
    assert not (tmp_path / "x").exists()
