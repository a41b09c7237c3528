"""The HTML report: one offline page with every experiment's claim, figures, checks and configuration.

`build_report(out_dir, sections, title, meta)` writes ``out_dir/index.html`` atomically from
``templates/report.html.j2``. Each section's interactive figures are plotly fragments written by
`tmslab.plots.save_figure` (``stem.html``, no plotly.js inside); they are read and inlined, so the page is
self-contained. plotly.js comes from the installed plotly package — inlined once in the page (default), or
written next to it as ``plotly.min.js`` and referenced relatively (``plotlyjs="file"``). Nothing is fetched
from the network. The PNG next to each fragment is linked (and shown when scripts are off or the fragment
is missing).

The page records script errors (``<html data-script-errors>``) and, once loaded, how many plotly figures
rendered (``data-figures`` / ``data-figures-rendered``); a banner shows any problem. The browser test
reads these back from the DOM that headless Chromium dumps.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypedDict

import jinja2

from tmslab.io import atomic_write_bytes

__all__ = ["Check", "Section", "build_report", "check", "counts_line", "default_meta", "failed", "tally"]

TEMPLATE = "report.html.j2"


class Check(TypedDict, total=False):
    """One quantitative check: ``passed`` is True / False, or None when it was not evaluated. ``kind`` is claim or
    sanity and ``status`` pass / fail / superseded / not evaluated, with its ``reason`` (paper-spec §7.1 D9);
    without a status, it follows ``passed``."""

    name: str
    measured: Any
    expected: Any
    source: str
    passed: bool | None
    note: str
    kind: str
    status: str
    reason: str


def check(name: str, measured: Any, expected: Any, passed: bool | None, source: str = "", note: str = "") -> Check:
    """Convenience constructor for a `Check` dict."""
    return Check(name=name, measured=measured, expected=expected, source=source, passed=passed, note=note)


@dataclass
class Section:
    """One experiment of the report.

    figures: (html fragment path, png path, caption), paths relative to the report's ``out_dir``;
    either path may be None. checks: `Check` dicts. config: shown as JSON in a collapsible block.
    """

    name: str
    title: str
    claim: str
    spec_ref: str
    fidelity: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    figures: Sequence[tuple[str | Path | None, str | Path | None, str]] = field(default_factory=list)
    checks: Sequence[Mapping[str, Any]] = field(default_factory=list)
    notes: str = ""


def default_meta() -> dict[str, str]:
    """Versions of the interpreter and the main packages (callers add seeds, git commit, device...)."""
    import platform

    import matplotlib
    import numpy
    import plotly

    meta = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "plotly": plotly.__version__,
        "matplotlib": matplotlib.__version__,
    }
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a hard dependency of tmslab
        pass
    return meta


# ---- counting (paper-spec §7.1 D9) ------------------------------------------------------------------


def _status(c: Mapping[str, Any]) -> str:
    if c.get("status"):
        return str(c["status"])
    passed = c.get("passed")
    return "not evaluated" if passed is None else ("pass" if passed else "fail")


def tally(checks: list[dict[str, Any]]) -> dict[str, int]:
    """Counts by kind and status (paper-spec §7.1 D9): claims and sanity checks that passed, failed or were not
    evaluated, and superseded rows (of either kind), which are shown but never counted as passed or failed."""
    t = {f"{k}_{s}": 0 for k in ("claims", "sanity") for s in ("pass", "fail", "not_reproduced", "not_evaluated")}
    t["superseded"] = 0
    for c in checks:
        status = _status(c)
        if status == "superseded":
            t["superseded"] += 1
        else:
            kind = "sanity" if c.get("kind") == "sanity" else "claims"
            t[f"{kind}_{status.replace(' ', '_')}"] += 1
    return t


def counts_line(t: dict[str, int], fidelity: str | None = None) -> str:
    """"full fidelity: claims 140/145 pass · 5 not reproduced (findings) · 0 failed · 14 sanity checks pass ·
    13 superseded · 3 not evaluated" (paper-spec §7.2 D10; the CLI's last line, the report's header, summary.json
    and the README say the same). Claims are counted over those evaluated (pass, not reproduced, fail); "failed"
    counts every `fail`, claim or sanity check — the rows that make `tms reproduce` exit 1."""
    judged = t["claims_pass"] + t["claims_not_reproduced"] + t["claims_fail"]
    sp, sf = t["sanity_pass"], t["sanity_fail"]
    parts = [
        f"claims {t['claims_pass']}/{judged} pass",
        f"{t['claims_not_reproduced'] + t['sanity_not_reproduced']} not reproduced (findings)",
        f"{t['claims_fail'] + sf} failed",
        f"{sp} sanity checks pass" if not sf else f"{sp}/{sp + sf} sanity checks pass",
        f"{t['superseded']} superseded",
        f"{t['claims_not_evaluated'] + t['sanity_not_evaluated']} not evaluated",
    ]
    return (f"{fidelity} fidelity: " if fidelity else "") + " · ".join(parts)


def failed(t: dict[str, int]) -> int:
    """How many checks (claims and sanity checks) failed: `tms reproduce` / `tms report` exit 1 when > 0 (D10)."""
    return t["claims_fail"] + t["sanity_fail"]


# ---- helpers -----------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _anchor(name: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "section"
    anchor, i = base, 2
    while anchor in used:
        anchor, i = f"{base}-{i}", i + 1
    used.add(anchor)
    return anchor


def _fmt(v: Any) -> str:
    """Compact display of a measured / expected value."""
    if v is None:
        return "—"
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy / torch scalar
        v = v.item()
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return repr(o)


def _rel(out_dir: Path, p: str | Path | None) -> str | None:
    """A figure path as given, made relative to out_dir (absolute paths inside out_dir are accepted)."""
    if p is None:
        return None
    p = Path(p)
    if p.is_absolute():
        try:
            p = p.relative_to(out_dir)
        except ValueError:
            return p.as_uri()
    return p.as_posix()


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    # never let the library text close our <script> element early
    return get_plotlyjs().replace("</script", "<\\/script")


def _section_context(s: Section, out_dir: Path, used: set[str]) -> dict[str, Any]:
    figures = []
    for fig in s.figures:
        if len(fig) != 3:
            raise ValueError(f"section {s.name!r}: a figure is (html path, png path, caption), got {fig!r}.")
        html, png, caption = fig
        entry: dict[str, Any] = {"png": _rel(out_dir, png), "caption": caption, "fragment": None, "missing": None}
        if html is not None:
            path = Path(html) if Path(html).is_absolute() else out_dir / html
            if path.is_file():
                entry["fragment"] = path.read_text(encoding="utf-8")
            else:
                entry["missing"] = f"{_rel(out_dir, html)} not found"
        figures.append(entry)
    checks = []
    for c in s.checks:
        status = _status(c)
        checks.append(
            {
                "name": c.get("name", ""),
                "measured": _fmt(c.get("measured")),
                "expected": _fmt(c.get("expected")),
                "source": c.get("source", ""),
                "note": c.get("note", ""),
                "kind": c.get("kind", "claim"),
                "reason": c.get("reason", ""),
                "decision": c.get("decision", ""),
                "decision_rule": c.get("decision_rule", ""),
                "judged_at": c.get("judged_at") or "",
                "status": _CSS[status],
                "label": status.upper(),
                "outcome": _superseded_outcome(c) if status == "superseded" else "",
                "figure": _figure_png(s, c.get("figure", "")),
            }
        )
    t = tally(s.checks)
    n_passed = t["claims_pass"] + t["sanity_pass"]
    n_failed = t["claims_fail"] + t["sanity_fail"]
    return {
        "name": s.name,
        "title": s.title,
        "claim": s.claim,
        "spec_ref": s.spec_ref,
        "fidelity": s.fidelity,
        "anchor": _anchor(s.name or s.title, used),
        "figures": figures,
        "checks": checks,
        "notes": s.notes,
        "config_json": json.dumps(dict(s.config), indent=2, default=_json_default, sort_keys=False) if s.config else "",
        "n_passed": n_passed,
        "n_failed": n_failed,
        "n_evaluated": n_passed + n_failed,
        "n_na": t["claims_not_evaluated"] + t["sanity_not_evaluated"],
        "tally": t,
    }


def _figure_png(s: Section, name: str) -> str | None:
    """The PNG of the section's figure called `name` (a check's evidence figure), None without one."""
    if not name:
        return None
    for _html, png, _caption in s.figures:
        if png is not None and Path(png).stem == name:
            return Path(png).as_posix()
    return None


def _findings(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every `not reproduced` row, with its section, for the report's Findings section (paper-spec §7.2 D10)."""
    return [{**c, "section": s["title"], "anchor": s["anchor"], "experiment": s["name"]}
            for s in sections for c in s["checks"] if c["status"] == "nr"]


def _superseded_outcome(c: Mapping[str, Any]) -> str:
    return "passes" if c.get("passed") else "fails"


#: CSS class of each status: grey for not evaluated, muted purple for superseded.
_CSS = {"pass": "pass", "fail": "fail", "not reproduced": "nr", "not evaluated": "na", "superseded": "sup"}


def _environment() -> jinja2.Environment:
    template_dir = resources.files("tmslab") / "templates"
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (template_dir / name).read_text(encoding="utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# ---- the page ----------------------------------------------------------------------------------------


def build_report(
    out_dir: Path,
    sections: list[Section],
    title: str,
    meta: dict[str, Any] | None = None,
    *,
    plotlyjs: Literal["inline", "file"] = "inline",
    fidelity: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` (atomically) and return its path.

    ``meta`` (versions, seeds, commit, device ...) is shown at the foot of the page; a "generated" entry,
    if present, is shown in the header. ``plotlyjs='file'`` writes ``plotly.min.js`` beside the page
    instead of inlining it (smaller page; the two files must then travel together). ``fidelity`` ("quick" |
    "full"), when given, heads the counts line of the header."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if plotlyjs not in ("inline", "file"):
        raise ValueError(f"plotlyjs must be 'inline' or 'file', got {plotlyjs!r}.")
    used: set[str] = set()
    ctx_sections = [_section_context(s, out_dir, used) for s in sections]
    t = tally([c for s in sections for c in s.checks])
    meta = dict(meta or {})
    generated = meta.get("generated") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta.setdefault("generated", generated)
    meta_rows = []
    for key, value in meta.items():
        if isinstance(value, (dict, list, tuple)):
            meta_rows.append((key, json.dumps(value, indent=2, default=_json_default), True))
        else:
            meta_rows.append((key, _fmt(value), False))
    js = _plotlyjs()
    if plotlyjs == "file":
        target = out_dir / "plotly.min.js"
        if not target.is_file() or target.read_text(encoding="utf-8") != js:
            _atomic_write_text(target, js)
    html = (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=title,
            sections=ctx_sections,
            meta_rows=meta_rows,
            generated=generated,
            plotlyjs_inline=js if plotlyjs == "inline" else None,
            plotlyjs_src="plotly.min.js",
            n_passed=sum(s["n_passed"] for s in ctx_sections),
            n_failed=sum(s["n_failed"] for s in ctx_sections),
            n_evaluated=sum(s["n_evaluated"] for s in ctx_sections),
            n_na=sum(s["n_na"] for s in ctx_sections),
            tally=t,
            findings=_findings(ctx_sections),
            fidelity=fidelity,
            counts=counts_line(t),  # the fidelity has its own badge beside it
        )
    )
    index = out_dir / "index.html"
    _atomic_write_text(index, html)
    return index
