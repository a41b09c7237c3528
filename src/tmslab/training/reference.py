"""The plain reference training loop: the notebook's recipe, written as eagerly as possible.

This is the ground truth the fast engine is tested against (values, gradients, statistics) and the
path used for anything the fast engine does not support. One optimiser step trains every instance:
the objective is the sum over instances, so instances never interact (paper-spec §1.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from tmslab.config import TrainConfig
from tmslab.data import FeatureDistribution
from tmslab.models import ToyModel

#: Called as hook(step, model, loss) every `record_every` steps; loss is the per-instance paper L
#: of that step's training batch.
Hook = Callable[[int, ToyModel, Tensor], None]


def lr_multiplier(step: int, config: TrainConfig) -> float:
    """Learning-rate factor at `step` (0-based): linear warm-up, then the notebook's schedules."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    t, total = step - config.warmup_steps, config.steps - config.warmup_steps
    if config.schedule == "linear":
        return 1.0 - t / total
    if config.schedule == "cosine":
        return math.cos(0.5 * math.pi * t / max(total - 1, 1))
    if config.schedule == "cosine-floor":  # paper-spec §6.5: half a cosine from 1 down to lr_floor
        return config.lr_floor + (1.0 - config.lr_floor) * 0.5 * (1.0 + math.cos(math.pi * t / total))
    return 1.0


#: Added to ‖W_i‖ in the growth step, as the authors' optimiser adds Adam's eps (paper-spec §6.5).
GROWTH_EPS = 1e-8


def weight_growth_(W: Float[Tensor, "instances hidden features"], gamma: float, lr: float) -> None:
    """§6.5's weight growth (γ < 0), in place: W_i ← W_i + lr·γ·W_i·(1 − 1/‖W_i‖) for every feature
    column i, which pulls every feature's norm towards 1 (strong superposition)."""
    norms = W.norm(dim=1, keepdim=True) + GROWTH_EPS
    W.add_(lr * gamma * W * (1.0 - 1.0 / norms))


def optimizer(model: ToyModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the signed decay of §6.5: γ = weight_decay ≥ 0 decays W (and b when decay_bias, PyTorch's
    default for all parameters); γ < 0 decays nothing here (train_reference applies the growth step to W).
    b gets its own peak learning rate lr_b when set."""
    gamma = config.weight_decay
    # Frozen parameters (resid-mlp's embedding W_E, paper-spec §6.7) are not the optimiser's.
    enc = [p for name, p in model.named_parameters() if name != "b" and p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": enc, "weight_decay": max(gamma, 0.0)}]
    if hasattr(model, "b"):  # the §6.7 models have no biases
        groups.append({"params": [model.b], "weight_decay": gamma if config.decay_bias and gamma >= 0 else 0.0,
                       "lr": config.lr if config.lr_b is None else config.lr_b})
    return torch.optim.AdamW(groups, lr=config.lr)


def objective(
    model: ToyModel,
    x: Float[Tensor, "instances batch features"],
    importance: Float[Tensor, "instances features"],
    hidden_l1: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """(training objective summed over instances, per-instance paper L of this batch).

    The objective is the notebook's: importance-weighted squared error averaged over batch *and*
    features (the paper's L divided by n), plus λ·E‖h‖₁/n when the L1 penalty of §2.11 is on.
    Adam is invariant to that constant factor, so this trains the paper's L.
    """
    out = model(x)
    per_instance = (importance[:, None, :] * (model.target(x) - out) ** 2).sum(-1).mean(-1)
    total = per_instance
    if hidden_l1:
        total = total + hidden_l1 * model.hidden(x).abs().sum(-1).mean(-1)
    return total.sum() / model.n_features, per_instance.detach()


def train_reference(
    model: ToyModel,
    distribution: FeatureDistribution,
    importance: Float[Tensor, "instances features"],
    config: TrainConfig,
    generator: torch.Generator,
    hook: Hook | None = None,
    progress: Callable[[int], None] | None = None,
    sample: Callable[[int], Tensor] | None = None,
) -> None:
    """Train `model` in place with AdamW for config.steps steps of fresh batches.

    `sample(step)` replaces the distribution's own sampler (the fast engine's fallback uses its random stream).
    """
    opt = optimizer(model, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_multiplier(s, config))
    for step in range(config.steps):
        x = sample(step) if sample is not None else distribution.sample(config.batch_size, generator)
        opt.zero_grad(set_to_none=True)
        loss, per_instance = objective(model, x, importance, config.hidden_l1)
        loss.backward()
        if config.weight_decay < 0:  # the authors' optimiser grows W before its Adam update (§6.5)
            with torch.no_grad():
                weight_growth_(model.W, config.weight_decay, opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if hook is not None and config.record_every and step % config.record_every == 0:
            hook(step, model, per_instance)
        if progress is not None:
            progress(step)
