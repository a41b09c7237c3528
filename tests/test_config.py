import json
import math

import pytest

from tmslab.config import ConfigError, TrainConfig


def test_defaults_are_the_notebook_recipe():
    c = TrainConfig()
    assert (c.lr, c.weight_decay, c.batch_size, c.steps, c.schedule) == (1e-3, 0.01, 1024, 10_000, "constant")


def test_json_round_trip():
    c = TrainConfig(n_features=4, density=[0.5, [0.1, 0.2, 0.3, 0.4]], importance=[1, 2, 3, 4], restarts=3)
    back = TrainConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c


def test_instance_layout_restarts_innermost():
    c = TrainConfig(density=[1.0, 0.5, 0.1], restarts=4, importance_decay=0.9)
    assert c.n_instances == 12
    assert c.config_density(1) == [0.5] * 5
    assert c.config_importance(0)[2] == pytest.approx(0.81)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(n_features=0), "n_features"),
        (dict(n_hidden=-1), "n_hidden"),
        (dict(density=[0.0]), "density"),
        (dict(density=[1.5]), "density"),
        (dict(density=[math.nan]), "density"),
        (dict(density=[]), "density"),
        (dict(density=[[0.5, 0.5]]), "per-feature"),
        (dict(restarts=0), "restarts"),
        (dict(model="transformer"), "model"),  # ("mlp" is a model kind since issue 29)
        (dict(lr=math.inf), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(importance=[1.0, 2.0]), "importance"),
        (dict(importance=[1, 1, 1, 1, math.nan]), "importance"),
        (dict(importance_decay=0), "importance_decay"),
        (dict(distribution="correlated", set_size=2), "multiple of set_size"),
        (dict(schedule="step"), "schedule"),
        (dict(seed=-3), "seed"),
    ],
)
def test_invalid_values_raise_one_sentence(kwargs, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**kwargs)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'n_hidden'"):
        TrainConfig.from_dict({"n_hiden": 3})


def test_init_scale_scales_the_initial_weights_not_the_bias():
    from tmslab.training import build

    for bad in (0, -1.0, float("nan"), "small"):
        with pytest.raises(ConfigError, match="init_scale"):
            TrainConfig(init_scale=bad)
    base, _, _ = build(TrainConfig(n_features=6, n_hidden=2, restarts=2))
    small, _, _ = build(TrainConfig(n_features=6, n_hidden=2, restarts=2, init_scale=0.01))
    for (name, p), q in zip(base.named_parameters(), small.parameters(), strict=True):
        assert bool((q == p * (1.0 if name == "b" else 0.01)).all()), name
    assert TrainConfig.from_dict(TrainConfig(init_scale=0.5).to_dict()).init_scale == 0.5
