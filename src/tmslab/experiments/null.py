"""The null-model pass (paper-spec §7.2 D20): every claim judged again on *untrained* weights.

A claim is a statement about what training produces, so the initial weights of the same runs must fail it.
`null_pass` copies a finished `tms reproduce` folder, replaces every saved run's weights — and the weight
snapshots recorded during training — by the initialisation of the same configuration and seed (what
`tmslab.training.build` draws before the first step), removes the experiments' results and the sweeps' row
tables (both derived from the weights), and runs the analyses again on those runs. Every claim that still
passes is a defect of the check: it does not tell a trained model from an untrained one.

    python -m tmslab.experiments.null --from reproduce --work /tmp/null [--only intro,basic]

Recorded numbers that are not weights (evaluation losses in metrics.json, training-loss histories) are kept
as written: a check that reads them instead of recomputing from the weights is exactly what this pass is
meant to expose.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tmslab.io import CONFIG, HISTORY, WEIGHTS, atomic_save_tensors, load_run, output_kind

__all__ = ["null_pass", "reset_to_init"]

#: Derived files removed before the analyses run again (an experiment's results; a sweep's row tables).
_DERIVED = ("results.json", "results.parquet", "summary.json", "index.html")


def _init_params(config: Any) -> dict[str, Any]:
    from tmslab.training import build

    model, _, _ = build(config)
    return {k: v.detach().clone().contiguous() for k, v in model.params().items()}


def reset_to_init(folder: Path) -> int:
    """Replace the weights of every run saved under `folder` (at any depth) by their initialisation, and the
    recorded weight snapshots by that initialisation at every step; delete results and sweep row tables.
    Returns the number of runs reset."""
    import torch
    from safetensors.torch import load_file

    count = 0
    for cfg in sorted(folder.rglob(CONFIG)):
        rdir = cfg.parent
        if output_kind(rdir) != "run" or not (rdir / WEIGHTS).exists():
            continue
        run = load_run(rdir)
        init = _init_params(run.config)
        atomic_save_tensors(rdir / WEIGHTS, init, metadata={"format": "tmslab-run-1"})
        if (rdir / HISTORY).exists():
            history = load_file(rdir / HISTORY)
            for name, value in init.items():
                if name in history:  # [snapshots, *shape]: the untrained model never moves
                    history[name] = value.unsqueeze(0).expand_as(history[name]).contiguous()
            atomic_save_tensors(rdir / HISTORY, {k: torch.as_tensor(v) for k, v in history.items()})
        count += 1
    # SAEs trained inside an analysis (sae-synthetic, sae-tms) are models too: back to their initialisation.
    from tmslab.sae import reset_all_to_init

    reset_all_to_init(folder)
    for name in _DERIVED:
        for path in folder.rglob(name):
            path.unlink()
    for rows in folder.rglob("rows"):
        if rows.is_dir():
            for part in rows.glob("*.parquet"):
                part.unlink()
    return count


def null_pass(source: Path, work: Path, only: str | list[str] | None = None, progress: bool = False) -> list[dict]:
    """Copy the finished reproduce folder `source` to `work` (which must not exist), reset every run of the
    selected experiments to its initialisation, analyse them again, and return every check row as analysed
    on the untrained weights (dicts with "experiment" and the check's fields; the claims with status "pass" are
    the defects). The fidelity is the source's."""
    from tmslab.config import ConfigError
    from tmslab.experiments.runner import run_experiment, select

    source, work = Path(source), Path(work)
    summary = source / "summary.json"
    if not summary.is_file():
        raise ConfigError(f"{source} holds no summary.json; give a finished `tms reproduce --out` folder.")
    if work.exists():
        raise ConfigError(f"--work {work} exists; give a new folder (the null pass writes a copy there).")
    fidelity = json.loads(summary.read_text()).get("fidelity") or "full"
    rows: list[dict] = []
    shutil.copytree(source, work, symlinks=True)
    for exp in select(only):
        edir = work / exp.name
        if not edir.is_dir():
            continue
        reset_to_init(edir)
        res = run_experiment(exp, work, fidelity, progress=progress)
        rows += [{"experiment": exp.name, **c} for c in res["checks"]]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tmslab.experiments.null", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="a finished reproduce folder")
    parser.add_argument("--work", type=Path, required=True, help="a new folder for the untrained copy")
    parser.add_argument("--only", default=None, help="comma list of experiments (default: all in the folder)")
    args = parser.parse_args(argv)
    from tmslab.config import ConfigError

    try:
        rows = null_pass(args.source, args.work, args.only)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    passing = [r for r in rows if r["kind"] == "claim" and r["status"] == "pass"]
    claims = [r for r in rows if r["kind"] == "claim" and r["status"] in ("pass", "fail", "not reproduced")]
    for r in passing:
        print(f"PASSES ON INIT  {r['experiment']}: {r['name']} = {r['measured']} (expected {r['expected']})")
    print(f"{len(passing)} of {len(claims)} evaluated claims pass on the initial weights")
    (args.work / "null.json").write_text(json.dumps(rows, indent=1, default=str))
    return 1 if passing else 0


if __name__ == "__main__":
    sys.exit(main())
