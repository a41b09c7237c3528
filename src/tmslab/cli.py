"""The `tms` command line: a thin layer over TrainConfig, training, experiments and sweeps.

Usage errors (bad values, bad combinations, bad paths) print one line, `error: …`, naming the flag,
and exit 2; nothing is written. A run that diverges exits 1 naming the instances. Ctrl-C (or SIGTERM,
quietly) stops every worker, keeps finished results, prints one line and exits 130.

Heavy libraries (torch, pandas) are imported inside the commands, after their options are checked,
so `tms --help` and usage errors answer at once. `-q` leaves one final line, `-qq` prints nothing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

try:  # typer >= 0.20 vendors click; older typer depends on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions

from tmslab import __version__
from tmslab.config import (
    Activation,
    ConfigError,
    Device,
    Distribution,
    Engine,
    Init,
    Mixing,
    ModelKind,
    Schedule,
    TrainConfig,
)
from tmslab.naming import cli_spelling, plural

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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tms (tmslab) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Toy Models of Superposition: train toy models, measure superposition, reproduce the paper."""


#: Choices are the config's Literal types: --help lists their values and others are refused.
Backend = Literal["local", "ray"]
Fidelity = Literal["quick", "full", "paper"]

#: -q / -qq: how many times --quiet was given.
Quiet = Annotated[
    int, typer.Option("--quiet", "-q", count=True, help="No progress bars or tables, one final line; twice: nothing.")
]


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


def parse_indices(flag: str, text: str) -> list[int]:
    """'3,4' → [3, 4], with a one-line error naming the flag and the bad item."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item.isdigit():
            raise UsageError(f"{flag} must be a comma-separated list of feature indices; {item!r} is not one.")
        out.append(int(item))
    return out


def parse_sizes(flag: str, text: str) -> list[int] | int:
    """'100,1000' → [100, 1000] (finite datasets, §6.1); '0' → 0 (fresh samples every step)."""
    sizes = parse_floats(flag, text)
    if any(t != int(t) for t in sizes):
        raise UsageError(f"{flag} must be whole numbers of samples, got {text!r}.")
    return [int(t) for t in sizes] if any(sizes) else 0


#: Comma-list options other than --density / --importance: field → (flag, parser). Not given: the field's default.
_LIST_OPTIONS = {
    "off_features": ("--off-features", parse_indices),
    "eval_density": ("--eval-density", parse_floats),
    "dataset_size": ("--dataset-size", parse_sizes),
}


def _parse_lists(opts: dict[str, Any]) -> dict[str, Any]:
    for name, (flag, parse) in _LIST_OPTIONS.items():
        if name in opts:
            text = opts.pop(name)
            if text is not None:
                opts[name] = parse(flag, text)
    return opts


def config_from_options(**opts: Any) -> TrainConfig:
    """Build and validate a TrainConfig from CLI option values (kebab-case flags → fields)."""
    density: list[Any] = parse_floats("--density", opts.pop("density"))
    laws = opts.pop("density_law", None)
    if laws is not None:  # §6.5: named feature-probability laws replace --density, one configuration each
        density = [t.strip() for t in laws.split(",")]
    importance = opts.pop("importance")
    if importance is not None and opts.get("importance_decay") is not None:
        raise UsageError("give either --importance or --importance-decay, not both.")
    if opts.get("importance_decay") is None:
        opts["importance_decay"] = 1.0
    opts["importance"] = parse_floats("--importance", importance) if importance is not None else None
    return TrainConfig(density=density, **_parse_lists(opts))


def read_config_file(path: Path) -> dict[str, Any]:
    """The configuration saved in a run's config.json (or given a run folder, its config.json)."""
    if path.is_dir():
        path = path / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path} does not exist; give a run's config.json.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--config {path} is not a readable JSON file ({e.__class__.__name__}).") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path} must hold a JSON object of training options.")
    for key in ("versions", "n_instances"):  # recorded beside the configuration by save_run
        data.pop(key, None)
    return data


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _hold(out: Path, kind: str | None, **check: Any) -> None:
    """Check the output folder `out` and take its one-writer lock for the rest of this command (tmslab.lock, via
    io.locked_output): a second command on the folder is refused at once (exit 2, one line naming our pid). The
    lock is tied to the command's click context, so it is released when the command ends, however it ends."""
    from tmslab.io import locked_output

    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import get_current_context

    get_current_context().with_resource(locked_output(out, kind, **check))


# ---- tms train -------------------------------------------------------------------------------------

#: TrainConfig field → the train() parameter holding its command-line value.
_TRAIN_FIELDS = {
    "model": "model", "n_features": "features", "n_hidden": "hidden", "density": "density",
    "importance_decay": "importance_decay", "importance": "importance", "restarts": "restarts", "steps": "steps",
    "batch_size": "batch_size", "lr": "lr", "weight_decay": "weight_decay", "schedule": "schedule",
    "warmup_steps": "warmup_steps", "distribution": "distribution", "set_size": "set_size", "init": "init",
    "hidden_l1": "hidden_l1", "eval_samples": "eval_samples", "record_every": "record_every", "seed": "seed",
    "engine": "engine", "off_features": "off_features", "eval_density": "eval_density",
    "expected_active": "expected_active", "value_max": "value_max", "lr_b": "lr_b", "lr_floor": "lr_floor",
    "decay_bias": "decay_bias", "sparse": "sparse", "device": "device", "dataset_size": "dataset_size",
    "dataset_unit_norm": "unit_norm", "d_embed": "d_embed", "n_layers": "n_layers", "act": "act",
    "mixing": "mixing", "mixing_scale": "mixing_scale",
}  # fmt: skip


@app.command()
def train(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="Run folder to write (model.safetensors, config.json, metrics.json); mkdir -p.")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Re-run a saved config.json (or run folder); options given here override its values."
        ),
    ] = None,
    model: Annotated[ModelKind, typer.Option(help="Toy model.")] = "relu-output",
    features: Annotated[int, typer.Option("--features", "--n-features", help="Number of input features n.")] = 5,
    hidden: Annotated[int, typer.Option("--hidden", "--n-hidden", help="Number of hidden dimensions m.")] = 2,
    density: Annotated[
        str, typer.Option(help="Feature densities 1−S, each in (0, 1], comma list: one configuration each.")
    ] = "1.0",
    importance_decay: Annotated[
        float | None, typer.Option(help="Importance I_i = decay**i, > 0 (default 1: uniform).")
    ] = None,
    importance: Annotated[str | None, typer.Option(help="Explicit per-feature importances ≥ 0, comma list.")] = None,
    restarts: Annotated[int, typer.Option(help="Seeds per configuration; the lowest eval loss is marked best.")] = 1,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 10_000,
    batch_size: Annotated[int, typer.Option(help="Fresh samples per step per instance.")] = 1024,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(
        help="Signed decay γ: ≥ 0 AdamW decay (PyTorch default 0.01); < 0 weight growth of W (§6.5).")] = 0.01,
    schedule: Annotated[Schedule, typer.Option(help="Learning-rate schedule (cosine-floor: §6.5).")] = "constant",
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 0,
    distribution: Annotated[Distribution, typer.Option(help="How features are drawn.")
    ] = "independent",
    set_size: Annotated[int, typer.Option(help="Features per correlated/anticorrelated set.")] = 2,
    init: Annotated[Init, typer.Option(help="xavier: per instance; xavier-notebook: the notebook's; paper: §6.5.")
    ] = "xavier",
    hidden_l1: Annotated[float, typer.Option(help="λ of an L1 penalty on hidden activations.")] = 0.0,
    eval_samples: Annotated[int, typer.Option(help="Fresh samples for the evaluation loss.")] = 100_000,
    record_every: Annotated[int, typer.Option(help="Save loss and weights every k steps (0: off).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    engine: Annotated[Engine, typer.Option(help="Training engine.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")] = None,
    off_features: Annotated[
        str | None, typer.Option(help="Comma list of feature indices never active in training (distribution shift).")
    ] = None,
    eval_density: Annotated[
        str | None, typer.Option(help="Densities at evaluation, one per --density entry (records a shifted loss).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a previous tmslab run in --out (only its files).")] = False,
    quiet: Quiet = 0,
    density_law: Annotated[str | None, typer.Option(
        help="power:ALPHA | exponential:SCALE | linear (comma list), replacing --density (§6.5).")] = None,
    expected_active: Annotated[float, typer.Option(help="Σ p_i of a --density-law, > 0.")] = 1.0,
    value_max: Annotated[float, typer.Option(help="Active values U(0, V), V > 0.")] = 1.0,
    lr_b: Annotated[float | None, typer.Option(help="Peak learning rate of b (default: --lr).")] = None,
    lr_floor: Annotated[float, typer.Option(help="cosine-floor ends at this × peak lr, in [0, 1].")] = 0.05,
    decay_bias: Annotated[bool, typer.Option(help="Apply a γ ≥ 0 decay to b too (PyTorch default).")] = True,
    sparse: Annotated[bool | None, typer.Option(
        "--sparse/--no-sparse",
        help="Sparse sampling, training and evaluation (fast engine). Default: on for a --density-law where the "
             "sparse path trains the model (tied models, independent features, CPU), else off.")] = None,
    device: Annotated[Device, typer.Option(help="cpu, or cuda (plain PyTorch loop on the GPU).")] = "cpu",
    dataset_size: Annotated[
        str | None,
        typer.Option(help="Finite datasets: T samples per density entry (comma list), full-batch training; 0: fresh "
                     "samples every step."),
    ] = None,
    unit_norm: Annotated[bool, typer.Option(help="Finite datasets: rescale every sample to unit norm.")] = False,
    d_embed: Annotated[int, typer.Option(help="resid-mlp: residual-stream width; mlp: the mixing embedding's width "
                                              "(§6.7).")] = 1000,
    n_layers: Annotated[int, typer.Option(help="resid-mlp: residual MLP blocks of --hidden neurons each.")] = 1,
    act: Annotated[Activation, typer.Option(help="resid-mlp / mlp: the neurons' activation, also the labels'.")
    ] = "relu",
    mixing: Annotated[Mixing, typer.Option(
        help="mlp: the labels' mixing matrix M in act(x) + σ·x M: embedding (I − W_E W_Eᵀ), gaussian, none.")
    ] = "none",
    mixing_scale: Annotated[float, typer.Option(help="mlp: σ, the factor on M in the labels.")] = 1.0,
) -> None:
    """Train a batch of toy models (one per density × restart) and write a run folder.

    Example: tms train --features 5 --hidden 2 --density 1,0.05 --importance-decay 0.9 --restarts 8 --out R

    Compressed computation (§6.7; the zoo's resid-mlp1): tms train --model resid-mlp --features 100 --hidden 50
    --density 0.01 --batch-size 2048 --lr 3e-3 --schedule cosine-floor --lr-floor 0 --steps 1000 --out R
    """
    values = locals()
    if config is None:
        cfg = config_from_options(**{f: values[p] for f, p in _TRAIN_FIELDS.items()}, density_law=density_law)
    else:
        cfg = _config_with_overrides(ctx, read_config_file(config), values)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}.")
    _hold(out, "run", force=force)  # held until the command ends: the run is written under it
    from tmslab import precompile

    precompile.start(precompile.kernels(cfg))  # a first run's compilation overlaps this process's imports
    from tmslab.progress import Interrupted

    try:
        result = _train_and_save(cfg, out, threads=threads, force=force, progress=not quiet)
    except KeyboardInterrupt:  # save_run removes its partial folder: nothing is left behind
        raise Interrupted("nothing was written (a training does not resume)", resumable=False) from None
    from tmslab.io import load_run
    if not quiet:
        typer.echo(f"trained {plural(cfg.n_instances, 'instance')} in {result.train_seconds:.1f} s "
                   f"({result.engine} engine)")  # fmt: skip
        typer.echo(format_table(load_run(out)))
    if quiet < 2:
        typer.echo(f"wrote {out}")


def _train_and_save(cfg: TrainConfig, out: Path, *, threads: int | None, force: bool, progress: bool) -> Any:
    from tmslab.io import save_run
    from tmslab.pool import set_threads
    from tmslab.training import TrainingDivergedError, check_fits
    from tmslab.training import train as run_training

    set_threads(threads)
    check_fits(cfg)
    try:
        result = run_training(cfg, progress=progress)
    except TrainingDivergedError as e:
        _fail(f"{e} Nothing was saved.", code=1)
    save_run(out, result, force=force)
    return result


def _config_with_overrides(ctx: typer.Context, saved: dict[str, Any], values: dict[str, Any]) -> TrainConfig:
    """A saved configuration with the options typed on this command line replacing its values."""
    given = {f: values[p] for f, p in _TRAIN_FIELDS.items() if ctx.get_parameter_source(p).name == "COMMANDLINE"}
    if "density" in given:
        given["density"] = parse_floats("--density", given["density"])
    if ctx.get_parameter_source("density_law").name == "COMMANDLINE":
        given["density"] = [t.strip() for t in values["density_law"].split(",")]
    if "importance" in given:
        if "importance_decay" in given:
            raise UsageError("give either --importance or --importance-decay, not both.")
        given["importance"] = parse_floats("--importance", given["importance"])
    elif "importance_decay" in given:
        given["importance"] = None
    return TrainConfig.from_dict({**saved, **_parse_lists(given)})


# ---- tms inspect -----------------------------------------------------------------------------------


def format_table(run: Any) -> str:
    """A readable per-configuration table of a run: best restart's loss and geometry."""
    from tmslab.summary import run_table

    df = run_table(run, best_only=True)
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}")


#: run_table's display names → the plain keys of `tms inspect --json` (those of a sweep's results.parquet)
_JSON_KEYS = {"n(‖W_i‖>0.5)": "learned", "‖W‖²_F": "frob2", "D*": "D_star", "ΣD_i": "sum_D"}


def _not_a_run(path: Path) -> None:
    """Refuse a sweep or reproduce folder given to `tms inspect`, pointing to the runs inside it."""
    from tmslab.io import CONFIG, output_kind

    if not path.is_dir() or (path / CONFIG).exists():
        return
    kind = output_kind(path)
    if kind is None and (path / "spec.json").exists():
        kind = "sweep"
    if kind is None and ((path / "summary.json").exists() or any(path.glob("*/results.json"))):
        kind = "reproduce"
    if kind not in ("sweep", "reproduce"):
        return
    runs = sorted(p.parent for p in path.glob(f"*/*/{CONFIG}")) + sorted(p.parent for p in path.glob(f"*/{CONFIG}"))
    hint = f"; e.g. `tms inspect {runs[0]}`" if runs else ""
    table = " (every run's metrics: results.parquet)" if kind == "sweep" else ""
    raise UsageError(f"{path} is a {kind} folder, not a run: it holds {plural(len(runs), 'run folder')}{hint}{table}.")


@app.command()
def inspect(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `tms train`, a sweep or an experiment.")],
    all_restarts: Annotated[bool, typer.Option("--all", help="Show every restart, not only the best.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (run, configuration, rows) instead.")] = False,
) -> None:
    """Print, per configuration, the best restart's eval loss, learned features, D*, ΣD_i and polytopes."""
    _not_a_run(run_dir)
    from tmslab.io import load_run
    from tmslab.summary import run_table

    run = load_run(run_dir)
    df = run_table(run, best_only=not all_restarts)
    c = run.config
    if as_json:
        records = run.metrics["instances"]
        rows = [{**{_JSON_KEYS.get(k, k): v for k, v in row.items()},
                 "density": records[c.restarts * row["config"] + row["restart"]]["density"]}
                for row in df.to_dict(orient="records")]  # fmt: skip
        doc = {"run": str(run_dir), "config": {**c.to_dict(), "n_instances": c.n_instances}, "rows": rows,
               "versions": run.versions}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"{run_dir}: model {c.model}, n={c.n_features}, m={c.n_hidden}, {plural(c.n_instances, 'instance')} "
               f"({plural(c.restarts, 'restart')} per configuration)")  # fmt: skip
    typer.echo(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


# ---- tms reproduce / tms report ----------------------------------------------------------------------


@app.command()
def reproduce(
    out: Annotated[Path, typer.Option(help="Output folder (resumable: finished experiments are skipped).")] = Path(
        "reproduce"
    ),
    fidelity: Annotated[
        Fidelity | None,
        typer.Option(help="quick (about a minute), full (the CPU reduction, the default) or paper (the papers' own "
                          "sizes and schedules where a row needs them: hours on a CPU, resumable)."),
    ] = None,
    quick: Annotated[bool, typer.Option(help="Short for --fidelity quick.")] = False,
    only: Annotated[str | None, typer.Option(help="Comma list of experiment names (see `tms experiments`).")] = None,
    device: Annotated[
        Device, typer.Option(help="cpu, or cuda: where the paper tier's runs train (the others stay on the CPU).")
    ] = "cpu",
    dry_run: Annotated[
        bool, typer.Option(help="Print what would be trained and a time estimate for this machine; write nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Delete the selected experiments' results and runs (only tmslab's files) and "
                                "train them again.")
    ] = False,
    reanalyse: Annotated[
        bool, typer.Option(help="Recompute the checks, tables and figures of finished experiments from their saved "
                                "runs; nothing is retrained unless its configuration changed.")
    ] = False,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Experiments run at once, each in its own process with threads / jobs threads "
                          "(default: one per core; 1: all in this process, with a progress bar per run)."),
    ] = None,
    quiet: Quiet = 0,
) -> None:
    """Reproduce the paper: train, check and plot every experiment, then write DIR/index.html.

    Writes DIR/NAME/ per experiment (runs, figures, results.json), DIR/summary.json (every check)
    and DIR/index.html (the offline report). Exits 1 when any check is `fail`; a claim that does not hold under a
    paper-spec §7.2 decision is `not reproduced` — a finding, listed in the report's Findings section — and
    exits 0. `--fidelity paper` first prints what it will train and how long this machine needs for it
    (`--dry-run`: only that).
    """
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}.")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}.")
    if force and reanalyse:
        raise UsageError("--force retrains and --reanalyse keeps the saved runs; pass one of them.")
    if quick and fidelity not in (None, "quick"):
        raise UsageError(f"--quick is short for --fidelity quick; it contradicts --fidelity {fidelity}.")
    tier: Fidelity = "quick" if quick else fidelity or "full"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda needs a CUDA GPU and PyTorch sees none here; use --device cpu.")
    from tmslab.experiments.runner import select

    chosen = select(only)  # unknown names are refused before anything is written
    if dry_run or tier == "paper":
        from tmslab.experiments.estimate import plan_text

        if threads is not None:
            from tmslab.pool import set_threads

            set_threads(threads)
        typer.echo(plan_text(chosen, out, tier, device, reanalyse))
        if dry_run:
            return
    _hold(out, "reproduce", resume=True)  # the workers write its experiment folders under this process's lock
    if jobs is None:
        from tmslab.pool import cpu_count

        jobs = cpu_count()
    several = only is None or len([name for name in only.split(",") if name.strip()]) > 1
    if jobs > 1 and several:  # the workers' imports overlap this process's own (seconds of a quick run)
        from tmslab.pool import REPRODUCE_PRELOAD, start_forkserver

        start_forkserver(REPRODUCE_PRELOAD)

    from tmslab.experiments.runner import reproduce as run_all
    from tmslab.pool import set_threads

    set_threads(threads)
    log = typer.echo if not quiet else (lambda line: None)
    summary = run_all(out, only=only, fidelity=tier, force=force, reanalyse=reanalyse, progress=not quiet, log=log,
                      jobs=jobs, threads=threads, device=device)
    if quiet < 2:
        typer.echo(f"{summary['line']}; report: {out / 'index.html'}")
    _exit_on_failures(summary)


def _exit_on_failures(summary: dict[str, Any]) -> None:
    """Exit 1 when any check is `fail` (paper-spec §7.2 D10): a regression or a new disagreement, never a finding
    (`not reproduced`), which is a result. The failing rows are named on stderr, one line each."""
    from tmslab.report import failed

    if failed(summary["counts"]):
        for row in summary["checks"]:
            if row["status"] == "fail":
                typer.echo(f"FAILED {row['experiment']}: {row['name']} = {row['measured']} "
                           f"(expected {row['expected']})", err=True)
        raise typer.Exit(1)


@app.command()
def experiments() -> None:
    """List the registered paper experiments."""
    from tmslab.experiments import EXPERIMENTS

    exps = list(EXPERIMENTS.values())
    name_w = max(len(e.name) for e in exps)
    ref_w = max(len(e.spec_ref) for e in exps)
    for exp in exps:
        typer.echo(f"{exp.name:<{name_w}}  {exp.spec_ref:<{ref_w}}  {exp.title}".rstrip())


@app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="A `tms reproduce` output folder or a `tms sweep` folder.")],
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the claims table as Markdown on stdout; write nothing.")
    ] = False,
) -> None:
    """Rebuild the HTML report of existing results, without training.

    For a reproduce folder, also rewrites summary.json and exits 1 when any check is `fail` (as `tms reproduce`).
    """
    from tmslab.io import CONFIG, output_kind

    if markdown:  # read only, so that a record (results/full) stays as committed; same exit codes
        from tmslab.records import markdown_summary

        text, summary = markdown_summary(directory)
        typer.echo(text, nl=False)
        _exit_on_failures(summary)
        return

    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory; give a `tms reproduce --out` or `tms sweep --out` folder.")
    if output_kind(directory) == "run" or (directory / CONFIG).exists():
        raise UsageError(f"{directory} is a run folder; `tms report` takes a reproduce or sweep folder "
                         f"(see a run with `tms inspect {directory}`).")  # fmt: skip
    _hold(directory, None, name="")  # not while a reproduce or sweep still writes there
    if (directory / "spec.json").exists():
        from tmslab.sweep.figures import sweep_report

        path = sweep_report(directory)
    else:
        from tmslab.experiments.runner import build_index, write_summary

        path = build_index(directory)  # refuses a folder without results before anything is written
        summary = write_summary(directory)
        typer.echo(summary["line"])
        typer.echo(f"wrote {path}")
        _exit_on_failures(summary)
        return
    typer.echo(f"wrote {path}")


# ---- tms sweep -------------------------------------------------------------------------------------


@app.command()
def sweep(
    spec: Annotated[Path | None, typer.Argument(help="Sweep spec, YAML or TOML (see docs/sweeps.md).")] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep folder (results.parquet, jobs/, rows/).")] = None,
    backend: Annotated[
        Backend, typer.Option(help="local: processes on this machine; ray: a cluster.")
    ] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local one).")] = None,
    workers: Annotated[int | None, typer.Option(help="Local processes (default: one per core).")] = None,
    shard: Annotated[str | None, typer.Option(help="Run only share I/N of the jobs (0 <= I < N).")] = None,
    merge: Annotated[Path | None, typer.Option(help="Join the shares written into DIR; no SPEC.")] = None,
    max_retries: Annotated[int, typer.Option(help="Ray: retries of a job whose worker dies.")] = 3,
    dry_run: Annotated[
        bool, typer.Option(help="Check SPEC and --out as a real run would and print the job plan; write nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Discard the results in --out of a different spec (only files tmslab wrote).")
    ] = False,
    quiet: Quiet = 0,
) -> None:
    """Train a grid of toy models as packed, resumable jobs; write DIR/results.parquet (one row per run).

    Example: tms sweep examples/phase_n2.yaml --out runs/phase  (re-run the same command to resume)
    """
    if out is not None and dry_run:  # the first check, before the sweep machinery loads
        from tmslab.io import check_output_dir

        check_output_dir(out, "sweep", force=force, resume=True)
    elif out is not None:  # and the lock of a real run: shards share it, a whole sweep holds it alone
        _hold(out, "sweep", force=force, resume=True, shared=shard is not None)
    from tmslab.sweep import SweepJobError
    from tmslab.sweep import merge as merge_sweep
    from tmslab.sweep.plan import parse_shard
    from tmslab.sweep.run import check_sweep, describe, run_sweep

    if merge is not None:
        if spec is not None or out is not None or shard is not None:
            raise UsageError("--merge DIR takes no SPEC, --out or --shard.")
        _hold(merge, None, name="merge")  # not while shards still write into it
        df = merge_sweep(merge)
        if quiet < 2:
            typer.echo(f"merged {plural(len(df), 'row')} into {merge / 'results.parquet'}")
        return
    if spec is None or out is None:
        raise UsageError("give a SPEC file and --out DIR (or --merge DIR).")
    options = dict(backend=backend, workers=workers, shard=parse_shard(shard) if shard else None, force=force,
                   max_retries=max_retries)  # fmt: skip
    if dry_run:
        plan = check_sweep(spec, out, **options)  # refuses exactly what the real run would refuse
        typer.echo(describe(plan.spec, plan.jobs))
        return
    try:
        df = run_sweep(spec, out, progress=not quiet, address=address, **options)
    except SweepJobError as e:
        _fail(f"{e} Finished jobs are kept; re-run to resume.", code=1)
    if quiet < 2:
        where = out / "results.parquet" if shard is None else out / "rows"
        typer.echo(f"{plural(len(df), 'run')} in {where}")


# ---- tms export / tms import (paper-spec §6.6) ------------------------------------------------------


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A tmslab run directory (tms train, a zoo model, an experiment).")],
    to: Annotated[str, typer.Option(help="param-decomp | devinterp | transformer-lens.")],
    out: Annotated[Path, typer.Option(help="Directory to write (see docs/interop.md for its files).")],
    instance: Annotated[
        int | None, typer.Option(help="Instance to export (default: the best restart; transformer-lens: all).")
    ] = None,
    lr_schedule: Annotated[
        str, typer.Option(help="param-decomp lr fields: legacy (lr + lr_schedule string) | object (ScheduleConfig).")
    ] = "legacy",
    force: Annotated[bool, typer.Option(help="Replace a previous tmslab output in --out (only its files).")] = False,
) -> None:
    """Write a model in another tool's format: param-decomp's tms.pth, devinterp's ToyAutoencoder, or a
    HookedToyModel for TransformerLens / SAELens. Example: tms export RUN --to param-decomp --out pd/"""
    from tmslab.interop import export_run
    from tmslab.io import load_run

    _hold(out, "export", force=force)
    path = export_run(load_run(run_dir), to, out, instance, schedule_form=lr_schedule, force=force)
    typer.echo(f"wrote {path}")


@app.command("import")
def import_(
    src: Annotated[Path, typer.Argument(help="A directory written by `tms export`, param-decomp or devinterp.")],
    out: Annotated[Path, typer.Option(help="Run directory to write.")],
    force: Annotated[bool, typer.Option(help="Replace a previous tmslab output in --out (only its files).")] = False,
) -> None:
    """Read a param-decomp / devinterp / transformer-lens checkpoint (weights-only, validated) into a tmslab run."""
    from tmslab.interop import import_dir

    _hold(out, "run", force=force)
    typer.echo(f"wrote {import_dir(src, out, force=force)}")


# ---- tms zoo ---------------------------------------------------------------------------------------

zoo_app = typer.Typer(help="Named, checked toy models built on first request and cached (tmslab.zoo).",
                      no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def zoo_list() -> None:
    """List the zoo models (* = already built in the cache)."""
    from tmslab import zoo

    for z in zoo.ZOO.values():
        typer.echo(f"{'*' if zoo.is_built(z.name) else ' '} {z.name:18s} {z.title}")


@zoo_app.command("show")
def zoo_show(name: Annotated[str, typer.Argument(help="A name from `tms zoo list`.")]) -> None:
    """Print a model's card (its recipe and, once built, its checks and scores)."""
    import json

    from tmslab import zoo

    z = zoo.entry(name)
    if zoo.is_built(name):
        typer.echo((zoo.path(name) / zoo.CARD_MD).read_text())
        return
    typer.echo(f"# {z.name}: {z.title}\n\n{z.description}\n\nSource: paper-spec {z.source}. Not built yet: "
               f"`tms zoo get {z.name} --out DIR` builds it (checks run then).\n\n{json.dumps(z.config.to_dict())}")


@zoo_app.command("get")
def zoo_get(
    name: Annotated[str, typer.Argument(help="A name from `tms zoo list`.")],
    out: Annotated[Path, typer.Option(help="Directory to write: the run plus card.md and card.json.")],
    force: Annotated[bool, typer.Option(help="Replace a previous tmslab output in --out (only its files).")] = False,
    quiet: Quiet = 0,
) -> None:
    """Copy a zoo model into DIR, building (training and checking) it first if it is not cached."""
    from tmslab import zoo

    _hold(out, "run", force=force)
    try:
        path = zoo.get(name, out, force=force, progress=not quiet)
    except zoo.ZooCheckError as e:
        _fail(str(e), code=1)
    if quiet < 2:
        typer.echo(f"wrote {path}")


# ---- tms theory kgon -----------------------------------------------------------------------------------

theory_app = typer.Typer(help="Closed-form results (no training).", no_args_is_help=True)
app.add_typer(theory_app, name="theory")


@theory_app.command("kgon")
def theory_kgon(
    features: Annotated[int, typer.Option(help="Number of features c (>= 4); hidden dimension 2, one-hot data.")],
    k: Annotated[int | None, typer.Option(help="Only the k-gons with this k (4 <= k <= c).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """Every k-gon critical-point family k^{σ+,φ−} of the one-hot TMS loss (Chen et al. 2023): l*, b*, L, LLC.

    σ dead features at bias 1/(2c) (each lowers L by 1/(4c²)), the other dead features at a negative bias, and
    (4-gons only) φ vertices switched off by a bias ≤ −l². Names: k, then "⁺" for σ and "⁻" for φ, each preceded
    by its count in superscript when above 1 (4²⁺⁻: σ = 2, φ = 1). --json: one object per family with "name",
    "plus" (σ), "minus" (φ) and the table's numbers.

    Example: tms theory kgon --features 6 --json
    """
    import json

    from tmslab.theory import critical_points

    if features < 4:
        raise UsageError(f"--features must be >= 4 (k-gons with 4 <= k <= c), got {features}.")
    if k is not None and not 4 <= k <= features:
        raise UsageError(f"--k must be in [4, {features}] for --features {features}, got {k}.")
    points = critical_points(features, k)
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in points], indent=1))
        return
    typer.echo(f"c = {features} features, r = 2; L = E‖x − f(x)‖² (H = 3c·L); {len(points)} families k^(σ+,φ−); "
               "LLC: minimally singular minima only")
    typer.echo(f"{'family':>16s} {'σ':>2s} {'φ':>2s} {'l*':>9s} {'b*':>9s} {'L':>9s} {'LLC':>6s}  Hessian (−, 0)")
    for p in points:
        llc = "—" if p.llc is None else f"{p.llc:g}"
        typer.echo(f"{p.label:>16s} {p.plus:2d} {p.minus:2d} {p.length:9.5f} {p.bias:9.5f} {p.loss:9.5f} {llc:>6s}  "
                   f"({p.negative_modes}, {p.zero_modes})")


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
    from tmslab.io import load_run
    from tmslab.sae import RunSource, SAESettings, require_saelens
    from tmslab.sae import train as train_sae

    require_saelens()
    settings = SAESettings(arch=arch, ratio=ratio, k=k, l1=l1, samples=_count("--samples", samples),
                           batch_size=batch_size, lr=lr, seed=seed)  # fmt: skip
    _hold(out, "sae", force=force)
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
    """Console-script entry: one-line errors naming the flags, exit 2 for usage errors, 130 on Ctrl-C/SIGTERM."""
    from tmslab.progress import Interrupted, handle_signals, terminated

    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(app)
    with cli_spelling(), handle_signals():
        try:
            # Not command.main(): click turns KeyboardInterrupt into Abort after printing an empty line.
            with command.make_context("tms", args) as ctx:
                command.invoke(ctx)
            return 0
        except click_exceptions.NoArgsIsHelpError as e:  # `tms` alone: show help, as a usage error
            typer.echo(e.ctx.get_help() if e.ctx else str(e))
            return 2
        except click_exceptions.UsageError as e:
            typer.echo(f"error: {e.format_message()} (see `tms {_subcommand(args)}--help`)", err=True)
            return 2
        except typer.Exit as e:
            return e.exit_code
        except click_exceptions.ClickException as e:
            typer.echo(f"error: {e.format_message()}", err=True)
            return e.exit_code
        except ConfigError as e:
            typer.echo(f"error: {e}", err=True)
            return 2
        except KeyboardInterrupt as e:
            if not terminated():  # SIGTERM: the same, quietly
                message = e.message() if isinstance(e, Interrupted) else Interrupted().message()
                typer.echo(message, err=True)
            return 130
        except Exception as e:
            io = sys.modules.get("tmslab.io")  # loaded by then if a run was read
            if io is not None and isinstance(e, io.RunFormatError):
                typer.echo(f"error: {e}", err=True)
                return 2
            raise


def _subcommand(args: list[str]) -> str:
    return f"{args[0]} " if args and not args[0].startswith("-") else ""


if __name__ == "__main__":  # `python -m tmslab.cli …` runs the CLI too, rather than importing it and doing nothing
    sys.exit(main())
