"""Shared fixtures: a seeding fixture, tiny config factories, a CLI runner."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tmslab.config import TrainConfig


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Every test starts from the same global RNG state and a fixed thread count."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(2)


def tiny_config(**overrides) -> TrainConfig:
    """A configuration that trains in well under a second."""
    base = dict(n_features=5, n_hidden=2, density=[1.0, 0.1], restarts=2, steps=50, batch_size=64, eval_samples=2048)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture
def tms(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from tmslab.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
