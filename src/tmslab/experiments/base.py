"""What an experiment is: a declarative set of training runs, and an analysis of the saved weights.

An experiment module declares its runs (`runs(quick)` → named TrainConfigs, or sweep specs) and
analyses them (`analyze(ctx)` → checks and figures). Analyses only read what is on disk — the run
directories — so every number in the report can be recomputed from the saved weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from tmslab.config import TrainConfig
from tmslab.io import Run, RunFormatError, load_run, save_run

CheckKind = Literal["claim", "sanity"]
CheckStatus = Literal["pass", "fail", "not reproduced", "superseded", "not evaluated"]
STATUSES: tuple[str, ...] = ("pass", "fail", "not reproduced", "superseded", "not evaluated")
Tier = Literal["quick", "full", "paper"]
TIERS: tuple[str, ...] = ("quick", "full", "paper")

#: The decisions of paper-spec §7.2 that may make a row `not reproduced` (D10: only a decision may; a new
#: disagreement is a `fail` until one does). Each maps to what it rules, shown beside its rows in the Findings.
DECISIONS: dict[str, str] = {
    "D12": "energy jumps: the all-jumps row at seeds 0–15, and the late-jump claim stated before it was measured on "
           "seeds 16–47",
    "D14": "k-gon families in the paper's notation; the published second 12-gon point is not a critical point",
    "D15": "the Bayesian 5 → 6 transition on the data posterior with the N(0, I) prior",
    "D16": "scaling laws: rows (a)–(f) in the paper's α_p notation, exponents at the paper's exp-10 schedule",
    "D17": "double descent: the interior maximum, T = 5 T-gons and the weight-decay row at the paper's schedule",
    "D19": "compressed computation: the APD claim and its critique's claims at full fidelity",
}


@dataclass
class Check:
    """One quantitative acceptance check (paper-spec §7; kinds per §7.1 D9)."""

    name: str
    """What is checked, in a few words."""
    measured: Any
    """The measured value (a number, or a short list/string)."""
    expected: str
    """The accepted range, in words ("[0.9, 1.1]", "≥ 8 of 16")."""
    passed: bool
    """Whether measured lies in the expected range."""
    source: str = ""
    """Where the expectation comes from: paper-spec section and checklist id."""
    note: str = ""
    """Why the tolerance is what it is, or what was chosen where the spec is silent."""
    kind: CheckKind = "claim"
    """claim: a paper claim measured on trained weights (counted as reproduced); sanity: a theorem, closed
    form or implementation invariant (listed separately)."""
    status: CheckStatus | None = None
    """None: pass / fail from `passed`. not reproduced: measured at the fidelity it needs, does not hold, and a
    paper-spec §7.2 decision (`decision`) says so — a finding, not a failure (D10); superseded: a row kept at the
    setting the spec first named, with its evidence in `reason`; not evaluated: with the reason (e.g. needs
    paper fidelity)."""
    reason: str = ""
    """Evidence for a superseded or not-reproduced row (decision, measurement) or why it was not evaluated."""
    decision: str = ""
    """The paper-spec §7 decision behind a `not reproduced` or `superseded` row (e.g. "D12"); empty otherwise."""
    figure: str = ""
    """The name of one of the experiment's figures that shows the evidence (shown beside a finding)."""
    tier: Tier = "quick"
    """The lowest fidelity that can judge the check (D11); below it the row reads "not evaluated (needs <tier>
    fidelity)". Set by `needs` (or the experiment's `quick_not_evaluated` / `needs_paper`)."""

    def __post_init__(self) -> None:
        if self.kind not in ("claim", "sanity"):
            raise ValueError(f"check kind must be claim or sanity, got {self.kind!r}.")
        if self.status is None:
            self.status = "pass" if self.passed else "fail"
        elif self.status not in STATUSES:
            raise ValueError(f"check status must be one of {', '.join(STATUSES)}, got {self.status!r}.")
        if self.tier not in TIERS:
            raise ValueError(f"check tier must be quick, full or paper, got {self.tier!r}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": _jsonable(self.measured),
            "expected": self.expected,
            "passed": bool(self.passed),
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "decision": self.decision,
            "decision_rule": DECISIONS.get(self.decision, ""),
            "tier": self.tier,
            "figure": self.figure,
            "source": self.source,
            "note": self.note,
        }


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _bounds(lo: float, hi: float) -> None:
    if not lo <= hi:  # also catches NaN bounds
        raise ValueError(f"check bounds must satisfy lo ≤ hi, got [{lo}, {hi}].")


def within(
    name: str, value: float, lo: float, hi: float, source: str, note: str = "", kind: CheckKind = "claim"
) -> Check:
    """A check that lo ≤ value ≤ hi (bounds included; NaN or ±inf fails)."""
    _bounds(lo, hi)
    ok = math.isfinite(value) and lo <= value <= hi
    return Check(name, float(value), f"[{lo:g}, {hi:g}]", ok, source, note, kind)


def at_least(name: str, value: float, lo: float, source: str, note: str = "", kind: CheckKind = "claim") -> Check:
    """A check that value ≥ lo (bound included; NaN or ±inf fails: an infinite measurement is a broken one)."""
    return Check(name, value, f"≥ {lo:g}", math.isfinite(float(value)) and value >= lo, source, note, kind)


def at_most(name: str, value: float, hi: float, source: str, note: str = "", kind: CheckKind = "claim") -> Check:
    """A check that value ≤ hi (bound included; NaN or ±inf fails)."""
    return Check(name, value, f"≤ {hi:g}", math.isfinite(float(value)) and value <= hi, source, note, kind)


def all_within(
    name: str, values: Any, lo: float, hi: float, source: str, note: str = "", kind: CheckKind = "claim"
) -> Check:
    """A check that every value lies in [lo, hi]; an empty list fails (nothing was measured)."""
    _bounds(lo, hi)
    vals = [float(v) for v in values]
    ok = bool(vals) and all(lo <= v <= hi for v in vals)
    return Check(name, [round(v, 4) for v in vals], f"all in [{lo:g}, {hi:g}]", ok, source, note, kind)


def superseded(check: Check, reason: str) -> Check:
    """`check` kept at the setting the spec first named, marked superseded (§7.1 D9); `reason` is the evidence
    (the decision id and the measurement behind it). Its pass / fail is recorded but not counted."""
    check.status, check.reason = "superseded", reason
    return check


def finding(check: Check, decision: str, evidence: str) -> Check:
    """`check` judged under a paper-spec §7.2 decision (D10): if it fails as measured, it is `not reproduced` — a
    finding shown with `evidence` (the numbers that say why), never counted as a pass nor as a failure; if it
    passes, it stays a pass. `decision` must be one of `DECISIONS`: nothing else may make a row not reproduced."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)} (paper-spec §7.2), got {decision!r}.")
    check.decision = decision
    if check.status == "fail":
        check.status, check.reason = "not reproduced", evidence
    return check


def needs(check: Check, tier: Tier) -> Check:
    """Declare the lowest fidelity that can judge `check` (D11); `gate` turns it into "not evaluated" below."""
    if tier not in TIERS:
        raise ValueError(f"tier must be quick, full or paper, got {tier!r}.")
    check.tier = tier
    return check


def needs_reason(tier: str) -> str:
    """"needs full fidelity" / "needs paper fidelity": the reason of a row judged below its tier."""
    return f"needs {tier} fidelity"


#: The reason a claim is not evaluated in quick mode (paper-spec §7.1 D9, issue 12 §4).
NEEDS_FULL = needs_reason("full")


def gate(checks: list[Check], fidelity: str, needs_full: tuple[str, ...] = (),
         needs_paper: tuple[str, ...] = ()) -> list[Check]:
    """Every check whose tier (its own, or raised by a name containing one of `needs_full` / `needs_paper`) lies
    above `fidelity` becomes "not evaluated (needs <tier> fidelity)": this run cannot judge it, so it is neither a
    pass nor a fail (D11)."""
    rank = {t: i for i, t in enumerate(TIERS)}
    if fidelity not in rank:
        raise ValueError(f"fidelity must be quick, full or paper, got {fidelity!r}.")
    for c in checks:
        if any(k in c.name for k in needs_paper):
            c.tier = "paper"
        elif any(k in c.name for k in needs_full) and rank[c.tier] < rank["full"]:
            c.tier = "full"
        if rank[c.tier] > rank[fidelity] and c.status in ("pass", "fail", "not reproduced"):
            c.status, c.reason = "not evaluated", needs_reason(c.tier)
    return checks


@dataclass
class FigureSpec:
    """A figure an analysis produced: interactive (plotly) and static (matplotlib) versions."""

    name: str
    plotly: Any
    static: Any
    caption: str = ""


@dataclass
class Context:
    """What an analysis sees: its runs as saved on disk, its sweeps' tables, and the fidelity."""

    out: Path
    fidelity: Tier
    """The tier the experiment runs at: quick, full, or paper (only experiments with `paper_tier`)."""
    runs: dict[str, Run] = field(default_factory=dict)
    sweeps: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.fidelity == "quick"


@dataclass
class Analysis:
    checks: list[Check] = field(default_factory=list)
    figures: list[FigureSpec] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)
    """Extra numbers recorded in the experiment's results.json (and shown in the report)."""


class Experiment:
    """Base class; subclasses set the class attributes and implement `runs` and `analyze`."""

    name: str = ""
    title: str = ""
    claim: str = ""
    """The paper's claim in one sentence."""
    spec_ref: str = ""
    """paper-spec section and checklist ids."""
    notes: str = ""
    """Choices made where the paper or spec is silent, shown in the report."""
    quick_not_evaluated: tuple[str, ...] = ()
    """Claims (substrings of their check names) that quick fidelity cannot show: `tms reproduce --quick` records
    them as "not evaluated (needs full fidelity)" (`gate`). Every other claim must pass at quick fidelity
    (issue 12 §4; pinned by tests/test_reproduce.py on the experiments' own seeds)."""
    needs_paper: tuple[str, ...] = ()
    """Checks (substrings of their names) that only the paper's own sizes and schedule can judge (D11): below
    `paper` fidelity they read "not evaluated (needs paper fidelity)"."""
    paper_tier: bool = False
    """Whether the experiment has runs at the paper's own sizes and schedule (`runs_at("paper")`). At paper
    fidelity the others run — or reuse — their full-fidelity runs and results (D11)."""
    analysis_trains: str = ""
    """What the analysis trains itself, beyond `runs` and `sweeps` (e.g. best-of initialisations, SAEs), in a few
    words: `tms reproduce --dry-run` lists it as not in its estimate."""
    device: str = "cpu"
    """Where a paper-tier experiment trains ("cuda": `tms reproduce --device cuda`); the others ignore it."""

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        """Named training runs; each is saved under DIR/<experiment>/<name>/."""
        return {}

    def runs_at(self, fidelity: Tier) -> dict[str, TrainConfig]:
        """The runs trained at `fidelity`: `runs(quick)` at quick and full; a `paper_tier` experiment overrides
        this to return its paper runs (alone, or beside its full ones)."""
        return self.runs(fidelity == "quick")

    def tier(self, fidelity: Tier) -> Tier:
        """The tier this experiment runs at when `fidelity` is asked: paper only with `paper_tier`, else full."""
        if fidelity not in TIERS:
            raise ValueError(f"fidelity must be quick, full or paper, got {fidelity!r}.")
        return "full" if fidelity == "paper" and not self.paper_tier else fidelity

    def describe(self, fidelity: Tier) -> str:
        """Steps, batch, restarts and grid of every run at `fidelity`, in words, for the report."""
        if fidelity != "paper":
            return self.fidelity(fidelity == "quick")
        return "; ".join(_run_words(self.runs_at("paper")) + _sweep_words(self.sweeps(False)))

    def sweeps(self, quick: bool) -> dict[str, dict[str, Any]]:
        """Named sweep specs (tmslab.sweep format); each is run under DIR/<experiment>/<name>/."""
        return {}

    def analyze(self, ctx: Context) -> Analysis:
        raise NotImplementedError

    def fidelity(self, quick: bool) -> str:
        """Steps, batch, restarts and grid of every run, in words, for the report."""
        return "; ".join(_run_words(self.runs(quick)) + _sweep_words(self.sweeps(quick)))


def _run_words(configs: dict[str, TrainConfig]) -> list[str]:
    return [
        f"{name}: {c.model}, n={c.n_features}, m={c.n_hidden}, {c.n_configs} configurations × {c.restarts} restarts, "
        f"{c.steps} steps × batch {c.batch_size}, lr {c.lr:g}, eval on {c.eval_samples} samples"
        for name, c in configs.items()
    ]


def _sweep_words(specs: dict[str, dict[str, Any]]) -> list[str]:
    parts = []
    for name, spec in specs.items():
        base = spec.get("base", {})
        grid = ", ".join(f"{k}: {_axis_words(v)}" for k, v in spec.get("grid", {}).items())
        parts.append(
            f"{name}: sweep over {grid}; {spec.get('restarts', 1)} restarts; "
            f"{base.get('steps', 10_000)} steps × batch {base.get('batch_size', 1024)}"
        )
    return parts


def _axis_words(axis: Any) -> str:
    if isinstance(axis, dict):
        kind = next((k for k in axis if k.endswith("range")), None)
        if kind:
            lo, hi = axis[kind]
            return f"{axis.get('points')} points {kind.replace('_', ' ')} {lo:g}→{hi:g}"
        return str(axis)
    return f"{len(axis)} values"


def figure(name: str, kind: str, *args: Any, caption: str = "", **kwargs: Any) -> FigureSpec:
    """Both versions of a figure of `tmslab.plots` kind `kind` (e.g. "arrows_2d")."""
    from tmslab.plots import figure_pair

    interactive, static = figure_pair(kind, *args, **kwargs)
    return FigureSpec(name, interactive, static, caption)


def notebook_densities(points: int) -> list[float]:
    """The notebook's sparsity grid 20^(−linspace(0, 1, points)), 1 → 0.05, rounded to 4 digits."""
    return [round(20 ** (-i / (points - 1)), 4) for i in range(points)]


def load_or_make(path: Path, label: str, key: dict[str, Any], make: Callable[[], tuple[Any, dict[str, Any]]]) -> Run:
    """A derived run (trained in stages inside an analysis) saved at `path`: the saved one if its metrics record
    `label` holds `key` (JSON values: what it was made from), else `make()` → (TrainResult, record), saved with
    the record and `key` under `label`, and loaded back — so `tms reproduce` resumes it like any run."""
    try:
        run = load_run(path)
        rec = run.metrics.get(label, {})
        if all(rec.get(k) == v for k, v in key.items()):
            return run
    except RunFormatError:
        pass
    result, record = make()
    save_run(path, result, extra_metrics={label: {**record, **key}}, force=True)
    return load_run(path)
