"""Shared test helper: the compiled engine and the PyTorch reference loop fed the same batches, step by step."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tmslab.config import TrainConfig
from tmslab.models import ToyModel
from tmslab.training import build, fast


def assert_engines_agree_stepwise(
    config: TrainConfig, names: tuple[str, ...], rtol: float, atol: float,
    prepare: Callable[[ToyModel], None] | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Train `config` with `fast.train_fast` and `fast._train_torch` (same init, same generator seed), recording
    the parameters after every step (`record_every` = 1), and assert `names` agree at every step. `prepare` edits
    each freshly built model first (e.g. a non-zero bias). Returns the compiled engine's snapshots."""
    snaps = {}
    for engine in (fast.train_fast, fast._train_torch):
        model, dist, imp = build(config)
        if prepare is not None:
            prepare(model)
        seen: list[dict[str, torch.Tensor]] = []

        def hook(step, m, loss, seen=seen):
            seen.append(m.params())

        engine(model, dist, imp, config, torch.Generator().manual_seed(0), hook=hook)
        snaps[engine] = seen + [model.params()]
    a, b = snaps[fast.train_fast], snaps[fast._train_torch]
    assert len(a) == len(b) == config.steps + 1
    for step, (pa, pb) in enumerate(zip(a, b, strict=True)):
        for name in names:
            torch.testing.assert_close(pa[name], pb[name], rtol=rtol, atol=atol,
                                       msg=lambda m, s=step, k=name: f"{k}@{s}: {m}")
    return a
