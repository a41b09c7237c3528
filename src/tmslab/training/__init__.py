"""Training: one entry point, `train(config)`, over two engines.

`reference.train_reference` is the notebook's eager loop; `fast.train_fast` is the optimised engine,
tested to match it. `train` builds the models and data, runs an engine, refuses to return weights
that are not finite, scores every instance on a fixed evaluation set, and marks the best restart of
each configuration.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from tmslab import precompile
from tmslab.config import EVAL_SEED, ConfigError, TrainConfig
from tmslab.data import FeatureDistribution, make_distribution
from tmslab.models import CIS_KINDS, ToyModel, build_model, model_from_params
from tmslab.training.reference import train_reference

__all__ = ["TrainResult", "TrainingDivergedError", "train", "evaluate", "build", "estimate_memory"]


#: Batches (instances × batch × features) below this many elements train single-threaded on the reference path.
SMALL_BATCH = 1 << 18


class TrainingDivergedError(RuntimeError):
    """Training produced non-finite weights or losses."""


@dataclass
class TrainResult:
    """Weights and scores of a trained batch of instances."""

    config: TrainConfig
    params: dict[str, Tensor]
    eval_loss: Tensor  # [instances], the paper's L on config.eval_samples fresh samples
    best: Tensor  # [instances] bool, the lowest eval loss among each configuration's restarts
    train_seconds: float
    engine: str
    history: dict[str, Tensor] = field(default_factory=dict)
    shifted_eval_loss: Tensor | None = None  # [instances], L under config.eval_density (distribution shift)
    eval_seconds: float = 0.0
    dataset: dict[str, Tensor] = field(default_factory=dict)
    """Finite runs (§6.1): every instance's training set in sparse form (training.finite.SparseDataset)."""
    train_loss: Tensor | None = None
    """Finite runs: the paper's L per instance on its own training set (eval_loss is then the test loss)."""

    @property
    def model(self) -> ToyModel:
        return model_from_params(self.config, self.params)


def build(config: TrainConfig) -> tuple[ToyModel, FeatureDistribution, Tensor]:
    """Initialised model, training distribution and importance, one row per instance."""
    rows = [c for c in range(config.n_configs) for _ in range(config.restarts)]
    density = torch.tensor([config.config_density(c) for c in rows], dtype=torch.float32)
    importance = torch.tensor([config.config_importance(c) for c in rows], dtype=torch.float32)
    model = build_model(config)
    model.reset_parameters([config.instance_seed(k) for k in range(config.n_instances)], config.init)
    if config.model in CIS_KINDS:  # the labels' mixing matrix (paper-spec §6.7), rebuilt from the config
        from tmslab import cis

        model.M.copy_(cis.mixing_matrices(config))
    if config.init_scale != 1.0:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name != "b":
                    p.mul_(config.init_scale)
    dist = make_distribution(
        config.distribution, density, signed=_signed(config), set_size=config.set_size,
        value_max=config.value_max,
    )
    return model, dist, importance


def _signed(config: TrainConfig) -> bool:
    """Values U[−1, 1) rather than U[0, 1): the absolute-value task (§5) and the §6.7 models."""
    return config.model == "abs" or config.model in CIS_KINDS


def shifted_evaluate(config: TrainConfig, model: ToyModel, importance: Tensor) -> Tensor | None:
    """L per instance under config.eval_density (same evaluation seed), None without one (paper-spec §6.6)."""
    if config.eval_density is None:
        return None
    rows = [c for c in range(config.n_configs) for _ in range(config.restarts)]
    density = torch.tensor([config.config_eval_density(c) for c in rows], dtype=torch.float32)
    dist = make_distribution(config.distribution, density, signed=_signed(config), set_size=config.set_size)
    return evaluate(model, dist, importance, config.eval_samples, restarts=config.restarts)


def estimate_memory(config: TrainConfig) -> int:
    """Bytes the reference loop needs at peak (≈ a dozen float32 batch-sized tensors alive at once)."""
    per_batch = config.n_instances * config.batch_size * _width(config) * 4
    return 12 * per_batch


def _width(config: TrainConfig) -> int:
    """The widest activation per sample: features or hidden units, or resid-mlp's residual stream."""
    return max(config.n_features, config.n_hidden, config.d_embed if config.model == "resid-mlp" else 0)


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62


def check_fits(config: TrainConfig) -> None:
    """Refuse, before any work, a configuration that cannot fit in this machine's memory."""
    need, have = estimate_memory(config), _total_memory()
    if need > 0.8 * have:
        raise ConfigError(
            f"{config.n_instances} instances × batch {config.batch_size} × {config.n_features} features "
            f"needs ≈{need / 2**30:.1f} GiB, more than this machine's {have / 2**30:.1f} GiB; "
            "use fewer instances, a smaller batch or fewer features."
        )


@torch.no_grad()
def evaluate(
    model: ToyModel,
    distribution: FeatureDistribution,
    importance: Tensor,
    n_samples: int,
    seed: int = EVAL_SEED,
    restarts: int = 1,
    chunk: int = 8192,
) -> Tensor:
    """The paper's L per instance, on n_samples fresh samples drawn with a fixed seed.

    The restarts of a configuration are scored on the *same* samples (common random numbers): picking
    the best restart compares solutions whose losses can differ by far less than the sampling error of
    100,000 samples, and paired samples cancel that error.
    """
    configs = make_distribution(
        distribution.name, distribution.density[::restarts], signed=distribution.signed,
        set_size=distribution.set_size, value_max=distribution.value_max,
    )
    # Bound the chunk so one chunk stays ≈ 64 MiB whatever the instance count.
    chunk = max(1, min(chunk, (1 << 24) // max(1, model.n_instances * model.n_features)))
    total = torch.zeros(model.n_instances, dtype=torch.float64)
    if _compiles(model, configs, importance):  # the same samples and losses, bit for bit, ≈ 3× faster
        from tmslab.training import _evaluation

        b, imp = model.b.detach().numpy(), importance.contiguous().numpy()
        buffer = torch.empty(model.n_instances * min(chunk, n_samples) * model.n_features)
        for x in _evaluation.batches(configs, restarts, seed, chunk, n_samples):
            err = model.readout(x, out=buffer[: x.numel()].view(x.shape))
            _evaluation.weighted_error(err.numpy(), b, x.numpy(), imp, model.kind != "linear", model.kind == "abs")
            total += err.sum(-1).sum(-1).double()
        return (total / n_samples).float()
    g = torch.Generator().manual_seed(seed)
    for done in range(0, n_samples, chunk):
        x = configs.sample(min(chunk, n_samples - done), g).repeat_interleave(restarts, dim=0)
        err = importance[:, None, :] * (model.target(x) - model(x)) ** 2
        total += err.sum(-1).sum(-1).double()
    return (total / n_samples).float()


def _compiles(model: ToyModel, distribution: FeatureDistribution, importance: Tensor) -> bool:
    """Whether `evaluate` can use its compiled path (training._evaluation): the independent distribution, float32
    on the CPU, numba installed, and this PyTorch's CPU stream the one it reproduces."""
    tensors = [distribution.density, importance, *model.parameters()]
    if not isinstance(model, ToyModel):  # the §6.7 models: PyTorch's path (their own forward and labels)
        return False
    if distribution.name != "independent" or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if importance.shape != (model.n_instances, model.n_features):
        return False
    try:
        from tmslab.training import _evaluation
    except ImportError:  # numba missing: PyTorch draws the very same samples
        return False
    return _evaluation.matches_torch()


def score(config: TrainConfig, model: ToyModel, dist: FeatureDistribution, importance: Tensor) -> Tensor:
    """The eval_loss a run of `config` records: `evaluate` (PyTorch, the reference sampler), or with
    config.sparse the compiled sparse evaluation (same paper L, same pairing of restarts, its own fixed-seed
    stream; ≈ 100× faster on large sparse models)."""
    if config.sparse and config.model != "abs" and config.distribution == "independent":
        from tmslab.training import fast

        if fast.has_numba():
            return fast.evaluate_sparse(model, dist, importance, config.eval_samples, restarts=config.restarts)
    return evaluate(model, dist, importance, config.eval_samples, restarts=config.restarts)


def evaluate_params(config: TrainConfig, params: dict[str, Tensor]) -> Tensor:
    """`score` for saved weights (on-disk names, config's instance layout): the same samples as the eval_loss
    a run of `config` records, so losses of weights from different runs of one config are paired."""
    model, dist, importance = build(config)
    model.load_state_dict({k: v.detach().float() for k, v in params.items()})
    return score(config, model, dist, importance)


def best_restarts(eval_loss: Tensor, restarts: int) -> Tensor:
    """Boolean mask marking the lowest-loss restart of every configuration."""
    grouped = eval_loss.view(-1, restarts)
    best = torch.zeros_like(grouped, dtype=torch.bool)
    best[torch.arange(grouped.shape[0]), grouped.argmin(1)] = True
    return best.flatten()


def _engine(config: TrainConfig) -> str:
    if config.engine == "reference" or config.device == "cuda":
        return "reference"
    try:
        from tmslab.training import fast
    except ImportError:  # pragma: no cover - fast engine always ships, its deps may not
        fast = None
    reason = "fast engine unavailable" if fast is None else fast.supports(config)
    if reason is None:
        return "fast"
    if config.engine == "fast":
        raise ConfigError(f"engine 'fast' cannot train this configuration: {reason}.")
    return "reference"


def _to_cuda(config: TrainConfig, model: ToyModel, dist: FeatureDistribution) -> torch.Generator:
    """Move the model and the data distribution to the GPU; the training stream's generator lives there too."""
    if not torch.cuda.is_available():
        raise ConfigError("device 'cuda' needs a CUDA GPU and PyTorch sees none here; use device cpu.")
    model.cuda()
    dist.density = dist.density.cuda()
    return torch.Generator(device="cuda").manual_seed(config.seed)


def train(
    config: TrainConfig, *, progress: bool = False, desc: str = "train", init_params: dict[str, Tensor] | None = None
) -> TrainResult:
    """Train every instance of `config`; raise TrainingDivergedError rather than return NaNs.

    `init_params` (on-disk names and shapes) replaces the initialisation, to continue training saved
    weights with a fresh optimiser (e.g. successive halving over restarts).
    """
    config.validate()  # a config edited after creation is checked again, not left to fail inside torch
    check_fits(config)
    engine = "finite" if config.finite else _engine(config)
    if engine == "fast":  # a first run compiles the kernels: training's in children, evaluation's here meanwhile
        from tmslab.training import fast

        fast.start_compiling(precompile.kernels(config))
        if fast.has_numba() and not config.sparse and config.distribution == "independent":
            from tmslab.training import _evaluation

            _evaluation.warm_up()
    model, dist, importance = build(config)
    if init_params is not None:
        model.load_state_dict({k: v.detach().float() for k, v in init_params.items()})
    generator = torch.Generator().manual_seed(config.seed)
    if config.device == "cuda":
        generator = _to_cuda(config, model, dist)
        importance = importance.cuda()
    history: dict[str, list[Any]] = {"step": [], "loss": [], "snapshots": []}

    def hook(step: int, m: ToyModel, loss: Tensor) -> None:
        history["step"].append(step)
        history["loss"].append(loss.detach().cpu().clone())
        history["snapshots"].append({k: v.cpu() for k, v in m.params().items()})

    bar = None
    if progress:
        from tmslab.progress import bar as progress_bar

        bar = progress_bar(config.steps, desc, "step", leave=False)

    def tick(step: int) -> None:
        if bar is not None:
            bar.update(step + 1 - bar.n)

    start = time.perf_counter()
    threads = torch.get_num_threads()
    if engine == "reference" and config.n_instances * config.batch_size * _width(config) < SMALL_BATCH:
        # Tiny tensors: intra-op threads cost more in synchronisation than they save (≈10× slower on a
        # busy 2-core machine), so the reference loop runs them single-threaded.
        torch.set_num_threads(1)
    finite = None
    try:
        if engine == "finite":  # full-batch training on finite datasets (§6.1)
            from tmslab.training.finite import train_finite

            finite = train_finite(model, config, hook if config.record_every else None, tick)
        elif engine == "fast":
            from tmslab.training.fast import train_fast

            train_fast(model, dist, importance, config, generator, hook if config.record_every else None, tick)
        else:
            train_reference(model, dist, importance, config, generator, hook if config.record_every else None, tick)
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    if config.device == "cuda":  # kernels run asynchronously: train_seconds counts them all
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if config.device == "cuda":  # evaluate on the CPU: the very samples a CPU run of this config is scored on
        model.cpu()
        dist.density = dist.density.cpu()
        importance = importance.cpu()

    params = model.params()
    bad = torch.zeros(config.n_instances, dtype=torch.bool)
    for p in params.values():
        bad |= ~torch.isfinite(p).flatten(1).all(1)
    eval_loss, eval_seconds = None, 0.0
    if not bad.any():
        eval_start = time.perf_counter()
        if finite is not None:  # the test loss on fresh samples (§6.1)
            from tmslab.training.finite import losses, test_datasets

            eval_loss = losses(params["W"], params["b"], test_datasets(config))
        else:
            eval_loss = score(config, model, dist, importance)
        eval_seconds = time.perf_counter() - eval_start
    if eval_loss is not None:
        bad |= ~torch.isfinite(eval_loss)
    if bad.any():
        idx = bad.nonzero().flatten().tolist()
        shown = ", ".join(map(str, idx[:10])) + (" …" if len(idx) > 10 else "")
        raise TrainingDivergedError(
            f"training diverged (non-finite weights or loss) in {len(idx)} of {config.n_instances} "
            f"instances: {shown}; try a smaller lr (now {config.lr})."
        )
    hist: dict[str, Tensor] = {}
    if history["step"]:
        hist["step"] = torch.tensor(history["step"])
        hist["loss"] = torch.stack(history["loss"])
        for name in params:
            hist[name] = torch.stack([s[name] for s in history["snapshots"]])
    shifted = shifted_evaluate(config, model, importance)
    return TrainResult(
        config=config,
        params=params,
        eval_loss=eval_loss,
        best=best_restarts(eval_loss, config.restarts),
        train_seconds=seconds,
        engine=engine,
        history=hist,
        shifted_eval_loss=shifted,
        eval_seconds=eval_seconds,
        dataset=finite[0].tensors() if finite is not None else {},
        train_loss=finite[1] if finite is not None else None,
    )
