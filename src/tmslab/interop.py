"""Export tmslab models to the formats of neighbouring tools and import them back (paper-spec §6.6).

Formats (docs/interop.md has the full contract):

- ``param-decomp`` (goodfire-ai/param-decomp, formerly spd): ``DIR/tms.pth``, a ``torch.save``d state dict
  with ``linear1.weight`` [m, n], ``linear2.weight`` [n, m] (= linear1ᵀ, tied), ``linear2.bias`` [n] and, for
  the identity model, ``hidden_layers.0.weight`` [m, m] (the identity); beside ``DIR/tms_train_config.yaml``
  holding only the fields their TMSTrainConfig reads (it refuses unknown keys).
- ``devinterp`` (1.x TMS zoo, ``ToyAutoencoder(n, m, tied=True, final_bias=True)``): ``DIR/toy_autoencoder.pth``
  with ``embedding.weight`` [m, n], ``unembedding.weight`` [n, m], ``unembedding.bias`` [n], and
  ``DIR/toy_autoencoder.json`` with the constructor arguments and the data they were trained on.
- ``transformer-lens``: ``DIR/hooked_toy_model.safetensors``, the state dict of `tmslab.lens.HookedToyModel`
  (tmslab's names and shapes, instances first), and ``DIR/hooked_toy_model.json`` (its constructor arguments).

Every export also writes ``DIR/tmslab.json`` (the tmslab configuration of the exported instances and where
they came from), so importing an export restores the configuration exactly; a checkpoint written by the other
tool (no tmslab.json) gets a configuration mapped from its own. Importing never unpickles arbitrary objects:
``.pth`` files are read with ``torch.load(weights_only=True)`` only, safetensors with safetensors; keys, shapes
and dtypes are validated, and anything else is refused with one line (`InteropError`).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from tmslab.config import ConfigError, TrainConfig, versions
from tmslab.io import (
    Run,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    check_out_dir,
    check_output_dir,
    make_dir,
    replace_dir,
    save_run,
)

Format = Literal["param-decomp", "devinterp", "transformer-lens"]
FORMATS: tuple[str, ...] = ("param-decomp", "devinterp", "transformer-lens")
ScheduleForm = Literal["legacy", "object"]

SIDECAR = "tmslab.json"
PD_WEIGHTS, PD_CONFIG = "tms.pth", "tms_train_config.yaml"
RM_WEIGHTS, RM_CONFIG, RM_COEFFS = "resid_mlp.pth", "resid_mlp_train_config.yaml", "label_coeffs.json"
DI_WEIGHTS, DI_CONFIG = "toy_autoencoder.pth", "toy_autoencoder.json"
TL_WEIGHTS, TL_CONFIG = "hooked_toy_model.safetensors", "hooked_toy_model.json"

#: Model kinds each format can hold. param-decomp's TMSModel is ReLU(linear2(hidden_layers(linear1 x))) with
#: tied weights; devinterp's ToyAutoencoder is nonlinearity(unembedding(embedding x)) with tied weights.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "param-decomp": ("relu-output", "relu-output-id", "resid-mlp"),
    "devinterp": ("relu-output", "linear"),
    "transformer-lens": ("relu-output", "linear", "hidden-relu", "abs", "relu-output-id"),
}


class InteropError(ConfigError):
    """An export or import that cannot be done; the message is one line naming the problem."""


# ---- choosing what to export ------------------------------------------------------------------------


def instance_config(config: TrainConfig, instance: int) -> TrainConfig:
    """The configuration of one instance as a run of its own: its configuration's density and importance,
    one restart, seeded with the instance's own init seed."""
    c = instance // config.restarts
    return replace(
        config,
        density=[config.density[c]],
        importance=None if config.importance is None else config.config_importance(c),
        eval_density=None if config.eval_density is None else [config.eval_density[c]],
        restarts=1,
        seed=config.instance_seed(instance),
    )


def select_instances(run: Run, fmt: str, instance: int | None) -> list[int]:
    """The instances to export: `instance`; else every instance for transformer-lens (HookedToyModel is
    batched), else the best restart of a single-configuration run."""
    n = run.config.n_instances
    if instance is not None:
        if isinstance(instance, bool) or not isinstance(instance, int) or not 0 <= instance < n:
            raise InteropError(f"--instance must be an integer in [0, {n - 1}] for {run.path}, got {instance!r}.")
        return [instance]
    if fmt == "transformer-lens":
        return list(range(n))
    if run.config.n_configs == 1:
        return run.best_indices()
    raise InteropError(
        f"{run.path} holds {run.config.n_configs} configurations; choose one model with --instance K "
        f"(best restarts: {', '.join(map(str, run.best_indices()))})."
    )


# ---- export -----------------------------------------------------------------------------------------


def _torch_bytes(state: dict[str, Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().contiguous().clone() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def _yaml_bytes(obj: dict[str, Any]) -> bytes:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False).encode()


def _feature_probability(config: TrainConfig) -> float:
    """The one density param-decomp's config can state: that of every feature not in off_features."""
    on = [d for i, d in enumerate(config.config_density(0)) if i not in config.off_features]
    if len(set(on)) > 1:
        raise InteropError(
            f"param-decomp's config has one feature_probability; this model has per-feature densities {on}."
        )
    return on[0] if on else 0.0


def _lr_schedule(config: TrainConfig, form: ScheduleForm) -> dict[str, Any]:
    """lr fields in param-decomp's older form (lr + lr_schedule string, read by spd and, through its
    migration, by param-decomp) or its newer ScheduleConfig object."""
    final = 1.0 if config.schedule == "constant" else 0.0  # tmslab's linear and cosine schedules end at 0
    warmup = config.warmup_steps / config.steps
    if form == "object":
        return {"lr_schedule": {"start_val": config.lr, "fn_type": config.schedule, "warmup_pct": warmup,
                                "final_val_frac": final}}
    out: dict[str, Any] = {"lr": config.lr, "lr_schedule": config.schedule}
    if warmup:
        out["lr_warmup_pct"] = warmup
    return out


def param_decomp_files(params: dict[str, Tensor], config: TrainConfig, form: ScheduleForm) -> dict[str, bytes]:
    """tms.pth and tms_train_config.yaml for one instance (params without the instances dimension)."""
    W, b = params["W"], params["b"]
    m = W.shape[0]
    state = {"linear1.weight": W, "linear2.weight": W.T, "linear2.bias": b}
    identity = config.model == "relu-output-id"
    if identity:
        state["hidden_layers.0.weight"] = torch.eye(m)
    if config.distribution not in ("independent", "one-hot"):
        raise InteropError(f"param-decomp's TMS data has no {config.distribution} sets; export to transformer-lens.")
    train_config = {
        "wandb_project": None,
        "tms_model_config": {
            "n_features": config.n_features,
            "n_hidden": config.n_hidden,
            "n_hidden_layers": int(identity),
            "tied_weights": True,
            "init_bias_to_zero": True,  # tmslab initialises b to zero
            "device": "cpu",
        },
        "feature_probability": 1.0 / config.n_features if config.distribution == "one-hot" else
        _feature_probability(config),
        "batch_size": config.batch_size,
        "steps": config.steps,
        "seed": config.seed,
        **_lr_schedule(config, form),
        "data_generation_type": "exactly_one_active" if config.distribution == "one-hot" else "at_least_zero_active",
        "fixed_identity_hidden_layers": identity,
        "fixed_random_hidden_layers": False,
        "synced_inputs": None,
    }
    return {PD_WEIGHTS: _torch_bytes(state), PD_CONFIG: _yaml_bytes(train_config)}


#: The fields of param-decomp's ResidMLPTrainConfig and ResidMLPModelConfig (spd/experiments/resid_mlp/configs.py;
#: pydantic with extra keys forbidden): an export writes exactly these, an import refuses any other.
RM_FIELDS = (
    "wandb_project", "seed", "resid_mlp_model_config", "label_fn_seed", "label_type", "loss_type",
    "use_trivial_label_coeffs", "feature_probability", "synced_inputs", "importance_val", "data_generation_type",
    "batch_size", "steps", "print_freq", "lr_schedule", "fixed_random_embedding", "fixed_identity_embedding",
    "n_batches_final_losses",
)  # fmt: skip
RM_MODEL_FIELDS = ("n_features", "d_embed", "d_mlp", "n_layers", "act_fn_name", "in_bias", "out_bias")


def _resid_schedule(config: TrainConfig) -> dict[str, Any]:
    """tmslab's schedule as param-decomp's ScheduleConfig (their get_scheduled_value): cosine-floor with floor f is
    their half cosine to final_val_frac f (progress t/(T−1) there, t/T here); tmslab's quarter cosine and linear end
    at 0."""
    fn = {"cosine-floor": "cosine", "cosine": "cosine", "linear": "linear", "constant": "constant"}[config.schedule]
    final = {"cosine-floor": config.lr_floor, "constant": 1.0}.get(config.schedule, 0.0)
    return {"start_val": config.lr, "warmup_pct": config.warmup_steps / config.steps, "final_val_frac": final,
            "fn_type": fn}  # fmt: skip


def resid_mlp_files(params: dict[str, Tensor], config: TrainConfig) -> dict[str, bytes]:
    """resid_mlp.pth, resid_mlp_train_config.yaml and label_coeffs.json for one resid-mlp instance (paper-spec §6.7):
    the state dict of param-decomp's ResidMLP (W_E [n, d_embed], W_U = W_Eᵀ, layers.{i}.mlp_in.weight [d_mlp,
    d_embed], layers.{i}.mlp_out.weight [d_embed, d_mlp]), their train config with exactly their fields, and the
    label coefficients (all 1: labels x + act(x))."""
    uniform = all(v == 1 for v in config.config_importance(0))
    if not uniform or config.value_max != 1.0 or config.off_features:
        raise InteropError("param-decomp's resid-mlp data has importance 1, values U(−1, 1) and every feature on; "
                           "this model differs (importance, value_max or off_features).")  # fmt: skip
    state: dict[str, Tensor] = {"W_E": params["W_E"], "W_U": params["W_E"].T}
    for i in range(config.n_layers):
        state[f"layers.{i}.mlp_in.weight"] = params["W_in"][i]
        state[f"layers.{i}.mlp_out.weight"] = params["W_out"][i]
    train_config = {
        "wandb_project": None,
        "seed": config.seed,
        "resid_mlp_model_config": {
            "n_features": config.n_features, "d_embed": config.d_embed, "d_mlp": config.n_hidden,
            "n_layers": config.n_layers, "act_fn_name": config.act, "in_bias": False, "out_bias": False,
        },
        "label_fn_seed": 0,
        "label_type": "act_plus_resid",
        "loss_type": "readoff",
        "use_trivial_label_coeffs": True,
        "feature_probability": _feature_probability(config),
        "synced_inputs": None,
        "importance_val": 1.0,
        "data_generation_type": "at_least_zero_active",
        "batch_size": config.batch_size,
        "steps": config.steps,
        "print_freq": 100,
        "lr_schedule": _resid_schedule(config),
        "fixed_random_embedding": True,
        "fixed_identity_embedding": False,
        "n_batches_final_losses": 10,
    }  # fmt: skip
    coeffs = (json.dumps([1.0] * config.n_features) + "\n").encode()
    return {RM_WEIGHTS: _torch_bytes(state), RM_CONFIG: _yaml_bytes(train_config), RM_COEFFS: coeffs}


def devinterp_files(params: dict[str, Tensor], config: TrainConfig) -> dict[str, bytes]:
    """toy_autoencoder.pth and toy_autoencoder.json for one instance."""
    W, b = params["W"], params["b"]
    if config.distribution != "independent":
        raise InteropError(f"devinterp's TMS data is independent features; this model saw {config.distribution}.")
    state = {"embedding.weight": W, "unembedding.weight": W.T, "unembedding.bias": b}
    meta = {
        "model": {"input_dim": config.n_features, "hidden_dim": config.n_hidden, "tied": True, "final_bias": True,
                  "hidden_bias": False, "nonlinearity": "identity" if config.model == "linear" else "relu"},
        "data": {"feature_probability": _feature_probability(config), "values": "uniform[0,1]"},
    }
    return {DI_WEIGHTS: _torch_bytes(state), DI_CONFIG: (json.dumps(meta, indent=2) + "\n").encode()}


def export_run(
    run: Run, to: str, out: Path, instance: int | None = None, *, schedule_form: ScheduleForm = "legacy",
    force: bool = False,
) -> Path:
    """Write `run` (one instance, or every instance for transformer-lens) to directory `out` in format `to`.

    The directory is assembled beside `out` and renamed into place, so a refused or interrupted export
    writes nothing."""
    if to not in FORMATS:
        raise InteropError(f"--to must be one of {', '.join(FORMATS)}; got {to!r}.")
    if schedule_form not in ("legacy", "object"):
        raise InteropError(f"the lr schedule form must be legacy or object, got {schedule_form!r}.")
    config = run.config
    if config.model not in SUPPORTED[to]:
        hint = ("export it to transformer-lens instead" if config.model in SUPPORTED["transformer-lens"] else
                "no export format holds it yet")  # the §6.7 mlp model
        raise InteropError(f"{to} cannot hold a {config.model} model (it holds {', '.join(SUPPORTED[to])}); {hint}.")
    out = Path(out)
    check_output_dir(out, "export", force=force)
    chosen = select_instances(run, to, instance)
    if len(chosen) == 1:
        k = chosen[0]
        sub_config = instance_config(config, k)
        params = {name: v[k] for name, v in run.params.items()}
    else:
        sub_config, params = config, run.params
    if to == "param-decomp" and config.model == "resid-mlp":
        files = resid_mlp_files(params, sub_config)
    elif to == "param-decomp":
        files = param_decomp_files(params, sub_config, schedule_form)
    elif to == "devinterp":
        files = devinterp_files(params, sub_config)
    else:
        files = {}
    sidecar = {
        "format": "tmslab-export-1",
        "to": to,
        "config": sub_config.to_dict(),
        "source": {"run": str(run.path), "instances": chosen, "config": config.to_dict(), "versions": run.versions},
        "versions": versions(),
    }
    _write_dir(out, files, sidecar, params if to == "transformer-lens" else None, sub_config, len(chosen) == 1)
    return out


def _write_dir(
    out: Path, files: dict[str, bytes], sidecar: dict[str, Any], tl_params: dict[str, Tensor] | None,
    config: TrainConfig, single: bool,
) -> None:
    make_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        if tl_params is not None:
            tensors = {k: (v[None] if single else v) for k, v in tl_params.items()}
            atomic_save_tensors(tmp / TL_WEIGHTS, tensors, metadata={"format": "tmslab-hooked-1"})
            n_inst = next(iter(tensors.values())).shape[0]
            atomic_write_json(tmp / TL_CONFIG, {"model": config.model, "n_instances": n_inst,
                                                "n_features": config.n_features, "n_hidden": config.n_hidden})
        atomic_write_json(tmp / SIDECAR, sidecar)
        replace_dir(tmp, out, "export")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- import -----------------------------------------------------------------------------------------


def detect_format(src: Path) -> str:
    """Which format directory `src` holds, from the files in it."""
    if not src.is_dir():
        raise InteropError(f"{src} is not a directory; give a directory written by `tms export` or the other tool.")
    pairs = (("param-decomp", PD_WEIGHTS), ("param-decomp", RM_WEIGHTS), ("devinterp", DI_WEIGHTS),
             ("transformer-lens", TL_WEIGHTS))  # fmt: skip
    for fmt, name in pairs:
        if (src / name).exists():
            return fmt
    raise InteropError(f"{src} holds none of {PD_WEIGHTS} or {RM_WEIGHTS} (param-decomp), {DI_WEIGHTS} (devinterp), "
                       f"{TL_WEIGHTS} (transformer-lens).")


def _load_pth(path: Path) -> dict[str, Tensor]:
    """A state dict of tensors, via torch.load(weights_only=True) only: no arbitrary unpickling."""
    import pickle

    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as e:
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise InteropError(f"{path} is not a weights-only state dict (torch.load refused it: {first[:200]}).") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise InteropError(f"{path} does not hold a state dict (a mapping of names to tensors).")
    return obj


def _check_keys(path: Path, state: dict[str, Tensor], shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    if set(state) != set(shapes):
        raise InteropError(f"{path} holds tensors {sorted(state)}; expected exactly {sorted(shapes)}.")
    out = {}
    for name, shape in shapes.items():
        t = state[name]
        if tuple(t.shape) != shape:
            raise InteropError(f"{path}: {name} has shape {list(t.shape)}, expected {list(shape)}.")
        if not t.is_floating_point():
            raise InteropError(f"{path}: {name} has dtype {t.dtype}, expected a floating-point tensor.")
        t = t.detach().to(torch.float32).contiguous().clone()
        if not torch.isfinite(t).all():
            raise InteropError(f"{path}: {name} holds non-finite values.")
        out[name] = t
    return out


def _positive(path: Path, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InteropError(f"{path}: {name} must be a positive integer, got {value!r}.")
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    data = _read_mapping(path, f"param-decomp keeps it beside {PD_WEIGHTS}", yaml_format=True)
    if not isinstance(data.get("tms_model_config"), dict):
        raise InteropError(f"{path} has no tms_model_config mapping; is it a param-decomp tms_train_config.yaml?")
    return data


def _pd_lr(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """tmslab lr, schedule and warm-up from either param-decomp lr form."""
    sched = data.get("lr_schedule", "constant")
    if "lr" in data:  # older form: lr + lr_schedule string (+ lr_warmup_pct)
        lr, fn, warmup = data["lr"], sched, data.get("lr_warmup_pct", 0.0)
    elif isinstance(sched, dict):
        lr, fn, warmup = sched.get("start_val"), sched.get("fn_type", "constant"), sched.get("warmup_pct", 0.0)
    else:
        raise InteropError(f"{path} has neither lr nor an lr_schedule mapping.")
    if isinstance(lr, str):  # YAML 1.1 reads 5e-3 as a string
        try:
            lr = float(lr)
        except ValueError:
            pass
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not isinstance(warmup, (int, float)):
        raise InteropError(f"{path}: the learning rate must be a number, got {lr!r}.")
    if fn not in ("constant", "linear", "cosine"):
        raise InteropError(f"{path}: lr schedule must be constant, linear or cosine, got {fn!r}.")
    return {"lr": float(lr), "schedule": fn, "warmup_steps": int(round(float(warmup) * data.get("steps", 0)))}


def read_param_decomp(src: Path) -> tuple[dict[str, Tensor], TrainConfig, dict[str, Any]]:
    """(params with an instances dimension of 1, mapped configuration, their config) from a param-decomp dir."""
    if (src / RM_WEIGHTS).exists() and not (src / PD_WEIGHTS).exists():
        return read_resid_mlp(src)
    ypath, wpath = src / PD_CONFIG, src / PD_WEIGHTS
    data = _read_yaml(ypath)
    mc = data["tms_model_config"]
    n = _positive(ypath, "n_features", mc.get("n_features"))
    m = _positive(ypath, "n_hidden", mc.get("n_hidden"))
    layers = mc.get("n_hidden_layers", 0)
    if layers not in (0, 1):
        raise InteropError(f"{ypath}: n_hidden_layers must be 0 or 1 for tmslab, got {layers!r}.")
    if mc.get("tied_weights", True) is not True:
        raise InteropError(f"{ypath}: tied_weights is {mc.get('tied_weights')!r}; tmslab's TMS models are tied.")
    if layers and (data.get("fixed_identity_hidden_layers") is not True or data.get("fixed_random_hidden_layers")):
        raise InteropError(f"{ypath}: a hidden layer must be a fixed identity (fixed_identity_hidden_layers: true).")
    if data.get("synced_inputs"):
        raise InteropError(f"{ypath}: synced_inputs {data['synced_inputs']} have no tmslab equivalent.")
    gen = data.get("data_generation_type", "at_least_zero_active")
    if gen not in ("at_least_zero_active", "exactly_one_active"):
        raise InteropError(f"{ypath}: data_generation_type must be at_least_zero_active or exactly_one_active, "
                           f"got {gen!r}.")
    shapes = {"linear1.weight": (m, n), "linear2.weight": (n, m), "linear2.bias": (n,)}
    if layers:
        shapes["hidden_layers.0.weight"] = (m, m)
    state = _check_keys(wpath, _load_pth(wpath), shapes)
    W = state["linear1.weight"]
    if not torch.equal(state["linear2.weight"], W.T):
        raise InteropError(f"{wpath}: linear2.weight is not linear1.weightᵀ; tmslab's TMS models are tied.")
    if layers and not torch.equal(state["hidden_layers.0.weight"], torch.eye(m)):
        raise InteropError(f"{wpath}: hidden_layers.0.weight is not the identity; tmslab holds a frozen identity.")
    p = data.get("feature_probability")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise InteropError(f"{ypath}: feature_probability must be in (0, 1], got {p!r}.")
    try:
        config = TrainConfig(
            model="relu-output-id" if layers else "relu-output", n_features=n, n_hidden=m, density=[float(p)],
            distribution="one-hot" if gen == "exactly_one_active" else "independent",
            steps=_positive(ypath, "steps", data.get("steps")),
            batch_size=_positive(ypath, "batch_size", data.get("batch_size")),
            seed=data.get("seed", 0), **_pd_lr(ypath, data),
        )
    except ConfigError as e:
        raise InteropError(f"{ypath}: {e}") from None
    return {"W": W[None], "b": state["linear2.bias"][None]}, config, data


def _resid_lr(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """tmslab lr, schedule, floor and warm-up from param-decomp's ScheduleConfig (or the older lr fields, which
    their loader migrates: cosine then ends at 0, constant at 1)."""
    sched = data.get("lr_schedule")
    if "lr" in data:
        fn = sched if isinstance(sched, str) else "constant"
        sched = {"start_val": data["lr"], "fn_type": fn, "warmup_pct": data.get("lr_warmup_pct", 0.0),
                 "final_val_frac": 0.0 if fn == "cosine" else 1.0}  # fmt: skip
    if not isinstance(sched, dict):
        raise InteropError(f"{path} has neither lr nor an lr_schedule mapping.")
    lr, fn = sched.get("start_val"), sched.get("fn_type", "constant")
    warmup, final = sched.get("warmup_pct", 0.0), sched.get("final_val_frac", 1.0)
    if isinstance(lr, str):  # YAML 1.1 reads 3e-3 as a string
        try:
            lr = float(lr)
        except ValueError:
            pass
    for name, v in (("start_val", lr), ("warmup_pct", warmup), ("final_val_frac", final)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InteropError(f"{path}: lr_schedule.{name} must be a number, got {v!r}.")
    steps = data.get("steps", 0)
    out: dict[str, Any] = {"lr": float(lr), "warmup_steps": int(round(float(warmup) * steps))}
    if fn == "cosine" and 0 <= final <= 1:
        return {**out, "schedule": "cosine-floor", "lr_floor": float(final)}
    if fn == "linear" and final == 0:
        return {**out, "schedule": "linear"}
    if fn == "constant" and final == 1:
        return {**out, "schedule": "constant"}
    raise InteropError(f"{path}: lr_schedule {fn} with final_val_frac {final!r} has no tmslab schedule "
                       "(cosine with final_val_frac in [0, 1], linear to 0, constant).")  # fmt: skip


def read_resid_mlp(src: Path) -> tuple[dict[str, Tensor], TrainConfig, dict[str, Any]]:
    """(params with an instances dimension of 1, mapped configuration, their config) from param-decomp's resid_mlp
    checkpoint folder (paper-spec §6.7): weights via torch.load(weights_only=True), keys and shapes validated,
    W_U = W_Eᵀ exactly, no biases, labels act(x) + x with unit coefficients."""
    ypath, wpath, cpath = src / RM_CONFIG, src / RM_WEIGHTS, src / RM_COEFFS
    data = _read_mapping(ypath, f"param-decomp keeps it beside {RM_WEIGHTS}", yaml_format=True)
    extra = sorted(set(data) - set(RM_FIELDS))
    if extra:
        raise InteropError(f"{ypath}: unknown key {extra[0]!r} (param-decomp's ResidMLPTrainConfig forbids it).")
    mc = data.get("resid_mlp_model_config")
    if not isinstance(mc, dict):
        raise InteropError(f"{ypath} has no resid_mlp_model_config mapping; is it a resid_mlp_train_config.yaml?")
    n, d, m, layers = (_positive(ypath, k, mc.get(k)) for k in ("n_features", "d_embed", "d_mlp", "n_layers"))
    act = mc.get("act_fn_name")
    if act not in ("relu", "gelu"):
        raise InteropError(f"{ypath}: act_fn_name must be relu or gelu, got {act!r}.")
    if mc.get("in_bias") or mc.get("out_bias"):
        raise InteropError(f"{ypath}: in_bias / out_bias are set; tmslab's resid-mlp has no biases.")
    checks = {"label_type": "act_plus_resid", "loss_type": "readoff", "fixed_random_embedding": True,
              "data_generation_type": "at_least_zero_active"}  # fmt: skip
    for key, want in checks.items():
        if data.get(key, want) != want:
            raise InteropError(f"{ypath}: {key} must be {want!r} for tmslab's resid-mlp, got {data.get(key)!r}.")
    if data.get("fixed_identity_embedding") or data.get("synced_inputs"):
        raise InteropError(f"{ypath}: an identity embedding or synced_inputs have no tmslab equivalent.")
    if data.get("importance_val") not in (None, 1, 1.0):
        raise InteropError(f"{ypath}: importance_val must be 1 (or null), got {data.get('importance_val')!r}.")
    try:
        coeffs = json.loads(cpath.read_text())
    except FileNotFoundError:
        raise InteropError(f"{cpath} is missing (param-decomp's loader reads the label coefficients).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InteropError(f"{cpath} is not valid JSON ({e.__class__.__name__}).") from None
    if not isinstance(coeffs, list) or len(coeffs) != n or any(c != 1 for c in coeffs):
        raise InteropError(f"{cpath} must list {n} ones (tmslab's labels are x + act(x) with unit coefficients).")
    shapes: dict[str, tuple[int, ...]] = {"W_E": (n, d), "W_U": (d, n)}
    for i in range(layers):
        shapes[f"layers.{i}.mlp_in.weight"] = (m, d)
        shapes[f"layers.{i}.mlp_out.weight"] = (d, m)
    state = _check_keys(wpath, _load_pth(wpath), shapes)
    if not torch.equal(state["W_U"], state["W_E"].T):
        raise InteropError(f"{wpath}: W_U is not W_Eᵀ; tmslab's resid-mlp ties them (fixed random embedding).")
    p = data.get("feature_probability")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise InteropError(f"{ypath}: feature_probability must be in (0, 1], got {p!r}.")
    try:
        config = TrainConfig(
            model="resid-mlp", n_features=n, n_hidden=m, d_embed=d, n_layers=layers, act=act, density=[float(p)],
            steps=_positive(ypath, "steps", data.get("steps")),
            batch_size=_positive(ypath, "batch_size", data.get("batch_size")),
            seed=data.get("seed", 0), **_resid_lr(ypath, data),
        )  # fmt: skip
    except ConfigError as e:
        raise InteropError(f"{ypath}: {e}") from None
    params = {
        "W_E": state["W_E"][None],
        "W_in": torch.stack([state[f"layers.{i}.mlp_in.weight"] for i in range(layers)])[None],
        "W_out": torch.stack([state[f"layers.{i}.mlp_out.weight"] for i in range(layers)])[None],
    }
    return params, config, data


def read_devinterp(src: Path) -> tuple[dict[str, Tensor], TrainConfig, dict[str, Any]]:
    """(params, configuration, their metadata) from a devinterp ToyAutoencoder dir."""
    jpath, wpath = src / DI_CONFIG, src / DI_WEIGHTS
    meta = _read_mapping(jpath, f"devinterp's state dict does not say the model's nonlinearity or data; "
                                  f"write {DI_CONFIG} as docs/interop.md describes")
    model, data = meta.get("model"), meta.get("data")
    if not isinstance(model, dict) or not isinstance(data, dict):
        raise InteropError(f"{jpath} needs a 'model' and a 'data' mapping.")
    n = _positive(jpath, "input_dim", model.get("input_dim"))
    m = _positive(jpath, "hidden_dim", model.get("hidden_dim"))
    if model.get("tied", True) is not True or model.get("hidden_bias", False):
        raise InteropError(f"{jpath}: tmslab imports tied ToyAutoencoders without hidden bias.")
    nonlin = model.get("nonlinearity", "relu")
    if nonlin not in ("relu", "identity"):
        raise InteropError(f"{jpath}: nonlinearity must be relu or identity, got {nonlin!r}.")
    shapes = {"embedding.weight": (m, n), "unembedding.weight": (n, m), "unembedding.bias": (n,)}
    state = _check_keys(wpath, _load_pth(wpath), shapes)
    # A tied ToyAutoencoder overwrites unembedding.weight with embedding.weightᵀ at every forward pass, so the
    # embedding is the model; a state dict saved right after an optimiser step may hold a stale unembedding.
    drift = float((state["unembedding.weight"] - state["embedding.weight"].T).abs().max())
    p = data.get("feature_probability")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise InteropError(f"{jpath}: data.feature_probability must be in (0, 1], got {p!r}.")
    config = TrainConfig(model="linear" if nonlin == "identity" else "relu-output", n_features=n, n_hidden=m,
                         density=[float(p)])
    return ({"W": state["embedding.weight"][None], "b": state["unembedding.bias"][None]}, config,
            {**meta, "unembedding_drift": drift})


def read_transformer_lens(src: Path) -> tuple[dict[str, Tensor], TrainConfig, dict[str, Any]]:
    """(params, configuration, cfg) from a HookedToyModel dir; the data it saw comes from tmslab.json."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg = _read_mapping(src / TL_CONFIG, "HookedToyModel keeps its constructor arguments there")
    sidecar = _read_mapping(src / SIDECAR, "a HookedToyModel's weights do not say what data it was trained on")
    config = _sidecar_config(src, sidecar)
    k, n, m = config.n_instances, config.n_features, config.n_hidden
    if [cfg.get(key) for key in ("model", "n_instances", "n_features", "n_hidden")] != [config.model, k, n, m]:
        raise InteropError(f"{src / TL_CONFIG} does not match {src / SIDECAR} (model, instances, features, hidden).")
    try:
        state = load_file(src / TL_WEIGHTS)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise InteropError(f"{src / TL_WEIGHTS} is corrupted: {str(e).splitlines()[0]}") from None
    shapes = {"W": (k, m, n), "b": (k, n)}
    if config.model == "abs":
        shapes = {"W1": (k, m, n), "W2": (k, n, m), "b": (k, n)}
    return _check_keys(src / TL_WEIGHTS, state, shapes), config, cfg


def _read_mapping(path: Path, why: str, yaml_format: bool = False) -> dict[str, Any]:
    """A JSON (or, safely, YAML) file holding a mapping; one-line errors when missing or malformed."""
    import yaml

    try:
        text = path.read_text()
        data = yaml.safe_load(text) if yaml_format else json.loads(text)
    except FileNotFoundError:
        raise InteropError(f"{path} is missing ({why}).") from None
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        kind = "YAML" if yaml_format else "JSON"
        raise InteropError(f"{path} is not valid {kind} ({e.__class__.__name__}).") from None
    if not isinstance(data, dict):
        raise InteropError(f"{path} must hold a mapping (a JSON object).")
    return data


def _sidecar_config(src: Path, sidecar: dict[str, Any]) -> TrainConfig:
    if sidecar.get("format") != "tmslab-export-1" or not isinstance(sidecar.get("config"), dict):
        raise InteropError(f"{src / SIDECAR} is not a tmslab export record (format tmslab-export-1).")
    try:
        return TrainConfig.from_dict(sidecar["config"])
    except (ConfigError, TypeError) as e:
        raise InteropError(f"{src / SIDECAR} holds an invalid configuration: {e}") from None


READERS = {"param-decomp": read_param_decomp, "devinterp": read_devinterp, "transformer-lens": read_transformer_lens}


def read_dir(src: Path) -> tuple[dict[str, Tensor], TrainConfig, dict[str, Any]]:
    """(params, configuration, provenance) of an exported or foreign directory, validated, nothing written."""
    src = Path(src)
    fmt = detect_format(src)
    params, config, theirs = READERS[fmt](src)
    provenance: dict[str, Any] = {"format": fmt, "source": str(src), "source_config": theirs}
    if (src / SIDECAR).exists() and fmt != "transformer-lens":
        sidecar = _read_mapping(src / SIDECAR, "")
        own = _sidecar_config(src, sidecar)
        mapped = (config.model, config.n_features, config.n_hidden, config.n_instances)
        if (own.model, own.n_features, own.n_hidden, own.n_instances) != mapped:
            raise InteropError(f"{src / SIDECAR} describes a {own.model} {own.n_features}-{own.n_hidden} model, "
                               f"but the weights hold a {config.model} {config.n_features}-{config.n_hidden} one.")
        config = own
    if (src / SIDECAR).exists():
        provenance["tmslab_export"] = _read_mapping(src / SIDECAR, "").get("source")
    return params, config, provenance


def import_dir(src: Path, out: Path, *, force: bool = False) -> Path:
    """Write the model in `src` (any format of this module) as a tmslab run directory `out`, re-evaluated
    on its configuration's evaluation samples. The config of a foreign checkpoint is mapped from theirs
    (tmslab's init and importance 1 where theirs says nothing); metrics.json records the provenance."""
    from tmslab.training import TrainResult, best_restarts, build, evaluate, shifted_evaluate

    params, config, provenance = read_dir(Path(src))
    check_out_dir(Path(out), force=force)
    model, dist, importance = build(config)
    model.load_state_dict(params)
    eval_loss = evaluate(model, dist, importance, config.eval_samples, restarts=config.restarts)
    result = TrainResult(config=config, params=params, eval_loss=eval_loss,
                         best=best_restarts(eval_loss, config.restarts), train_seconds=0.0, engine="imported",
                         shifted_eval_loss=shifted_evaluate(config, model, importance))
    return save_run(Path(out), result, extra_metrics={"imported": provenance}, force=force)
