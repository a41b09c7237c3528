"""The on-disk run format (docs/format.md) and the output folders tmslab writes.

Every file is written to a temporary name and renamed into place, and a whole run directory is
assembled beside its destination and renamed at the end, so a reader never sees half a run.
Loading never unpickles anything: weights are read with safetensors only.

Output folders (docs/format.md, "Output folders"). Every folder tmslab creates for its results holds a
marker, `.tmslab`: a first line `tmslab-output KIND` (run, sweep, reproduce, … or `part` for a folder
inside another output) and then the name of every file or folder tmslab wrote there, one per line.
The writers below record names themselves, so a command only has to

    check_output_dir(out, "mykind", force=force)    # before any work: refuses with one line, writes nothing
    prepare_output_dir(out, "mykind", force=force)  # the same check, then mkdir -p and the marker
    atomic_write_json(out / "x.json", ...)           # recorded in out/.tmslab
    make_dir(out / "sub")                            # a recorded, marked sub-folder
    remove_output(out)                               # --force: delete only what tmslab wrote there

`force` may only replace a folder recognised as a tmslab output of the same kind, and deletes only
the files its markers list: a user's own files beside them are kept. (Run folders written before the
marker existed are recognised by their files.)

One writer per folder (tmslab.lock): a command holds the folder's lock for its whole life,

    with locked_output(out, "mykind", force=force):  # the checks above, then the lock, then the checks again
        ...                                           # a second writer is refused at once, naming our pid

and `save_run` takes it on its own folder (re-entrant: inside a command that holds it, it writes through it).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmslab import lock
from tmslab.config import ConfigError, TrainConfig, versions
from tmslab.naming import option, value_of

if TYPE_CHECKING:  # torch is imported where it is used, so that `tms --help` starts fast
    from torch import Tensor

    from tmslab.models import ToyModel

WEIGHTS, CONFIG, METRICS, HISTORY = "model.safetensors", "config.json", "metrics.json", "history.safetensors"
#: Finite-dataset runs (§6.1): every instance's training set, sparse (tmslab.training.finite.SparseDataset).
DATASET = "dataset.safetensors"
RUN_FILES = (WEIGHTS, CONFIG, METRICS, HISTORY, DATASET)
#: The marker file of an output folder (see the module docstring).
MARKER = ".tmslab"
_HEADER = "tmslab-output "


class RunFormatError(ValueError):
    """A run directory that is missing, incomplete or corrupted."""


# ---- output folders ----------------------------------------------------------------------------------


def output_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind of tmslab output at `path` ('run', 'sweep', 'reproduce', 'part', …), or None if it is not one."""
    path = Path(path)
    try:
        lines = (path / MARKER).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = None
    if lines is not None:
        # Order-independent: a concurrent writer may append a name before the header lands.
        return next((line[len(_HEADER) :].strip() for line in lines if line.startswith(_HEADER)), "part")
    return "run" if _legacy_run(path) else None


def _legacy_run(path: Path) -> bool:
    """A run folder written before markers existed: nothing but run files, weights and config among them."""
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return bool(names) and names <= set(RUN_FILES) and {WEIGHTS, CONFIG} <= names


def _owned(path: Path) -> set[str]:
    """Names tmslab wrote in the output folder `path` (without the marker)."""
    try:
        lines = (path / MARKER).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {n for n in RUN_FILES if (path / n).exists()} if _legacy_run(path) else set()
    return {n for n in lines if n and not n.startswith(_HEADER) and "/" not in n and n not in (".", "..")}


def _is_temporary_of(name: str, owned: set[str]) -> bool:
    # Our writers' temporaries are .NAME.<random>.tmp / .NAME.<random>.partial / .NAME.old
    return name.startswith(".") and any(name.startswith(f".{n}.") for n in owned)


def _our_lock(entry: Path) -> bool:
    """A lock file of a sub-folder (tmslab.lock), ours by its name and its first line."""
    if not lock.is_lock_name(entry.name) or not entry.is_file():
        return False
    try:
        with open(entry, "rb") as f:
            head = f.read(len(lock.HEADER))
    except OSError:
        return False
    return head in (b"", lock.HEADER.encode())


def _foreign(path: Path) -> list[str]:
    owned = _owned(path)
    names = (p.name for p in path.iterdir() if p.name != MARKER and not _our_lock(p))
    return sorted(n for n in names if n not in owned and not _is_temporary_of(n, owned))


def _probe_writable(folder: Path) -> str | None:
    """None if a folder can be created in `folder` (tried and removed at once), else the reason."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".tmslab-probe-"))
    except OSError as e:
        return e.strerror or e.__class__.__name__
    return None


def check_output_dir(
    path: str | os.PathLike[str], kind: str, *, force: bool = False, resume: bool = False, name: str = "out"
) -> Path:
    """Refuse, before any work, an output folder that tmslab cannot or must not write; write nothing.

    Accepted: a folder that does not exist yet (missing parents are created later, as `mkdir -p`), an
    empty folder, or a tmslab output of the same `kind` when `force` (replace) or `resume` (continue)
    is given. Refused, with one line naming the option (`--out` on the command line, `out=` in Python):
    a file; a path under a file; the current folder or one containing it; a place where folders cannot
    be created; a non-empty folder tmslab did not write (even with force: nothing tmslab did not write
    is ever deleted); another kind of tmslab output.
    """
    path = Path(path)
    shown = value_of(name, path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{shown} is an existing file; give a folder path.")
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        where = "the current folder" if resolved == cwd else "a folder containing the current one"
        raise ConfigError(f"{shown} is {where}; give a new sub-folder such as runs/NAME.")
    package = Path(__file__).resolve().parent
    if resolved == package or resolved in package.parents:
        raise ConfigError(f"{shown} contains tmslab's own files; give a new sub-folder such as runs/NAME.")
    existing = resolved
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{shown}: {existing} is a file, not a folder.")
    reason = _probe_writable(existing)
    if reason is not None:
        raise ConfigError(f"{shown}: cannot write in {existing} ({reason}).")
    if existing == resolved and any(path.iterdir()):
        found = output_kind(path)
        if found is None:
            foreign = _foreign(path)
            shown_names = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
            raise ConfigError(
                f"{shown} holds files tmslab did not write ({shown_names}); choose another folder "
                "(tmslab never deletes files it did not write)."
            )
        if found != kind:
            raise ConfigError(f"{shown} holds a tmslab {found}, not a {kind}; choose another folder.")
        if not (force or resume):
            raise ConfigError(
                f"{shown} already holds a tmslab {kind}; choose another folder or pass {option('force')} to replace it."
            )
    return path


def prepare_output_dir(
    path: str | os.PathLike[str], kind: str, *, force: bool = False, resume: bool = False, name: str = "out"
) -> Path:
    """`check_output_dir`, then create the folder (and missing parents) and mark it as a tmslab `kind` output."""
    path = check_output_dir(path, kind, force=force, resume=resume, name=name)
    make_dir(path, kind)
    return path


@contextmanager
def locked_output(
    path: str | os.PathLike[str],
    kind: str | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    name: str = "out",
    shared: bool = False,
) -> Iterator[Path]:
    """Hold the one-writer lock of output folder `path` (tmslab.lock) for the `with` block, checked as
    `check_output_dir` checks it, before the lock and again under it.

    1. The check refuses a bad folder before anything is created. If a live writer holds the folder, its
       refusal is raised instead: the folder may look finished (or foreign) only because it is being written.
    2. The lock: another holder → FolderLocked, one line naming its pid (exit 2 on the command line); nothing
       is created. Missing parent folders are made for the lock file (and removed again if left empty).
    3. The check again, under the lock: the previous holder may have finished between 1 and 2.

    kind None: the lock only. shared: `tms sweep --shard` (shards share the folder; see tmslab.lock).
    """
    path = Path(path)
    if kind is not None:
        try:
            check_output_dir(path, kind, force=force, resume=resume, name=name)
        except ConfigError:
            busy = lock.holder_message(path, name=name)
            if busy is not None:
                raise busy from None
            raise
    with lock.output_lock(path, name=name, shared=shared, make_parents=make_dir):
        if kind is not None:
            check_output_dir(path, kind, force=force, resume=resume, name=name)
        yield path


def _mark(path: Path, kind: str) -> None:
    """Create path/.tmslab if absent (O_EXCL: concurrent shards never overwrite each other's lines)."""
    names = "".join(f"{n}\n" for n in sorted(_owned(path))) if _legacy_run(path) else ""
    try:
        fd = os.open(path / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(f"{_HEADER}{kind}\n{names}")


def claim(path: str | os.PathLike[str]) -> None:
    """Record that tmslab writes `path`, in its folder's marker, if that folder is a tmslab output.

    Appended with O_APPEND, so concurrent writers (sweep shards) do not lose each other's names. Call it
    *before* creating `path`: a crash then leaves a listed name that does not exist, never an unlisted file.
    """
    path = Path(path)
    marker = path.parent / MARKER
    if marker.is_file() and not path.exists():
        with open(marker, "a") as f:
            f.write(path.name + "\n")


def make_dir(path: str | os.PathLike[str], kind: str = "part") -> Path:
    """Create folder `path` like `mkdir -p`; every folder created inside a tmslab output is recorded there and
    marked, so `remove_output` can delete it. `kind` is the marker of `path` itself."""
    path = Path(path)
    inside_output = False
    if not path.is_dir():
        if not path.parent.exists():
            make_dir(path.parent)
        inside_output = (path.parent / MARKER).is_file()
        claim(path)
        path.mkdir(exist_ok=True)
    if kind != "part" or inside_output:
        _mark(path, kind)
    return path


def remove_output(path: str | os.PathLike[str], *, keep_folder: bool = True) -> list[str]:
    """Delete what tmslab wrote in the output folder `path`, recursively by its markers, and nothing else.

    Returns the names left in `path`: files tmslab did not write, and its own sub-folders that still
    hold some. A folder left non-empty keeps its marker (so it stays recognised and can be written
    again); with keep_folder=False an emptied folder is removed, marker and all.
    """
    path = Path(path)
    kind = output_kind(path)
    if kind is None:
        raise ConfigError(f"{path} is not a tmslab output; nothing was deleted.")
    owned = _owned(path)
    ours = []  # sub-folders of ours that still hold files of the user's
    for entry in list(path.iterdir()):
        if entry.name == MARKER:
            continue
        if _our_lock(entry):  # a sub-folder's lock: removed only if its holder died, never under a live writer
            lock.remove_if_stale(entry)
            continue
        if entry.name in owned and entry.is_dir() and not entry.is_symlink():
            if output_kind(entry) is not None and remove_output(entry, keep_folder=False):
                ours.append(entry.name)
        elif entry.name in owned or _is_temporary_of(entry.name, owned):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)  # only our temporaries (.NAME.<random>.partial) are unmarked folders
            else:
                entry.unlink(missing_ok=True)
    left = sorted(p.name for p in path.iterdir() if p.name != MARKER)
    if keep_folder or left:
        atomic_write_bytes(path / MARKER, "".join(f"{line}\n" for line in [_HEADER + kind, *ours]).encode())
    else:
        (path / MARKER).unlink(missing_ok=True)
        path.rmdir()
    return left


# ---- atomic writers ----------------------------------------------------------------------------------


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, and rename it into place."""
    path = Path(path)
    make_dir(path.parent)
    claim(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # mkstemp creates 0600; results are ordinary readable files
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_parquet(path: Path, df: Any) -> None:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def finite_json(obj: Any) -> Any:
    """NaN/inf → None, recursively: JSON has no NaN, and an undefined value (an overlap of fewer than two
    features, absorption without co-occurrences) is written as null rather than refused."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def atomic_save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    claim(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_out_dir(out: Path, force: bool = False) -> None:
    """Refuse an --out that cannot receive a run, before any work is done (`check_output_dir` for runs)."""
    check_output_dir(out, "run", force=force)


def replace_dir(tmp: Path, out: Path, kind: str) -> None:
    """Move the folder assembled in `tmp` (all of it tmslab's) to `out`, which `check_output_dir` accepted,
    marked as a tmslab `kind` output; a previous tmslab output at `out` loses only the files tmslab wrote."""
    _mark(tmp, kind)
    owned = _owned(tmp)
    unlisted = sorted(p.name for p in tmp.iterdir() if p.name != MARKER and p.name not in owned)
    if unlisted:
        with open(tmp / MARKER, "a") as f:
            f.writelines(f"{name}\n" for name in unlisted)
    if out.exists():
        _replace_run(out, tmp)
    else:
        os.replace(tmp, out)


def instance_records(
    config: TrainConfig, eval_loss: Tensor, best: Tensor, shifted_eval_loss: Tensor | None = None
) -> list[dict[str, Any]]:
    """One metrics.json record per instance: configurations in order, restarts innermost; with an eval_density
    (distribution shift, paper-spec §6.6) also that density and the loss under it."""
    rows = []
    for k in range(config.n_instances):
        c, r = divmod(k, config.restarts)
        rows.append(
            {
                "index": k,
                "config": c,
                "density": config.density[c],
                "importance": config.config_importance(c),
                "restart": r,
                "seed": config.instance_seed(k),
                "eval_loss": float(eval_loss[k]),
                "best": bool(best[k]),
            }
        )
        if shifted_eval_loss is not None:
            rows[-1]["eval_density"] = config.eval_density[c]
            rows[-1]["shifted_eval_loss"] = float(shifted_eval_loss[k])
    return rows


def save_run(out: Path, result: Any, extra_metrics: dict[str, Any] | None = None, force: bool = False) -> Path:
    """Write a TrainResult as RUN_DIR/{model.safetensors, config.json, metrics.json[, history.safetensors]}.

    Missing parent folders are created; `force=True` replaces a previous run there (only its files). Holds the
    folder's one-writer lock meanwhile (tmslab.lock; re-entrant, so a command holding it writes through it):
    another process writing `out` makes it raise lock.FolderLocked, having written nothing.
    """
    with locked_output(out, "run", force=force):
        return _save_run(Path(out), result, extra_metrics, force)


def _save_run(out: Path, result: Any, extra_metrics: dict[str, Any] | None, force: bool) -> Path:
    """save_run's work, under the lock and after its checks."""
    make_dir(out.parent)
    claim(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        _mark(tmp, "run")
        config: TrainConfig = result.config
        # A single metadata key: safetensors does not keep metadata order, and identical runs must
        # give byte-identical files.
        atomic_save_tensors(tmp / WEIGHTS, result.params, metadata={"format": "tmslab-run-1"})
        atomic_write_json(
            tmp / CONFIG,
            {**config.to_dict(), "n_instances": config.n_instances, "versions": versions(), "engine": result.engine},
        )
        records = instance_records(config, result.eval_loss, result.best, getattr(result, "shifted_eval_loss", None))
        if getattr(result, "train_loss", None) is not None:  # finite datasets: eval_loss is the test loss
            for rec in records:
                rec["dataset_size"] = config.config_dataset_size(rec["config"])
                rec["train_loss"] = float(result.train_loss[rec["index"]])
        metrics = {
            "instances": records,
            "train_seconds": result.train_seconds,
            "eval_seconds": getattr(result, "eval_seconds", 0.0),
            "engine": result.engine,
            **(extra_metrics or {}),
        }
        atomic_write_json(tmp / METRICS, metrics)
        if result.history:
            atomic_save_tensors(tmp / HISTORY, result.history)
        if getattr(result, "dataset", None):
            atomic_save_tensors(tmp / DATASET, result.dataset, metadata={"format": "tmslab-sparse-dataset-1"})
        replace_dir(tmp, out, "run")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the temporary folder is entirely ours
        raise
    return out


def _replace_run(out: Path, new: Path) -> None:
    """Put the output assembled in `new` at `out`, deleting only the files of the output it replaces."""
    foreign = _foreign(out)
    clash = sorted(set(foreign) & {p.name for p in new.iterdir()})
    if clash:
        raise ConfigError(f"{value_of('out', out)} holds {clash[0]}, which tmslab did not write; move it first.")
    if not foreign:  # nothing but tmslab's files: swap the whole folder
        old = out.with_name(f".{out.name}.old")  # a leftover of an interrupted replacement: ours
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(new, out)
        if output_kind(old) is not None:
            remove_output(old, keep_folder=False)
        else:  # it was an empty folder
            old.rmdir()
        return
    remove_output(out)  # the user's own files in the folder stay where they are
    for entry in sorted(new.iterdir()):
        if entry.name != MARKER:
            claim(out / entry.name)
            os.replace(entry, out / entry.name)
    (new / MARKER).unlink()
    new.rmdir()


@dataclass
class Run:
    """A run loaded from disk."""

    path: Path
    config: TrainConfig
    params: dict[str, Tensor]
    metrics: dict[str, Any]
    versions: dict[str, str]
    history: dict[str, Tensor]

    @property
    def model(self) -> ToyModel:
        from tmslab.models import model_from_params

        return model_from_params(self.config, self.params)

    @property
    def W(self) -> Tensor:
        """Feature directions in the (first) hidden layer [instances, hidden, features] (models.encoder)."""
        from tmslab.models import encoder

        return encoder(self.config.model, self.params)

    @property
    def b(self) -> Tensor:
        return self.params["b"]

    @property
    def eval_loss(self) -> Tensor:
        import torch

        return torch.tensor([r["eval_loss"] for r in self.metrics["instances"]])

    @property
    def best(self) -> Tensor:
        import torch

        return torch.tensor([r["best"] for r in self.metrics["instances"]])

    def dataset(self) -> dict[str, Tensor]:
        """The sparse training sets of a finite-dataset run (training.finite.SparseDataset.from_tensors)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(self.path / DATASET)
        except FileNotFoundError:
            raise RunFormatError(f"{self.path / DATASET} is missing; is this a finite-dataset run?") from None
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise RunFormatError(f"{self.path / DATASET} is corrupted: {str(e).splitlines()[0]}") from None

    def best_indices(self) -> list[int]:
        """Instance index of the best restart of each configuration, in configuration order."""
        return [r["index"] for r in self.metrics["instances"] if r["best"]]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFormatError(f"{path} is missing; is {path.parent} a tmslab run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{path} is not valid JSON ({e.__class__.__name__}: {e}).") from None


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load RUN_DIR written by `tms train` (or any experiment) — weights via safetensors only."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise RunFormatError(f"{path} is not a directory; give a run directory written by `tms train --out`.")
    raw = _read_json(path / CONFIG)
    vers = raw.pop("versions", {})
    raw.pop("n_instances", None)
    raw.pop("engine", None)
    try:
        config = TrainConfig.from_dict(raw)
    except (ConfigError, TypeError) as e:
        raise RunFormatError(f"{path / CONFIG} does not hold a valid configuration: {e}") from None
    metrics = _read_json(path / METRICS)
    weights = path / WEIGHTS
    if not weights.exists():
        raise RunFormatError(f"{weights} is missing.")
    try:
        params = load_file(weights)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise RunFormatError(f"{weights} is corrupted or truncated: {str(e).splitlines()[0]}") from None
    from tmslab.models import param_shapes

    shapes = param_shapes(config)
    if set(params) != set(shapes):
        raise RunFormatError(f"{weights} holds tensors {sorted(params)}, expected {sorted(shapes)}.")
    for name, shape in shapes.items():  # the encoder first: its message names the three sizes users know
        if tuple(params[name].shape) != shape and (name in ("W", "W1") or config.model in ("resid-mlp", "mlp")):
            raise RunFormatError(
                f"{weights}: weight {name} shape {tuple(params[name].shape)} does not match the configuration {shape}."
            )
    history = {}
    if (path / HISTORY).exists():
        try:
            history = load_file(path / HISTORY)
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise RunFormatError(f"{path / HISTORY} is corrupted: {str(e).splitlines()[0]}") from None
    return Run(path=path, config=config, params=params, metrics=metrics, versions=vers, history=history)
