"""The `tms` command line: a thin layer over TrainConfig, training, experiments and sweeps.

Usage errors (bad values, bad combinations, bad paths) print one line, `error: …`, and exit 2;
nothing is written. A run that diverges exits 1 naming the instances; Ctrl-C exits 130.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

try:  # typer >= 0.20 vendors click; older typer depends on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions

from tmslab.config import ConfigError, TrainConfig

app = typer.Typer(
    name="tms",
    help="Toy Models of Superposition: train toy models, measure superposition, reproduce the paper.",
    epilog=(
        "Examples: `tms reproduce --quick --out reproduce` (every paper experiment, checked, in "
        "reproduce/index.html); `tms train --features 5 --hidden 2 --density 1,0.05 --importance-decay 0.9 "
        "--restarts 8 --out runs/intro`; `tms inspect runs/intro`; `tms sweep examples/phase_n2.yaml --out "
        "runs/phase`. Each command's --help lists its options."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class UsageError(ConfigError):
    """A bad command-line value."""


# ---- parsing helpers -------------------------------------------------------------------------------


def parse_floats(flag: str, text: str) -> list[float]:
    """'1,0.3,0.1' → [1.0, 0.3, 0.1], with a one-line error naming the flag and the bad item."""
    items = [t.strip() for t in text.split(",")]
    out = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise UsageError(f"{flag} must be a comma-separated list of numbers; {item!r} is not a number.") from None
        if not math.isfinite(value):
            raise UsageError(f"{flag} values must be finite numbers, got {item!r}.")
        out.append(value)
    return out


def config_from_options(**opts: Any) -> TrainConfig:
    """Build and validate a TrainConfig from CLI option values (kebab-case flags → fields)."""
    density = parse_floats("--density", opts.pop("density"))
    importance = opts.pop("importance")
    if importance is not None and opts.get("importance_decay") is not None:
        raise UsageError("give either --importance or --importance-decay, not both.")
    if opts.get("importance_decay") is None:
        opts["importance_decay"] = 1.0
    opts["importance"] = parse_floats("--importance", importance) if importance is not None else None
    return TrainConfig(density=density, **opts)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# ---- tms train -------------------------------------------------------------------------------------


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Run directory to write (model.safetensors, config.json, metrics.json).")],
    model: Annotated[str, typer.Option(help="relu-output | linear | hidden-relu | abs.")] = "relu-output",
    features: Annotated[int, typer.Option(help="Number of input features n.")] = 5,
    hidden: Annotated[int, typer.Option(help="Number of hidden dimensions m.")] = 2,
    density: Annotated[str, typer.Option(help="Feature densities 1−S, comma list: one configuration each.")] = "1.0",
    importance_decay: Annotated[
        float | None, typer.Option(help="Importance I_i = decay**i (default 1: uniform).")
    ] = None,
    importance: Annotated[str | None, typer.Option(help="Explicit per-feature importances, comma list.")] = None,
    restarts: Annotated[int, typer.Option(help="Seeds per configuration; the lowest eval loss is marked best.")] = 1,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 10_000,
    batch_size: Annotated[int, typer.Option(help="Fresh samples per step per instance.")] = 1024,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (PyTorch default 0.01).")] = 0.01,
    schedule: Annotated[str, typer.Option(help="constant | linear | cosine.")] = "constant",
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 0,
    distribution: Annotated[
        str, typer.Option(help="independent | correlated | anticorrelated | one-hot.")
    ] = "independent",
    set_size: Annotated[int, typer.Option(help="Features per correlated/anticorrelated set.")] = 2,
    init: Annotated[str, typer.Option(help="xavier (per instance) | xavier-notebook.")] = "xavier",
    hidden_l1: Annotated[float, typer.Option(help="λ of an L1 penalty on hidden activations.")] = 0.0,
    eval_samples: Annotated[int, typer.Option(help="Fresh samples for the evaluation loss.")] = 100_000,
    record_every: Annotated[int, typer.Option(help="Save loss and weights every k steps (0: off).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    engine: Annotated[str, typer.Option(help="auto | fast | reference.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing non-empty --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar or table.")] = False,
) -> None:
    """Train a batch of toy models (one per density × restart) and write a run directory.

    Example: tms train --features 5 --hidden 2 --density 1,0.05 --importance-decay 0.9 --restarts 8 --out R
    """
    from tmslab.io import check_out_dir, load_run, save_run
    from tmslab.training import TrainingDivergedError, check_fits
    from tmslab.training import train as run_training

    config = config_from_options(
        model=model,
        n_features=features,
        n_hidden=hidden,
        density=density,
        importance_decay=importance_decay,
        importance=importance,
        restarts=restarts,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        warmup_steps=warmup_steps,
        distribution=distribution,
        set_size=set_size,
        init=init,
        hidden_l1=hidden_l1,
        eval_samples=eval_samples,
        record_every=record_every,
        seed=seed,
        engine=engine,
    )
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}.")
        import torch

        torch.set_num_threads(threads)
    check_out_dir(out, force=force)
    check_fits(config)
    try:
        result = run_training(config, progress=not quiet)
    except TrainingDivergedError as e:
        _fail(f"{e} Nothing was saved.", code=1)
    save_run(out, result, force=force)
    if not quiet:
        typer.echo(f"trained {config.n_instances} instances in {result.train_seconds:.1f} s ({result.engine} engine)")
        typer.echo(format_table(load_run(out)))
        typer.echo(f"wrote {out}")


# ---- tms inspect -----------------------------------------------------------------------------------


def format_table(run: Any) -> str:
    """A readable per-configuration table of a run: best restart's loss and geometry."""
    from tmslab.summary import run_table

    df = run_table(run, best_only=True)
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}")


@app.command()
def inspect(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `tms train` or an experiment.")],
    all_restarts: Annotated[bool, typer.Option("--all", help="Show every restart, not only the best.")] = False,
) -> None:
    """Print, per configuration, the best restart's eval loss, learned features, D*, ΣD_i and polytopes."""
    from tmslab.io import load_run
    from tmslab.summary import run_table

    run = load_run(run_dir)
    df = run_table(run, best_only=not all_restarts)
    typer.echo(f"{run_dir}: model {run.config.model}, n={run.config.n_features}, m={run.config.n_hidden}, "
               f"{run.config.n_instances} instances ({run.config.restarts} restarts per configuration)")
    typer.echo(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


# ---- tms reproduce / tms report ----------------------------------------------------------------------


@app.command()
def reproduce(
    out: Annotated[Path, typer.Option(help="Output directory (resumable: finished experiments are skipped).")] = Path(
        "reproduce"
    ),
    quick: Annotated[bool, typer.Option(help="Every experiment at reduced fidelity (about a minute).")] = False,
    only: Annotated[str | None, typer.Option(help="Comma list of experiment names (see `tms experiments`).")] = None,
    force: Annotated[bool, typer.Option(help="Recompute experiments even if finished.")] = False,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Reproduce the paper: train, check and plot every experiment, then write DIR/index.html.

    Writes DIR/NAME/ per experiment (runs, figures, results.json), DIR/summary.json (every check)
    and DIR/index.html (the offline report).
    """
    from tmslab.experiments.runner import reproduce as run_all

    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}.")
        import torch

        torch.set_num_threads(threads)
    summary = run_all(out, only=only, quick=quick, force=force, progress=not quiet, log=typer.echo)
    typer.echo(f"{summary['passed']}/{summary['total']} checks passed; report: {out / 'index.html'}")


@app.command()
def experiments() -> None:
    """List the registered paper experiments."""
    from tmslab.experiments import EXPERIMENTS

    for exp in EXPERIMENTS.values():
        typer.echo(f"{exp.name:24s} {exp.spec_ref:28s} {exp.title}")


@app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="A `tms reproduce` output directory or a `tms sweep` directory.")],
) -> None:
    """Rebuild the HTML report of existing results, without training."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory; give a `tms reproduce --out` or `tms sweep --out` path.")
    if (directory / "spec.json").exists():
        from tmslab.sweep.figures import sweep_report

        path = sweep_report(directory)
    else:
        from tmslab.experiments.runner import build_index, write_summary

        write_summary(directory)
        path = build_index(directory)
    typer.echo(f"wrote {path}")


# ---- tms sweep -------------------------------------------------------------------------------------


@app.command()
def sweep(
    spec: Annotated[Path | None, typer.Argument(help="Sweep spec, YAML or TOML (see docs/sweeps.md).")] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep directory (results.parquet, jobs/, rows/).")] = None,
    backend: Annotated[str, typer.Option(help="local (process pool on this machine) | ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local one).")] = None,
    workers: Annotated[int | None, typer.Option(help="Local processes (default: one per core).")] = None,
    shard: Annotated[str | None, typer.Option(help="Run only share I/N of the jobs (0 <= I < N).")] = None,
    merge: Annotated[Path | None, typer.Option(help="Join the shares written into DIR; no SPEC.")] = None,
    max_retries: Annotated[int, typer.Option(help="Ray: retries of a job whose worker dies.")] = 3,
    dry_run: Annotated[bool, typer.Option(help="Validate SPEC and print the job plan; write nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Discard the results in --out of a different spec.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar or summary.")] = False,
) -> None:
    """Train a grid of toy models as packed, resumable jobs; write DIR/results.parquet (one row per run).

    Example: tms sweep examples/phase_n2.yaml --out runs/phase  (re-run the same command to resume)
    """
    from tmslab.sweep import SweepJobError, load_spec, plan_jobs
    from tmslab.sweep import merge as merge_sweep
    from tmslab.sweep.plan import parse_shard
    from tmslab.sweep.run import describe, run_sweep

    if merge is not None:
        if spec is not None or out is not None or shard is not None:
            raise UsageError("--merge DIR takes no SPEC, --out or --shard.")
        df = merge_sweep(merge)
        if not quiet:
            typer.echo(f"merged {len(df)} rows into {merge / 'results.parquet'}")
        return
    if spec is None or out is None:
        raise UsageError("give a SPEC file and --out DIR (or --merge DIR).")
    if backend not in ("local", "ray"):
        raise UsageError(f"--backend must be local or ray, got {backend!r}.")
    parsed = load_spec(spec)
    if dry_run:
        jobs = plan_jobs(parsed)
        typer.echo(describe(parsed, jobs))
        return
    try:
        df = run_sweep(
            parsed, out, backend=backend, progress=not quiet, workers=workers,
            shard=parse_shard(shard) if shard else None, force=force, address=address, max_retries=max_retries,
        )  # fmt: skip
    except SweepJobError as e:
        _fail(f"{e} Finished jobs are kept; re-run to resume.", code=1)
    if not quiet:
        where = out / "results.parquet" if shard is None else out / "rows"
        typer.echo(f"{len(df)} runs in {where}")


# ---- tms sae ---------------------------------------------------------------------------------------


@app.command()
def sae(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `tms train` or an experiment.")],
    out: Annotated[Path, typer.Option(help="Directory for the SAE (SAELens format + tmslab_sae.json).")],
    instance: Annotated[int, typer.Option(help="Which instance of the run (see `tms inspect --all`).")] = 0,
    arch: Annotated[str, typer.Option(help="standard | topk | batchtopk | jumprelu | matryoshka.")] = "topk",
    k: Annotated[float, typer.Option(help="Active latents per sample (topk, batchtopk, matryoshka).")] = 3.0,
    l1: Annotated[float, typer.Option(help="Sparsity coefficient (standard: L1; jumprelu: L0).")] = 1.0,
    ratio: Annotated[float, typer.Option(help="Dictionary size / number of learned features.")] = 4.0,
    samples: Annotated[str, typer.Option(help="Training activations, e.g. 2M, 500k, 10000000.")] = "2M",
    batch_size: Annotated[int, typer.Option(help="Activations per step.")] = 1024,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    seed: Annotated[int, typer.Option(help="Seed of the SAE and its activation stream.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing non-empty --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar or summary.")] = False,
) -> None:
    """Train a sparse autoencoder (SAELens) on a run's hidden activations and score it against the true features.

    Example: tms sae runs/tms --out saes/topk --arch topk --k 3 --ratio 4 --samples 2M
    """
    from tmslab.io import check_out_dir, load_run
    from tmslab.sae import RunSource, SAESettings, require_saelens
    from tmslab.sae import train as train_sae

    require_saelens()
    settings = SAESettings(arch=arch, ratio=ratio, k=k, l1=l1, samples=_count("--samples", samples),
                           batch_size=batch_size, lr=lr, seed=seed)  # fmt: skip
    check_out_dir(out, force=force)
    source = RunSource(load_run(run_dir), instance)
    result = train_sae(source, settings, out, progress=not quiet, force=force)
    if not quiet:
        m = result.metrics
        typer.echo(f"{arch} SAE, {m['n_latents']} latents on {m['n_true']} learned features, "
                   f"{result.train_seconds:.1f} s: MMCS {m['mmcs']:.3f}, MCC {m['mcc']:.3f}, recovered "
                   f"{m['recovered']:.2f}, L0 {m['l0']:.2f}, dead {m['dead']}, nMSE {m['nmse']:.4f}, "
                   f"shrinkage {m['shrinkage']:.3f}")
        typer.echo(f"wrote {out} (load with sae_lens.SAE.load_from_disk)")


def _count(flag: str, text: str) -> int:
    """'2M' → 2_000_000, '500k' → 500_000, '10000' → 10_000."""
    units = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    t = text.strip().lower().replace("_", "")
    scale = units.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise UsageError(f"{flag} must be a count like 2M, 500k or 100000; got {text!r}.") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise UsageError(f"{flag} must be a whole count >= 1, got {text!r}.")
    return int(value)


# ---- entry point -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: one-line errors, exit 2 for usage errors."""
    from tmslab.io import RunFormatError

    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns a typer.Exit's code instead of raising it.
        code = command.main(args=argv, prog_name="tms", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as e:  # `tms` alone: show help, as a usage error
        typer.echo(e.ctx.get_help() if e.ctx else str(e))
        return 2
    except click_exceptions.UsageError as e:
        typer.echo(f"error: {e.format_message()} (see `tms {_subcommand(argv)}--help`)", err=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return 130
    except (ConfigError, RunFormatError) as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted; finished results are kept, re-run to resume", err=True)
        return 130
    return code if isinstance(code, int) else 0


def _subcommand(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return f"{args[0]} " if args and not args[0].startswith("-") else ""


if __name__ == "__main__":
    sys.exit(main())
