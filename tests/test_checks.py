"""Checks (paper-spec §7.1 D9): the range helpers, kinds and statuses, the counts of summary.json, the CLI
line and the report, and an output folder that never mixes quick and full fidelity."""

from __future__ import annotations

import math

import pytest

from tmslab.experiments import runner
from tmslab.experiments.base import (
    NEEDS_FULL,
    Check,
    all_within,
    at_least,
    at_most,
    finding,
    gate,
    needs,
    superseded,
    within,
)
from tmslab.report import counts_line, tally

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "value, ok",
    [(0.5, True), (0.0, True), (1.0, True), (-1e-12, False), (1 + 1e-12, False), (NAN, False), (INF, False),
     (-INF, False)],
)
def test_within_includes_bounds_and_fails_nan(value, ok):
    c = within("x", value, 0.0, 1.0, "src")
    assert c.passed is ok and c.status == ("pass" if ok else "fail")
    assert c.kind == "claim" and c.expected == "[0, 1]"


# An infinite measurement is a broken one (issue 28 §3): neither bound accepts ±inf.
@pytest.mark.parametrize("value, ok", [(2, True), (2.0, True), (1.999, False), (NAN, False), (INF, False)])
def test_at_least(value, ok):
    assert at_least("x", value, 2, "src").passed is ok


@pytest.mark.parametrize("value, ok", [(2, True), (1.0, True), (2.001, False), (NAN, False), (-INF, False)])
def test_at_most(value, ok):
    assert at_most("x", value, 2, "src").passed is ok


def test_all_within_empty_nan_and_bounds():
    assert not all_within("x", [], 0, 1, "src").passed  # nothing measured is not a pass
    assert not all_within("x", [0.5, NAN], 0, 1, "src").passed
    assert all_within("x", [0, 1, 0.5], 0, 1, "src").passed
    assert not all_within("x", [0, 1.01], 0, 1, "src").passed


@pytest.mark.parametrize("make", [lambda: within("x", 0.5, 1, 0, "s"), lambda: all_within("x", [1], 1, 0, "s"),
                                  lambda: within("x", 0.5, NAN, 1, "s")])
def test_inverted_or_nan_bounds_are_an_error(make):
    with pytest.raises(ValueError, match="lo ≤ hi"):
        make()


def test_kind_and_status_are_validated():
    with pytest.raises(ValueError, match="claim or sanity"):
        Check("x", 1, "1", True, kind="theorem")
    with pytest.raises(ValueError, match="not evaluated"):
        Check("x", 1, "1", True, status="skipped")
    assert Check("x", 1, "1", False, kind="sanity").to_dict()["status"] == "fail"


def test_superseded_keeps_its_measurement_and_evidence():
    c = superseded(at_least("old row", 3, 5, "src"), "§7.1 D3: withdrawn")
    d = c.to_dict()
    assert d["status"] == "superseded" and d["passed"] is False and d["measured"] == 3
    assert d["reason"] == "§7.1 D3: withdrawn"


def test_gate_marks_only_named_checks_and_only_in_quick_mode():
    def make():
        return [at_least("needs many seeds", 1, 5, "s"), at_least("cheap claim", 5, 5, "s"),
                superseded(at_least("needs many seeds, old row", 1, 5, "s"), "D1")]

    full = gate(make(), "full", ("needs many seeds",))
    assert [c.status for c in full] == ["fail", "pass", "superseded"]
    quick = gate(make(), "quick", ("needs many seeds",))
    assert [c.status for c in quick] == ["not evaluated", "pass", "superseded"]
    assert quick[0].reason == NEEDS_FULL


def _rows() -> list[dict]:
    rows = [within("a", 0.5, 0, 1, "s"), within("b", 2, 0, 1, "s"), at_least("c", 1, 0, "s", kind="sanity"),
            superseded(within("d", 2, 0, 1, "s"), "D1"), Check("e", 1, "1", True, status="not evaluated",
                                                                 reason=NEEDS_FULL),
            finding(within("f", 2, 0, 1, "s"), "D12", "9 of 35 jumps")]
    return [r.to_dict() for r in rows]


def test_tally_and_counts_line():
    t = tally(_rows())
    assert t == {"claims_pass": 1, "claims_fail": 1, "claims_not_reproduced": 1, "claims_not_evaluated": 1,
                 "sanity_pass": 1, "sanity_fail": 0, "sanity_not_reproduced": 0, "sanity_not_evaluated": 0,
                 "superseded": 1}
    assert counts_line(t, "quick") == ("quick fidelity: claims 1/3 pass · 1 not reproduced (findings) · 1 failed · "
                                       "1 sanity checks pass · 1 superseded · 1 not evaluated")
    # a check dict without kind/status (an older results.json, a sweep report) counts as a claim by `passed`
    assert tally([{"passed": True}, {"passed": None}])["claims_not_evaluated"] == 1


def _fake_results(out, name: str, quick: bool, rows: list[dict] | None = None) -> None:
    """An experiment's results.json inside a reproduce folder, written with tmslab's own markers."""
    from tmslab.io import atomic_write_json, make_dir

    make_dir(out, "reproduce")
    make_dir(out / name)
    res = {"name": name, "title": name, "claim": "", "spec_ref": "§0", "notes": "", "fidelity": "", "quick": quick,
           "configs": {}, "sweeps": {}, "checks": _rows() if rows is None else rows, "figures": [], "tables": {}}
    atomic_write_json(out / name / "results.json", res)


def test_summary_counts_claims_and_sanity_separately(tmp_path):
    _fake_results(tmp_path, "intro", quick=True)
    summary = runner.write_summary(tmp_path)
    assert summary["fidelity"] == "quick" and summary["counts"]["superseded"] == 1
    assert summary["line"].startswith("quick fidelity: claims 1/3 pass · 1 not reproduced (findings) · 1 failed")
    assert {r["status"] for r in summary["checks"]} == {"pass", "fail", "not reproduced", "superseded",
                                                         "not evaluated"}
    html = runner.build_index(tmp_path).read_text()
    assert "quick fidelity" in html and summary["line"].split(": ", 1)[1] in html
    assert "SUPERSEDED" in html and "D1" in html and "NOT EVALUATED" in html and NEEDS_FULL in html
    # D10: the not-reproduced row is listed in the Findings section near the top, with its decision and evidence
    findings = html.split('id="findings"', 1)[1].split("</section>", 1)[0]
    assert ">f<" in findings and "D12" in findings and "9 of 35 jumps" in findings
    assert html.index('id="findings"') < html.index('class="exp"')


def test_finding_needs_a_spec_decision_and_keeps_a_pass():
    with pytest.raises(ValueError, match="D99"):
        finding(within("x", 2, 0, 1, "s"), "D99", "no such decision")
    passed = finding(within("x", 0.5, 0, 1, "s"), "D16", "unused")
    assert passed.status == "pass" and passed.decision == "D16" and passed.reason == ""
    failed = finding(within("x", 2, 0, 1, "s"), "D16", "slope 0.87")
    assert failed.status == "not reproduced" and failed.reason == "slope 0.87" and not failed.passed


@pytest.mark.parametrize("statuses, code", [(("pass", "not reproduced"), 0), (("pass", "fail"), 1),
                                            (("superseded", "not evaluated"), 0)])
def test_report_exits_1_only_on_a_failed_check(tms, tmp_path, statuses, code):
    """D10: a `fail` anywhere makes `tms report` (as `tms reproduce`) exit 1; findings and the rest exit 0."""
    made = {"pass": within("a", 0.5, 0, 1, "s"), "fail": within("b", 2, 0, 1, "s", kind="sanity"),
            "not reproduced": finding(within("c", 2, 0, 1, "s"), "D12", "9 of 35"),
            "superseded": superseded(within("d", 2, 0, 1, "s"), "D1"),
            "not evaluated": Check("e", 1, "1", True, status="not evaluated", reason=NEEDS_FULL)}
    _fake_results(tmp_path, "intro", quick=False, rows=[made[s].to_dict() for s in statuses])
    got, out, err = tms("report", tmp_path)
    assert got == code and "full fidelity: claims" in out
    assert ("FAILED intro: b = 2" in err) is (code == 1)


def test_gate_judges_each_check_at_its_tier():
    """D11: a check below its tier reads "not evaluated (needs <tier> fidelity)"; at or above it, it is judged."""
    def make():
        return [needs(within("p", 2, 0, 1, "s"), "paper"), within("q", 0.5, 0, 1, "s"),
                within("named", 2, 0, 1, "s")]

    for fidelity, want in [("quick", ["not evaluated", "pass", "not evaluated"]),
                           ("full", ["not evaluated", "pass", "fail"]), ("paper", ["fail", "pass", "fail"])]:
        got = gate(make(), fidelity, needs_full=("named",))
        assert [c.status for c in got] == want, fidelity
    assert gate(make(), "full", needs_full=("named",))[0].reason == "needs paper fidelity"
    assert gate(make(), "quick", needs_full=("named",))[2].reason == "needs full fidelity"
    assert gate(make(), "full", needs_paper=("q",))[1].reason == "needs paper fidelity"


@pytest.mark.parametrize("have, want", [(False, "--quick"), (True, None)])
def test_out_folder_refuses_to_mix_fidelities(tms, tmp_path, have, want):
    _fake_results(tmp_path, "intro", quick=have)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = ["reproduce", "--out", tmp_path, "--only", "nonlinear-compression", "--quiet"] + ([want] if want else [])
    code, _, err = tms(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert ("full" if not have else "quick") + "-fidelity results" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
