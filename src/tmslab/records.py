"""Markdown tables from recorded runs: `tms report --markdown` and the generated parts of the docs.

A *record* is what `tms reproduce` leaves in a folder without the weights: `summary.json` and each experiment's
`results.json` (the checks, as `tmslab.experiments.runner` writes them). The repository keeps two:

- `results/full/` — one full-fidelity run of every experiment (`results/full/<experiment>/results.json`);
- `results/paper/<experiment>/` — the paper-fidelity runs, one folder per experiment (paper-spec §7.2 D11), each
  with its `summary.json`, `results.json` and `RECORD.md` (command, commit, device, date).

Every result table in the documentation is generated from them, never typed by hand:

    python -m tmslab.records docs            # rewrite every generated table in docs/ and the README's findings
    python -m tmslab.records docs --check    # exit 1 if one is out of date (tests/test_docs.py does the same)
    python -m tmslab.records keep DIR --only scaling-laws --to results/paper --command "tms reproduce ..."
                                             # record a finished reproduce folder's experiments, with provenance
    tms report --markdown results/full       # the claims table of any reproduce folder, on stdout

The generated regions lie between marker comments (`<!-- records:NAME -->` … `<!-- /records:NAME -->`); the
text around them is written by hand. docs/reproducing.md holds the summary, findings, superseded, full and paper
regions; any page under docs/ may hold `<!-- records:experiment/NAME -->`, filled with experiment NAME's claims
tables from every record that has it. Without a record the regions say "no recorded run yet".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmslab.config import ConfigError
from tmslab.report import counts_line, tally

RESULTS = "results.json"
SUMMARY = "summary.json"
PROVENANCE = "RECORD.md"

#: The claims table's columns (`tms report --markdown`; one row per check, sanity checks included).
COLUMNS: tuple[str, ...] = ("experiment", "claim", "kind", "expected", "measured", "status", "decision", "judged at")

NO_RECORD = "No recorded run yet."

#: Longest list of measured values shown in full; longer ones show their first values and their length.
MAX_VALUES = 8


@dataclass(frozen=True)
class Record:
    """One recorded `tms reproduce` folder: its experiments' results.json, in order, and its summary."""

    path: Path
    """The folder (e.g. results/full)."""
    results: list[dict[str, Any]]
    """Each experiment's results.json, in the summary's order (by name where there is no summary)."""
    summary: dict[str, Any] | None
    """summary.json, when the folder has one."""

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every check, with its experiment's name as `experiment` (as summary.json lists them)."""
        return [{**c, "experiment": res["name"]} for res in self.results for c in res.get("checks", [])]

    @property
    def fidelity(self) -> str:
        """quick, full or paper: the summary's word, else the highest tier any row was judged at."""
        if self.summary and self.summary.get("fidelity"):
            return str(self.summary["fidelity"])
        judged = {c.get("judged_at") for c in self.rows}
        for tier in ("paper", "full", "quick"):
            if tier in judged:
                return tier
        return "quick" if any(r.get("quick") for r in self.results) else "full"

    @property
    def line(self) -> str:
        """The counts line (paper-spec §7.2 D10), computed from the rows themselves."""
        return counts_line(tally(self.rows), self.fidelity)

    @property
    def provenance(self) -> str:
        """"measured on <device>, <date>, commit <sha>" for a record made by `keep`; empty otherwise."""
        prov = (self.summary or {}).get("provenance")
        if not prov:
            return ""
        return f"measured on {prov['device']}, {prov['date']}, commit {prov['commit'][:10]}"


def load_record(directory: str | Path) -> Record | None:
    """The record in `directory` (results.json at its top, else one folder down, else two), or None if it holds none.

    A missing folder is no record; a results.json that is not JSON, or two for one experiment, is a ConfigError.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    # the shallowest level that has any: DIR/results.json (one experiment's record), DIR/NAME/results.json (a
    # reproduce folder) or DIR/PART/NAME/results.json (a record kept as a reproduce folder inside its own folder)
    levels = (sorted(directory.glob(pattern)) for pattern in (RESULTS, f"*/{RESULTS}", f"*/*/{RESULTS}"))
    paths = next((found for found in levels if found), [])
    results: dict[str, dict[str, Any]] = {}
    for path in paths:
        res = _read_json(path)
        name = res.get("name")
        if not isinstance(name, str) or not isinstance(res.get("checks"), list):
            raise ConfigError(f"{path} is not an experiment's results.json (it needs a name and a checks list).")
        if name in results:
            raise ConfigError(f"{directory} holds two results.json for experiment {name!r}; keep one.")
        results[name] = res
    if not results:
        return None
    summary = _read_json(directory / SUMMARY) if (directory / SUMMARY).is_file() else None
    order = [n for n in (summary or {}).get("experiments", []) if n in results]
    order += sorted(set(results) - set(order))
    return Record(directory, [results[n] for n in order], summary)


def load_records(root: str | Path) -> list[Record]:
    """One record per sub-folder of `root` that holds one, by name: results/paper/<experiment>/ are separate runs,
    each with its own provenance. A missing `root` has none."""
    root = Path(root)
    if not root.is_dir():
        return []
    records = [load_record(sub) for sub in sorted(p for p in root.iterdir() if p.is_dir())]
    return [r for r in records if r is not None]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}).") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a JSON object.")
    return doc


# ---- cells and tables --------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """One Markdown table cell, shown as written: the characters Markdown would read as markup (`|`, `*`, `_`,
    backquotes, a `](` link, `<` opening a tag) escaped, line breaks as spaces, empty as an em dash."""
    text = re.sub(r"\s*\n\s*", " ", str(value)).strip()
    text = re.sub(r"([\\|*_`])", r"\\\1", text).replace("](", "]\\(")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text) or "—"  # a tag's start; "< 0.1" stays as it is


def measured(value: Any) -> str:
    """A measured value as the report shows it: 4 significant digits, long lists cut after MAX_VALUES values."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(measured(v) for v in value[:MAX_VALUES])
        more = f", … ({len(value)} values)" if len(value) > MAX_VALUES else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):  # e.g. a count per density
        return "{" + ", ".join(f"{k}: {measured(v)}" for k, v in value.items()) + "}"
    return str(value)


def status(row: dict[str, Any]) -> str:
    """The row's status; a not-evaluated row with its reason ("not evaluated (needs paper fidelity)")."""
    st = str(row.get("status") or ("pass" if row.get("passed") else "fail"))
    if st == "not evaluated" and row.get("reason"):
        return f"{st} ({row['reason']})"
    return st


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (GitHub and MkDocs both render it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def claims_table(rows: Sequence[dict[str, Any]]) -> str:
    """Every check as one table row: the columns of `COLUMNS`."""
    return table(
        COLUMNS,
        [
            [r.get("experiment", ""), r.get("name", ""), r.get("kind", "claim"), r.get("expected", ""),
             measured(r.get("measured")), status(r), r.get("decision", ""), r.get("judged_at") or ""]
            for r in rows
        ],
    )  # fmt: skip


def markdown_summary(directory: str | Path) -> tuple[str, dict[str, Any]]:
    """`tms report --markdown DIR`: the counts line and the claims table of the reproduce folder or record
    `directory`, and its rows and counts (as summary.json's "checks" and "counts", for the exit code)."""
    record = load_record(directory)
    if record is None:
        raise ConfigError(f"{directory} holds no experiment results (no {RESULTS}); give a `tms reproduce --out` "
                          "folder or a record such as results/full.")  # fmt: skip
    rows = record.rows
    return f"{record.line}\n\n{claims_table(rows)}\n", {"checks": rows, "counts": tally(rows)}


def markdown_report(directory: str | Path) -> str:
    """The Markdown text of `markdown_summary`."""
    return markdown_summary(directory)[0]


# ---- the generated regions ---------------------------------------------------------------------------


def _findings(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [r for rec in records for r in rec.rows if r.get("status") == "not reproduced"]


def _label(record: Record, root: Path) -> str:
    """The record's folder as the repository names it (results/full), whatever `root` was given."""
    try:
        return record.path.relative_to(root).as_posix()
    except ValueError:
        return record.path.as_posix()


def _lines(records: Sequence[Record], root: Path) -> str:
    return "\n".join(f"- `{_label(rec, root)}/`: {rec.line}" + (f" ({rec.provenance})" if rec.provenance else "")
                     for rec in records)


def findings_table(records: Sequence[Record], evidence: bool = True) -> str:
    """The `not reproduced` rows (paper-spec §7.2 D10) of `records`: claim, decision, expected, measured and,
    with `evidence`, why."""
    header = ["experiment", "claim", "decision", "expected", "measured", "judged at"]
    rows = [[r["experiment"], r.get("name", ""), r.get("decision", ""), r.get("expected", ""),
             measured(r.get("measured")), r.get("judged_at") or ""] + ([r.get("reason", "")] if evidence else [])
            for r in _findings(records)]  # fmt: skip
    if not rows:
        return "No finding: no check is `not reproduced` in these records."
    return table(header + (["evidence"] if evidence else []), rows)


def superseded_table(records: Sequence[Record]) -> str:
    """The superseded rows (paper-spec §7.1 D9) of `records` with their recorded evidence."""
    rows = [[r["experiment"], r.get("name", ""), r.get("decision", ""), measured(r.get("measured")),
             r.get("expected", ""), r.get("reason", "")]
            for rec in records for r in rec.rows if r.get("status") == "superseded"]  # fmt: skip
    if not rows:
        return "No superseded row in these records."
    return table(["experiment", "superseded row", "decision", "measured", "expected", "evidence"], rows)


def _by_experiment(record: Record, where: str = "") -> str:
    """Per experiment of `record`: a heading, its counts line and its claims table."""
    parts = []
    for res in record.results:
        rows = [{**c, "experiment": res["name"]} for c in res.get("checks", [])]
        heading = f"#### `{res['name']}`" + (f" (`{where}/`)" if where else "")
        parts.append(f"{heading}\n\n{counts_line(tally(rows), record.fidelity)}\n\n{claims_table(rows)}")
    return "\n\n".join(parts)


def regions(root: str | Path = ".") -> dict[str, dict[str, str]]:
    """The generated text of every marked region, by file (relative to `root`) and region name."""
    root = Path(root)
    full_record = load_record(root / "results" / "full")
    full = [full_record] if full_record else []
    paper = load_records(root / "results" / "paper")
    both = [*full, *paper]
    if both:
        summary = _lines(both, root)
    else:
        summary = (
            f"{NO_RECORD} `results/full/` and `results/paper/` hold no results.json (a full run takes over an hour)."
        )
    page = {
        "summary": summary,
        "findings": findings_table(both) if both else NO_RECORD,
        "superseded": superseded_table(both) if both else NO_RECORD,
        "full": "\n\n".join(_by_experiment(r) for r in full) if full else f"{NO_RECORD} `results/full/` holds none.",
        "paper": "\n\n".join(_by_experiment(r, _label(r, root)) for r in paper)
        if paper
        else f"{NO_RECORD} `results/paper/` holds none.",
    }
    if both:
        readme = f"{_lines(both, root)}\n\n{findings_table(both, evidence=False)}"
    else:
        readme = f"{NO_RECORD} Once `results/full/` holds one, the claims that do not hold are listed here."
    out = {"docs/reproducing.md": page, "README.md": {"findings": readme}}
    for path in sorted((root / "docs").glob("*.md")):
        names = EXPERIMENT_REGION.findall(path.read_text(encoding="utf-8"))
        if names:
            out[path.relative_to(root).as_posix()] = {f"experiment/{n}": experiment_tables(both, n, root)
                                                      for n in names}
    return out


#: A page's region holding one experiment's claims tables from every record: <!-- records:experiment/NAME -->.
EXPERIMENT_REGION = re.compile(r"<!-- records:experiment/([a-z0-9-]+) -->")


def experiment_tables(records: Sequence[Record], name: str, root: Path) -> str:
    """Experiment `name`'s counts line and claims table from each record that holds it (full, then paper), each
    under a line naming the record and its provenance."""
    parts = []
    for rec in records:
        res = next((r for r in rec.results if r["name"] == name), None)
        if res is None:
            continue
        rows = [{**c, "experiment": name} for c in res.get("checks", [])]
        tier = res.get("tier") or ("quick" if res.get("quick") else "full")
        where = f"`{_label(rec, root)}/`" + (f", {rec.provenance}" if rec.provenance else "")
        parts.append(f"**At {tier} fidelity** ({where}): {counts_line(tally(rows))}\n\n{claims_table(rows)}")
    return "\n\n".join(parts) if parts else f"{NO_RECORD} No record in `results/` holds `{name}`."


def fill(text: str, generated: dict[str, str], where: str = "") -> str:
    """`text` with each region `<!-- records:NAME -->` … `<!-- /records:NAME -->` replaced by `generated[NAME]`.

    Every region of `generated` must be marked exactly once (else ConfigError, naming `where`)."""
    for name, body in generated.items():
        pattern = re.compile(rf"(<!-- records:{name} -->\n).*?(\n<!-- /records:{name} -->)", re.S)
        found = len(pattern.findall(text))
        if found != 1:
            raise ConfigError(f"{where or 'the text'} must mark region {name!r} once with <!-- records:{name} --> … "
                              f"<!-- /records:{name} -->, found {found}.")  # fmt: skip
        text = pattern.sub(lambda m, body=body: f"{m.group(1)}{body}{m.group(2)}", text)
    return text


def render(root: str | Path = ".") -> dict[str, str]:
    """The new text of every generated file under `root` (docs/reproducing.md, README.md), written or not."""
    root = Path(root)
    out = {}
    for rel, generated in regions(root).items():
        out[rel] = fill((root / rel).read_text(encoding="utf-8"), generated, rel)
    return out


def stale(root: str | Path = ".") -> list[str]:
    """The generated files under `root` whose tables disagree with the records (empty when all agree)."""
    root = Path(root)
    return [rel for rel, text in render(root).items() if (root / rel).read_text(encoding="utf-8") != text]


def write_docs(root: str | Path = ".") -> list[str]:
    """Rewrite the generated regions under `root`; returns the files that changed."""
    root = Path(root)
    changed = []
    for rel, text in render(root).items():
        if (root / rel).read_text(encoding="utf-8") != text:
            (root / rel).write_text(text, encoding="utf-8")
            changed.append(rel)
    return changed


# ---- keeping a record ---------------------------------------------------------------------------------


def _commit() -> str:
    """The git commit of the tmslab source in use ("+ local changes" when its tree differs), or "unknown"."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" + local changes" if dirty else "")


def _training_seconds(edir: Path) -> tuple[float, int]:
    """(train + eval seconds summed over every run saved under `edir`, how many): the wall time of the training,
    whatever parts it was run in."""
    total, count = 0.0, 0
    for metrics in edir.rglob("metrics.json"):
        doc = _read_json(metrics)
        total += float(doc.get("train_seconds", 0.0)) + float(doc.get("eval_seconds", 0.0))
        count += 1
    return total, count


def keep(source: str | Path, to: str | Path, only: Sequence[str], command: str, device: str = "") -> list[Path]:
    """Record experiments `only` of the finished reproduce folder `source` as TO/<experiment>/: its results.json,
    a summary.json of its rows with their provenance, and RECORD.md (command, commit, device, date, wall time).
    No weights are copied. Returns the folders written; refuses (writing nothing) an experiment without results."""
    import datetime
    import os
    import platform

    from tmslab.io import atomic_write_bytes, atomic_write_json

    source, to = Path(source), Path(to)
    found = {}
    for name in only:
        path = source / name / RESULTS
        if not path.is_file():
            raise ConfigError(f"{source} has no results for {name!r} ({path} is missing); run it first.")
        found[name] = _read_json(path)
    written = []
    for name, res in found.items():
        rows = [{**c, "experiment": name} for c in res["checks"]]
        tier = res.get("tier") or ("quick" if res.get("quick") else "full")
        seconds, runs = _training_seconds(source / name)
        where = device or (f"{res.get('device', 'cpu')}: {platform.processor() or platform.machine()}, "
                           f"{os.cpu_count()} cores, torch {res.get('versions', {}).get('torch', '?')}")
        prov = {
            "command": command,
            "commit": _commit(),
            "device": where,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "training_seconds": round(seconds, 1),
            "runs": runs,
            "analysis_seconds": res.get("seconds"),
        }
        summary = {"fidelity": tier, "counts": tally(rows), "line": counts_line(tally(rows), tier), "checks": rows,
                   "experiments": [name], "versions": res.get("versions", {}), "provenance": prov}
        dest = to / name
        dest.mkdir(parents=True, exist_ok=True)
        atomic_write_json(dest / RESULTS, res)
        atomic_write_json(dest / SUMMARY, summary)
        text = (
            f"# `{name}` at {tier} fidelity\n\n"
            f"- **Command:** `{command}`\n"
            f"- **Commit:** {prov['commit']}\n"
            f"- **Device:** {where}\n"
            f"- **Date:** {prov['date']}\n"
            f"- **Wall time:** training {seconds / 3600:.2f} h summed over its {runs} saved runs (whatever parts it "
            f"ran in), then {res.get('seconds', 0):.0f} s for the last invocation's analysis\n"
            f"- **Result:** {summary['line']}\n"
            "- **What is here:** `results.json` (the experiment's checks, tables, configurations) and `summary.json` "
            "(its rows, counts and this provenance), without weights.\n"
        )
        atomic_write_bytes(dest / PROVENANCE, text.encode())
        written.append(dest)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tmslab.records", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    docs = sub.add_parser("docs", help="write docs/reproducing.md's tables and the README's findings from results/")
    docs.add_argument("--root", type=Path, default=Path("."), help="the repository root (default: .)")
    docs.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    table_cmd = sub.add_parser("table", help="print the claims table of a reproduce folder or record")
    table_cmd.add_argument("directory", type=Path)
    keep_cmd = sub.add_parser("keep", help="record experiments of a finished reproduce folder, with provenance")
    keep_cmd.add_argument("directory", type=Path, help="the reproduce folder")
    keep_cmd.add_argument("--only", required=True, help="comma list of experiments to record")
    keep_cmd.add_argument("--to", type=Path, required=True, help="where: TO/<experiment>/ (e.g. results/paper)")
    keep_cmd.add_argument("--command", dest="made_by", required=True, help="the command that made the folder, as run")
    keep_cmd.add_argument("--device", default="", help="the machine in words (default: read from this one)")
    args = parser.parse_args(argv)
    try:
        if args.command == "keep":
            names = [n.strip() for n in args.only.split(",") if n.strip()]
            for dest in keep(args.directory, args.to, names, args.made_by, args.device):
                print(f"wrote {dest}")
            return 0
        if args.command == "table":
            sys.stdout.write(markdown_report(args.directory))
            return 0
        if args.check:
            bad = stale(args.root)
            for rel in bad:
                print(f"{rel} disagrees with the records; run `python -m tmslab.records docs`.", file=sys.stderr)
            return 1 if bad else 0
        for rel in write_docs(args.root):
            print(f"wrote {rel}")
        return 0
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
