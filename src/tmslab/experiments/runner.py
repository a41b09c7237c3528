"""`tms reproduce`: train every registered experiment's runs, analyse the saved weights, write the
checks, figures, summary.json and the HTML report. Resumable at two levels: a finished experiment
(its results.json) is skipped, and within an unfinished one every finished run is reused.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tmslab.config import ConfigError, versions
from tmslab.experiments import EXPERIMENTS, get
from tmslab.experiments.base import Context, Experiment, Tier, gate
from tmslab.io import (
    RunFormatError,
    atomic_write_json,
    check_output_dir,
    finite_json,
    load_run,
    make_dir,
    output_kind,
    remove_output,
    save_run,
)
from tmslab.progress import Interrupted
from tmslab.report import counts_line, tally

RESULTS = "results.json"
SUMMARY = "summary.json"


def select(only: str | list[str] | None) -> list[Experiment]:
    """Experiments named in `only` (comma list or list), in registry order; all when None."""
    if only is None:
        return list(EXPERIMENTS.values())
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    if not names:
        raise ConfigError("--only needs at least one experiment name.")
    wanted = [get(n).name for n in names]  # get() raises a one-line ConfigError with a suggestion
    return [e for e in EXPERIMENTS.values() if e.name in wanted]


def result_tier(res: dict[str, Any]) -> str:
    """The tier an experiment's results.json was computed at (records older than the paper tier say only
    quick or not)."""
    return res.get("tier") or ("quick" if res.get("quick") else "full")


def is_done(edir: Path, tier: str) -> bool:
    try:
        res = json.loads((edir / RESULTS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return result_tier(res) == tier


def finished_run(rdir: Path, config: Any) -> Any:
    """The run saved at `rdir` if it was trained with exactly `config`, else None (missing or another config)."""
    try:
        run = load_run(rdir)
    except RunFormatError:
        return None
    return run if run.config == config else None


def _train_run(rdir: Path, config: Any, progress: bool, desc: str) -> Any:
    """Reuse a finished run with the same configuration, else train and save it atomically."""
    from tmslab.training import train

    run = finished_run(rdir, config)
    if run is not None:
        return run
    result = train(config, progress=progress, desc=desc)
    save_run(rdir, result, force=True)
    return load_run(rdir)


def run_experiment(exp: Experiment, out: Path, fidelity: Tier, progress: bool = True) -> dict[str, Any]:
    """Train (or reuse) the experiment's runs and sweeps at `fidelity` (an experiment without a paper tier runs at
    full when paper is asked), analyse them, write figures and results.json."""
    from tmslab.plots import save_figure

    tier = exp.tier(fidelity)
    quick = tier == "quick"
    edir = make_dir(out / exp.name)
    start = time.perf_counter()
    ctx = Context(out=edir, fidelity=tier)
    configs = exp.runs_at(tier)
    todo = [name for name, config in configs.items() if finished_run(edir / name, config) is None]
    runs_bar = None
    if progress and len(todo) > 1:  # long experiments (the paper tier): runs done / total and the time left
        from tmslab.progress import bar

        runs_bar = bar(sum(configs[name].steps for name in todo), f"{exp.name}: 0/{len(todo)} runs", "step")
    try:
        for name, config in configs.items():
            ctx.runs[name] = _train_run(edir / name, config, progress, f"{exp.name}/{name}")
            if runs_bar is not None and name in todo:
                runs_bar.update(config.steps)
                runs_bar.set_description(f"{exp.name}: {todo.index(name) + 1}/{len(todo)} runs")
    finally:
        if runs_bar is not None:
            runs_bar.close()
    specs = exp.sweeps(quick)
    if specs:
        from tmslab.sweep import run_sweep

        for name, spec in specs.items():
            ctx.sweeps[name] = run_sweep(spec, edir / name, progress=progress)
    analysis = exp.analyze(ctx)
    gate(analysis.checks, tier, exp.quick_not_evaluated, exp.needs_paper)
    figures = []
    for fig in analysis.figures:
        html, png = save_figure(fig.plotly, fig.static, edir / fig.name)
        figures.append(
            {"name": fig.name, "html": str(html.relative_to(out)), "png": str(png.relative_to(out)),
             "caption": fig.caption}
        )
    results = {
        "name": exp.name,
        "title": exp.title,
        "claim": exp.claim,
        "spec_ref": exp.spec_ref,
        "notes": exp.notes,
        "fidelity": exp.describe(tier),
        "quick": quick,
        "tier": tier,
        "device": exp.device if exp.paper_tier else "cpu",
        "configs": {n: c.to_dict() for n, c in configs.items()},
        "sweeps": specs,
        "checks": [{**c.to_dict(), "judged_at": tier if c.status != "not evaluated" else None}
                   for c in analysis.checks],
        "figures": figures,
        "tables": analysis.tables,
        "seconds": round(time.perf_counter() - start, 2),
        "versions": versions(),
    }
    atomic_write_json(edir / RESULTS, finite_json(results))  # undefined values (NaN) as null
    return results


def collect(out: Path) -> list[dict[str, Any]]:
    """results.json of every experiment under `out`, in registry order."""
    found = []
    for name in EXPERIMENTS:
        path = out / name / RESULTS
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def folder_tier(results: list[dict[str, Any]]) -> str:
    """The fidelity of a reproduce folder: quick, full, or paper when any experiment ran its paper tier (the
    others then hold their full-fidelity results, D11). A folder never mixes quick with another tier."""
    tiers = {result_tier(r) for r in results}
    if "quick" in tiers and len(tiers) > 1:  # reproduce() refuses to mix; only a hand-assembled folder gets here
        raise ConfigError("this folder mixes quick and full-fidelity results; rerun them into separate --out folders.")
    return "quick" if "quick" in tiers else "paper" if "paper" in tiers else "full"


def write_summary(out: Path) -> dict[str, Any]:
    """DIR/summary.json: every check of every finished experiment, and the counts by kind and status."""
    rows = []
    results = collect(out)
    for res in results:
        for c in res["checks"]:
            rows.append({"experiment": res["name"], "kind": "claim", "reason": "", "decision": "",
                         **c, "source": c["source"] or res["spec_ref"]})
    fidelity = folder_tier(results)
    t = tally(rows)
    summary = {
        "fidelity": fidelity,
        "counts": t,
        "line": counts_line(t, fidelity),
        "checks": rows,
        "experiments": [r["name"] for r in results],
        "versions": versions(),
    }
    atomic_write_json(out / SUMMARY, summary)
    return summary


def check_fidelity(out: Path, fidelity: str) -> None:
    """Refuse (before anything is written) to add results of one fidelity to a folder holding another's. One
    upgrade is allowed: a full folder may be continued at paper fidelity (its experiments without a paper tier
    keep their full results, D11); a paper folder is never continued at full (it would recompute the paper
    rows at the reduced scale)."""
    found = set()
    try:
        found.add(json.loads((out / SUMMARY).read_text()).get("fidelity"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        pass
    found |= {result_tier(r) for r in collect(out)} if out.is_dir() else set()
    allowed = {"quick": {"quick"}, "full": {"full"}, "paper": {"full", "paper"}}[fidelity]
    other = found - allowed - {None}
    if other:
        raise ConfigError(f"--out {out} holds {other.pop()}-fidelity results; give a new --out for {fidelity}-fidelity "
                          "ones (a folder never mixes fidelities; a full one may only be continued at paper).")


#: How the report introduces an experiment's fidelity line, by the tier it ran at.
TIER_PREFIX = {
    "quick": "QUICK (reduced fidelity; claims it cannot show are not evaluated): ",
    "paper": "PAPER tier (the papers' own sizes and schedules, trained on {device}): ",
}


def build_index(out: Path) -> Path:
    """Rebuild DIR/index.html from the experiments' results.json (no training)."""
    from tmslab.report import Section, build_report

    sections = []
    for res in collect(out):
        sections.append(
            Section(
                name=res["name"],
                title=res["title"],
                claim=res["claim"],
                spec_ref=res["spec_ref"],
                fidelity=TIER_PREFIX.get(result_tier(res), "").format(device=res.get("device", "cpu"))
                + res["fidelity"],
                config={"runs": res["configs"], "sweeps": res["sweeps"]},
                figures=[(f["html"], f["png"], f["caption"]) for f in res["figures"]],
                checks=[{**c, "source": c["source"] or res["spec_ref"]} for c in res["checks"]],
                notes=res["notes"],
            )
        )
    if not sections:
        raise ConfigError(f"{out} holds no experiment results; run `tms reproduce --out {out}` first.")
    meta = {"versions": versions(), "generated": time.strftime("%Y-%m-%d %H:%M:%S")}
    return build_report(out, sections, title="tmslab — Toy Models of Superposition, reproduced", meta=meta,
                        fidelity=folder_tier(collect(out)))


def _run_named(name: str, out: Path, fidelity: Tier, device: str) -> dict[str, Any]:
    """Worker entry of `reproduce(jobs > 1)`: one experiment, no progress bars (the driver shows one)."""
    return run_experiment(on_device(get(name), device), out, fidelity, progress=False)


def on_device(exp: Experiment, device: str) -> Experiment:
    """`exp` training its paper-tier runs on `device` (a copy; experiments without a paper tier run on the CPU)."""
    if device == "cpu" or not exp.paper_tier:
        return exp
    exp = copy.copy(exp)
    exp.device = device
    return exp


def _log_result(res: dict[str, Any], log: Callable[[str], None]) -> None:
    line = counts_line(tally(res["checks"]), result_tier(res))
    log(f"{res['name']}: {line.split(': ', 1)[1]} in {res['seconds']:.1f} s")
    for c in res["checks"]:
        why = f"; {c['reason']}" if c["reason"] else ""
        log(f"  [{c['status'].upper()}] ({c['kind']}) {c['name']}: {c['measured']} (expected {c['expected']}{why})")


def _run_parallel(
    todo: list[Experiment], out: Path, fidelity: Tier, device: str, workers: int, threads: int, bar: Any,
    log: Callable[[str], None],
) -> int:
    """Run `todo` in a pool of `workers` processes (in registry order); returns how many finished. On Ctrl-C
    the workers are stopped at once: finished experiments and the finished runs of unfinished ones are kept."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from tmslab.pool import REPRODUCE_PRELOAD, process_pool, stop_workers, worker_start

    done = 0
    with process_pool(workers, threads, REPRODUCE_PRELOAD) as pool:
        try:
            with worker_start():
                pending = {pool.submit(_run_named, e.name, out, fidelity, device): e.name for e in todo}
            while pending:
                if bar is not None:
                    bar.set_postfix_str(", ".join(sorted(n for f, n in pending.items() if f.running()))[:60])
                finished, _ = wait(pending, timeout=2, return_when=FIRST_COMPLETED)  # refreshes the postfix
                for fut in finished:
                    pending.pop(fut)
                    _log_result(fut.result(), log)
                    done += 1
                    if bar is not None:
                        bar.update(1)
        except BaseException:
            stop_workers(pool)
            raise
    return done


def reproduce(
    out: Path,
    only: str | list[str] | None = None,
    fidelity: Tier = "full",
    force: bool = False,
    reanalyse: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    jobs: int = 1,
    threads: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run the selected experiments into `out` at `fidelity` and build summary.json and index.html.

    At paper fidelity the experiments with a paper tier train their paper runs (on `device`); the others run —
    or, in a folder that holds them, reuse — their full-fidelity results (D11).

    `jobs` > 1 runs that many experiments at once, each in its own process with `threads` // `jobs` torch
    threads (default: the cores // `jobs`); results do not depend on it beyond float rounding of the thread
    count. With `jobs` = 1 everything runs in this process.

    `force` deletes the selected experiments' folders (only tmslab's files) and trains them again; `reanalyse`
    recomputes the checks, tables and figures of finished experiments from their saved runs, retraining only a run
    whose configuration differs from the experiment's (hours of paper-tier training are never lost to it).
    """
    experiments = select(only)
    out = check_output_dir(out, "reproduce", resume=True)  # an earlier reproduce folder is resumed
    check_fidelity(out, fidelity)
    make_dir(out, "reproduce")
    bar = None
    if progress:
        from tmslab.progress import bar as progress_bar

        bar = progress_bar(len(experiments), "reproduce", "experiment")
    done, todo = 0, []
    for exp in experiments:
        if force and output_kind(out / exp.name) is not None:
            remove_output(out / exp.name)  # only what tmslab wrote there
        if not reanalyse and is_done(out / exp.name, exp.tier(fidelity)):
            log(f"{exp.name}: done earlier, skipped (--reanalyse recomputes its checks, --force retrains it)")
            done += 1
            if bar is not None:
                bar.update(1)
        else:
            todo.append(exp)
    workers = max(1, min(jobs, len(todo)))
    try:
        if workers > 1:
            from tmslab.pool import cpu_count

            per_worker = max(1, (threads or cpu_count()) // workers)
            done += _run_parallel(todo, out, fidelity, device, workers, per_worker, bar, log)
        else:
            for exp in todo:
                if bar is not None:
                    bar.set_postfix_str(exp.name)
                _log_result(run_experiment(on_device(exp, device), out, fidelity, progress), log)
                done += 1
                if bar is not None:
                    bar.update(1)
    except KeyboardInterrupt:
        left = len(experiments) - done
        kept = f" (finished runs of the {left} unfinished kept)" if left else ""
        raise Interrupted(f"{done}/{len(experiments)} experiments done{kept}") from None
    finally:
        if bar is not None:
            bar.close()
    summary = write_summary(out)
    build_index(out)
    return summary
