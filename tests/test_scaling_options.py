"""paper-spec §6.5's data and optimiser options: density laws, values U(0, v_max), signed weight decay (growth),
the paper's init, the cosine-floor schedule, a separate lr for b, the sparse sampler and the sparse evaluation —
each against a hand computation or the reference loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from stepwise import assert_engines_agree_stepwise
from tmslab.config import ConfigError, TrainConfig, density_law
from tmslab.models import ToyModel
from tmslab.training import build, evaluate, fast, train
from tmslab.training.reference import lr_multiplier, objective, weight_growth_

needs_numba = pytest.mark.skipif(not fast.has_numba(), reason="numba is not installed")


def scaling_config(**kw) -> TrainConfig:
    base = dict(
        n_features=40,
        n_hidden=6,
        density=["power:0.5", "power:1.0"],
        restarts=2,
        steps=40,
        batch_size=128,
        lr=1e-2,
        weight_decay=-1.0,
        decay_bias=False,
        lr_b=3e-2,
        schedule="cosine-floor",
        warmup_steps=5,
        init="paper",
        value_max=2.0,
        eval_samples=4000,
        engine="fast",
    )
    return TrainConfig(**{**base, **kw})


# ---- configuration -------------------------------------------------------------------------------------


def test_density_laws_by_hand():
    p = density_law("power:0.5", 4)
    raw = [1.0, 2**-1.5, 3**-1.5, 4**-1.5]
    assert p == pytest.approx([r / sum(raw) for r in raw], rel=1e-12)
    e = density_law("exponential:2", 3, expected_active=0.5)
    raw = [1.0, math.exp(-0.5), math.exp(-1.0)]
    assert e == pytest.approx([0.5 * r / sum(raw) for r in raw], rel=1e-12)
    assert density_law("linear", 4) == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert sum(density_law("power:0.2", 10_240, 3.0)) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("bad", ["power", "power:-1", "power:x", "cubic:1", "linear:2", "exponential:0"])
def test_bad_density_law_is_one_line_error(bad):
    with pytest.raises(ConfigError, match="density law"):
        TrainConfig(n_features=10, density=[bad])


def test_density_law_probability_above_one_is_refused():
    with pytest.raises(ConfigError, match="expected_active"):
        TrainConfig(n_features=10, density=["power:1.0"], expected_active=3.0)


@pytest.mark.parametrize(
    "field,value",
    [
        ("value_max", 0.0),
        ("expected_active", -1.0),
        ("lr_b", 0.0),
        ("lr_floor", 1.5),
        ("decay_bias", "no"),
        ("sparse", 1),
    ],
)
def test_bad_scaling_values(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_growth_refused_for_untied_model():
    with pytest.raises(ConfigError, match="weight growth"):
        TrainConfig(model="abs", weight_decay=-1.0)


def test_scaling_config_round_trips_through_json():
    c = scaling_config(sparse=True, expected_active=1.5)
    again = TrainConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert again.to_dict()["weight_decay"] == -1.0 and again.to_dict()["density"] == ["power:0.5", "power:1.0"]


def test_cosine_floor_schedule():
    c = TrainConfig(steps=110, warmup_steps=10, schedule="cosine-floor", lr_floor=0.05)
    assert lr_multiplier(0, c) == pytest.approx(0.1) and lr_multiplier(9, c) == pytest.approx(1.0)
    assert lr_multiplier(10, c) == pytest.approx(1.0)
    assert lr_multiplier(60, c) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_multiplier(109, c) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))


def test_paper_init_statistics():
    """W ~ N(0, 1)/√m and b ~ N(0, 1): sample variances within 5σ (σ² of a variance estimate ≈ 2σ⁴/N)."""
    c = TrainConfig(n_features=500, n_hidden=25, density=[1.0], restarts=4, init="paper")
    model, _, _ = build(c)
    W, b = model.W.detach().double(), model.b.detach().double()
    for x, var in ((W, 1 / 25), (b, 1.0)):
        N = x.numel()
        assert abs(x.var().item() - var) <= 5 * math.sqrt(2 / N) * var
        assert abs(x.mean().item()) <= 5 * math.sqrt(var / N)
    assert not torch.equal(W[0], W[1])


# ---- samplers ---------------------------------------------------------------------------------------------


def _check_feature_counts(x: torch.Tensor, p: list[float]) -> None:
    """x [N, n]: feature i active in N·p_i ± 5σ samples (binomial)."""
    N = x.shape[0]
    counts = (x > 0).sum(0).double()
    for i, pi in enumerate(p):
        sigma = math.sqrt(N * pi * (1 - pi))
        assert abs(counts[i].item() - N * pi) <= 5 * sigma + 1, (i, counts[i].item(), N * pi)


def _check_values(x: torch.Tensor, vmax: float) -> None:
    """Active values U(0, vmax): inside the range, mean and variance within 5σ."""
    v = x[x > 0].double()
    na = v.numel()
    assert v.max().item() < vmax and na > 100
    assert abs(v.mean().item() - vmax / 2) <= 5 * vmax * math.sqrt(1 / 12 / na)
    assert abs(v.var().item() - vmax**2 / 12) <= 5 * vmax**2 * math.sqrt((1 / 80 - 1 / 144) / na)


def test_reference_sampler_law_and_value_max():
    c = TrainConfig(n_features=50, density=["power:0.5"], value_max=2.0)
    _, dist, _ = build(c)
    x = dist.sample(40_000, torch.Generator().manual_seed(3))[0]
    _check_feature_counts(x, c.config_density(0))
    _check_values(x, 2.0)


@needs_numba
@pytest.mark.parametrize(
    "law,vmax,active", [("power:0.5", 2.0, 1.0), ("exponential:20", 1.0, 3.0), ("linear", 0.5, 1.0)]
)
def test_sparse_sampler_statistics(law, vmax, active):
    n, B = 60, 5000
    p = density_law(law, n, active)
    keys = fast.instance_keys(7, 1)
    x = torch.cat([fast.sample_sparse(torch.tensor([p]), keys, s, B, vmax)[0] for s in range(6)])
    _check_feature_counts(x, p)
    _check_values(x, vmax)
    # features are independent: co-activation of the two most frequent features within 5σ of N·p0·p1
    N, q = x.shape[0], p[0] * p[1]
    both = ((x[:, 0] > 0) & (x[:, 1] > 0)).sum().item()
    assert abs(both - N * q) <= 5 * math.sqrt(N * q * (1 - q)) + 1
    # active entries per sample: mean `active` within 5σ (variance Σ p_i(1 − p_i))
    per = (x > 0).sum(1).double()
    assert abs(per.mean().item() - active) <= 5 * math.sqrt(sum(pi * (1 - pi) for pi in p) / N)


@needs_numba
def test_sparse_sampler_edge_probabilities_and_determinism():
    keys = fast.instance_keys(1, 2)
    d = torch.tensor([[1.0, 0.0 + 1e-12, 0.5], [0.5, 1.0, 1.0]])
    x = fast.sample_sparse(d, keys, 4, 300, 1.0)
    assert (x[0, :, 0] > 0).float().mean() > 0.99 and (x[0, :, 1] > 0).sum() == 0
    assert torch.equal(x, fast.sample_sparse(d, keys, 4, 300, 1.0))
    assert not torch.equal(x, fast.sample_sparse(d, keys, 5, 300, 1.0))
    # a batch needing more room than the first guess (every feature always on) still comes out whole
    full = fast.sample_sparse(torch.ones(1, 50), keys[:1], 0, 400, 1.0)
    assert (full > 0).float().mean() > 0.99


# ---- signed weight decay ----------------------------------------------------------------------------------


def test_growth_step_by_hand():
    W = torch.tensor([[[3.0, 0.1, 0.0]], [[0.0, 0.0, 0.0]]]).reshape(1, 2, 3)  # columns (3, 0), (0.1, 0), (0, 0)
    W[0, 1, 0] = 4.0  # first column (3, 4): norm 5
    weight_growth_(W, gamma=-1.0, lr=0.1)
    # column (3, 4): W + 0.1·(−1)·W·(1 − 1/5) = W·(1 − 0.08) = (2.76, 3.68)
    torch.testing.assert_close(W[0, :, 0], torch.tensor([2.76, 3.68]))
    # column (0.1, 0): norm 0.1 → factor 1 − 0.1·(1 − 10) = 1.9 (grows towards norm 1)
    torch.testing.assert_close(W[0, :, 1], torch.tensor([0.19, 0.0]))
    assert torch.equal(W[0, :, 2], torch.zeros(2))


@needs_numba
def test_growth_kernel_matches_reference():
    from tmslab.training import _kernels

    W = torch.randn(1, 7, 30, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.01, 3, 30)
    ref = W.clone()
    weight_growth_(ref, -0.7, 0.02)
    arr = W[0].numpy().copy()
    _kernels.weight_growth(arr, 0.02 * -0.7)
    torch.testing.assert_close(torch.from_numpy(arr), ref[0], rtol=1e-6, atol=1e-7)


def test_reference_optimiser_groups():
    """γ ≥ 0 with decay_bias off decays W only; growth never touches b; lr_b sets b's learning rate."""
    c = TrainConfig(n_features=8, n_hidden=3, weight_decay=0.5, decay_bias=False, lr_b=0.2, lr=0.01, steps=1)
    model, _, _ = build(c)
    with torch.no_grad():
        model.b.fill_(1.0)
    from tmslab.training.reference import optimizer

    opt = optimizer(model, c)
    W0 = model.W.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(model.W.detach(), W0 * (1 - 0.01 * 0.5))
    assert torch.equal(model.b.detach(), torch.ones_like(model.b))
    assert opt.param_groups[1]["lr"] == 0.2


@needs_numba
@pytest.mark.parametrize("gamma,sparse", [(-1.0, False), (0.5, True), (-0.5, True)])
def test_fast_matches_reference_stepwise(gamma, sparse):
    """The compiled engine against the reference loop (autograd, torch AdamW, growth step) fed the same batches,
    step by step with warm-up, cosine floor, lr_b, paper init, value_max 2 and a density law."""
    config = scaling_config(
        weight_decay=gamma, sparse=sparse, steps=12, record_every=1, density=["power:0.5"], restarts=1
    )
    a = assert_engines_agree_stepwise(config, ("W", "b"), rtol=2e-5, atol=2e-6)
    assert not torch.equal(a[0]["W"], a[-1]["W"])


@needs_numba
def test_growth_pushes_norms_towards_one():
    """γ = −1 leaves (nearly) every feature at norm ≈ 1, even rare ones; γ = +1 kills the rare ones (§6.5)."""
    norms = {}
    for gamma in (-1.0, 1.0):
        r = train(scaling_config(weight_decay=gamma, steps=400, density=["power:1.0"], restarts=1, sparse=True))
        norms[gamma] = r.params["W"][0].norm(dim=0)
    assert (norms[-1.0] > 0.5).float().mean() > 0.9
    assert (norms[1.0] > 0.5).float().mean() < 0.5


# ---- sparse training path ----------------------------------------------------------------------------------


@needs_numba
@pytest.mark.parametrize("kind", ["relu-output", "linear", "hidden-relu"])
@pytest.mark.parametrize("hidden_l1", [0.0, 0.2])
def test_sparse_kernel_gradients_match_autograd(kind, hidden_l1):
    torch.manual_seed(0)
    K, B, n, m = 2, 37, 23, 5
    model = ToyModel(kind, K, n, m)
    with torch.no_grad():
        model.W.normal_()
        model.b.normal_(0, 0.5)
    x = torch.rand(K, B, n) * 2 * (torch.rand(K, B, n) < 0.1)
    imp = torch.rand(K, n)
    loss, grads = fast.loss_and_grads(model, x, imp, hidden_l1, sparse=True)
    total, per_instance = objective(model, x, imp, hidden_l1)
    total.backward()
    torch.testing.assert_close(loss, per_instance)
    torch.testing.assert_close(grads["W"], model.W.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads["b"], model.b.grad, rtol=1e-4, atol=1e-6)


# ---- evaluation --------------------------------------------------------------------------------------------


@needs_numba
def test_sparse_evaluation_is_paper_loss_and_paired():
    """The compiled sparse evaluation estimates the same paper L as the PyTorch evaluation (within 5 standard
    errors of their difference) and scores restarts on identical samples: two restarts with equal weights get
    bit-equal losses."""
    c = scaling_config(sparse=True, eval_samples=60_000, restarts=2)
    model, dist, imp = build(c)
    with torch.no_grad():
        model.W[1] = model.W[0]
        model.b[1] = model.b[0]
        model.W[3] = model.W[2]
        model.b[3] = model.b[2]
    fast_loss = fast.evaluate_sparse(model, dist, imp, c.eval_samples, restarts=2)
    assert fast_loss[0] == fast_loss[1] and fast_loss[2] == fast_loss[3]
    ref = evaluate(model, dist, imp, c.eval_samples, restarts=2)
    # per-sample loss s.d. measured from one batch gives the standard error of each estimate
    x = dist.sample(20_000, torch.Generator().manual_seed(9))
    per = (imp[:, None, :] * (x - model(x).detach()) ** 2).sum(-1)
    se = per.std(1) * math.sqrt(2 / c.eval_samples)
    assert ((fast_loss - ref).abs() <= 5 * se).all(), (fast_loss, ref, se)


@needs_numba
def test_train_records_sparse_evaluation():
    r = train(scaling_config(sparse=True, steps=20))
    model, dist, imp = build(r.config)
    model.load_state_dict(r.params)
    torch.testing.assert_close(r.eval_loss, fast.evaluate_sparse(model, dist, imp, r.config.eval_samples, 2))
    assert r.eval_seconds > 0


def test_reference_engine_trains_scaling_options():
    r = train(scaling_config(engine="reference", steps=30))
    assert torch.isfinite(r.eval_loss).all()
    assert np.isfinite(r.params["W"].numpy()).all()


# ---- CLI -----------------------------------------------------------------------------------------------------


def test_cli_trains_scaling_options(tms, tmp_path):
    import tmslab

    out = tmp_path / "run"
    code, stdout, err = tms(
        "train",
        "--out",
        out,
        "--features",
        "30",
        "--hidden",
        "4",
        "--density-law",
        "power:0.5,linear",
        "--value-max",
        "2",
        "--weight-decay",
        "-1",
        "--no-decay-bias",
        "--init",
        "paper",
        "--schedule",
        "cosine-floor",
        "--lr-b",
        "0.05",
        "--sparse",
        "--steps",
        "20",
        "--batch-size",
        "32",
        "--eval-samples",
        "512",
        "--quiet",
    )
    assert code == 0, err
    run = tmslab.load_run(out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["density"] == ["power:0.5", "linear"] and cfg["weight_decay"] == -1.0 and cfg["value_max"] == 2.0
    assert cfg["decay_bias"] is False and cfg["sparse"] is True and cfg["lr_b"] == 0.05
    assert run.W.shape == (2, 4, 30)
    code, stdout, _ = tms("inspect", out)
    assert code == 0 and "power:0.5" in stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--density-law", "power:-1"], "density law"),
        (["--value-max", "0"], "--value-max"),
        (["--density-law", "power:1", "--expected-active", "5"], "--expected-active"),
    ],
)
def test_cli_bad_scaling_options(tms, tmp_path, args, fragment):
    out = tmp_path / "run"
    code, stdout, err = tms("train", "--out", out, "--features", "10", "--steps", "5", "--quiet", *args)
    assert code == 2 and fragment in err and "Traceback" not in err + stdout
    assert not out.exists()


def test_sweep_accepts_density_laws():
    from tmslab.sweep.plan import plan_jobs
    from tmslab.sweep.spec import load_spec

    spec = load_spec(
        {
            "base": {"features": 30, "steps": 5, "expected-active": 2.0, "value-max": 2.0},
            "grid": {"density": ["power:0.5", "linear"], "hidden": [2, 3]},
        }
    )
    jobs = plan_jobs(spec)
    configs = [j.train_config() for j in jobs]
    assert sorted(c.n_hidden for c in configs) == [2, 3]
    for c in configs:
        assert [sum(d) for d in c.density] == pytest.approx([2.0, 2.0])
        assert c.density[0] == pytest.approx(density_law("power:0.5", 30, 2.0))
        assert c.density[1] == pytest.approx(density_law("linear", 30, 2.0))


def test_paper_example_spec_plans():
    from pathlib import Path

    from tmslab.sweep.plan import plan_jobs
    from tmslab.sweep.spec import load_spec

    spec = load_spec(Path(__file__).parents[1] / "examples" / "scaling_paper.yaml")
    configs = [j.train_config() for j in plan_jobs(spec)]
    assert sorted(c.n_hidden for c in configs) == [8, 16, 32, 64, 128, 256, 512, 1024]
    c = configs[0]
    assert c.n_features == 10_240 and c.weight_decay == -1.0 and not c.decay_bias and c.sparse
    assert sum(c.density[0]) == pytest.approx(1.0)


# ---- device cuda (plain PyTorch): parity tests run only where CUDA exists --------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA"):
        train(TrainConfig(n_features=5, steps=2, device="cuda"))
    with pytest.raises(ConfigError, match="fast"):
        TrainConfig(device="cuda", engine="fast")


@needs_cuda
def test_cuda_step_matches_cpu_reference():
    """One objective, gradient, growth and AdamW step on identical weights and batch: CPU vs CUDA, to fp32 rounding."""
    from tmslab.training.reference import optimizer

    c = scaling_config(engine="reference", restarts=1)
    params = {}
    for device in ("cpu", "cuda"):
        model, dist, imp = build(c)
        x = dist.sample(256, torch.Generator().manual_seed(1))
        model.to(device)
        opt = optimizer(model, c)
        loss, _ = objective(model, x.to(device), imp.to(device))
        loss.backward()
        with torch.no_grad():
            weight_growth_(model.W, c.weight_decay, c.lr)
        opt.step()
        params[device] = {k: v.cpu() for k, v in model.params().items()}
    for k in params["cpu"]:
        torch.testing.assert_close(params["cuda"][k], params["cpu"][k], rtol=1e-5, atol=1e-6)


@needs_cuda
def test_cuda_training_matches_cpu_statistically():
    """Same config on both devices (different random streams): mean eval loss within 2% after 300 steps — the
    configuration and tolerance of test_fast.test_short_training_matches_reference (data-seed s.d. ≈ 0.3%)."""
    c = TrainConfig(
        n_features=5,
        n_hidden=2,
        density=[1.0, 0.3, 0.05],
        importance_decay=0.9,
        restarts=2,
        steps=300,
        engine="reference",
    )
    cpu = train(c).eval_loss.mean()
    gpu = train(TrainConfig(**{**c.to_dict(), "device": "cuda"})).eval_loss.mean()
    assert abs(gpu - cpu) / cpu < 0.02


def test_weak_regime_predictions_agree_when_the_top_m_are_represented():
    # Known answers: with exactly the m most frequent features represented the two decompositions coincide;
    # with none represented every feature costs E[v²] = v_max²/3 when active, and Σ p = 1.
    from tmslab.experiments.scaling import predicted_loss, unrepresented_loss

    n, m = 200, 7
    p = density_law("power:0.5", n)
    top = torch.zeros(n, dtype=torch.bool)
    top[:m] = True
    assert unrepresented_loss(p, top) == pytest.approx(predicted_loss(p, m), rel=1e-12)
    assert unrepresented_loss(p, torch.zeros(n, dtype=torch.bool)) == pytest.approx(4 / 3 / n, rel=1e-12)
    skipped = top.clone()
    skipped[0] = False  # leaving the most frequent feature out costs its share
    assert unrepresented_loss(p, skipped) - predicted_loss(p, m) == pytest.approx(p[0] * 4 / 3 / n, rel=1e-9)


def test_scaling_experiment_on_a_wider_gamma_grid_keeps_the_spec_checks(tmp_path):
    """examples/scaling_schedule.py's experiment: extra γ add table rows and figure points, never checks."""
    from tmslab.experiments.runner import run_experiment
    from tmslab.experiments.scaling import PAPER_SCHEDULE, ScalingLaws

    res = run_experiment(ScalingLaws(gammas=(1.0, 0.5, -1.0)), tmp_path, "quick", progress=False)
    assert sorted({r["gamma"] for r in res["tables"]["per_model"]}) == [-1.0, 0.5, 1.0]
    assert res["configs"]["gamma+0.5-m4"]["weight_decay"] == 0.5
    names = [c["name"] for c in res["checks"]]
    # D16's rows (a)–(f), the headline, one sanity row and the six withdrawn F6 rows: the same as at the default γ.
    assert len(names) == 21 and sum(n.startswith("F6 (withdrawn)") for n in names) == 6
    assert all(
        n.startswith(("(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "headline", "F6", "loss recomputed")) for n in names
    )
    assert any("α_p = 1.5 (our α = 0.5)" in n for n in names)
    paper = ScalingLaws(size=PAPER_SCHEDULE, device="cuda").runs(quick=False)["gamma+1-m10"]
    assert (paper.steps, paper.batch_size, paper.warmup_steps, paper.device) == (20_000, 2048, 2000, "cuda")
    with pytest.raises(ValueError, match="include -1 and 1"):
        ScalingLaws(gammas=(0.5, 1.0))


def test_scaling_schedule_example_trains_then_analyses_the_saved_runs(tmp_path):
    """examples/scaling_schedule.py as documented: a --train-only pass, then a pass that trains nothing and
    analyses the saved weights with the experiment's code (results.json, the report)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "scaling_schedule.py"
    args = [
        sys.executable,
        str(script),
        "--out",
        str(tmp_path),
        "--steps",
        "20",
        "--batch-size",
        "32",
        "--eval-samples",
        "500",
        "--gammas",
        "1,-1,0.5",
    ]
    first = subprocess.run([*args, "--train-only", "--jobs", "2"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "training 18" in first.stdout and not (tmp_path / "scaling-laws" / "results.json").exists()
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "18 of 18 runs already saved; training 0" in second.stdout
    res = json.loads((tmp_path / "scaling-laws" / "results.json").read_text())
    assert res["configs"]["gamma+0.5-m100"]["steps"] == 20 and len(res["checks"]) == 21
    assert (tmp_path / "index.html").exists()


def test_scaling_overlap_statistics_and_the_flat_power_law():
    # Known answers: α = 0 is p_i ∝ 1/i (the paper's α_p = 1); orthonormal directions have zero overlaps and zero
    # spread; two antipodal pairs give squared overlaps {1, 1, 0, 0, 0, 0} (mean 1/3, variance of those six).
    from tmslab.experiments.scaling import alpha_label, overlap_variance, power_law, squared_overlap

    p = power_law(0.0, 4)
    h = 1 + 1 / 2 + 1 / 3 + 1 / 4
    assert p == pytest.approx([1 / h, 1 / (2 * h), 1 / (3 * h), 1 / (4 * h)], rel=1e-12)
    assert power_law(0.5, 50) == density_law("power:0.5", 50)
    assert alpha_label(0.5) == "α_p = 1.5 (our α = 0.5)"
    every = torch.ones(4, dtype=torch.bool)
    eye = torch.eye(4)
    assert squared_overlap(eye, every) == 0.0 and overlap_variance(eye, every) == 0.0
    pairs = torch.tensor([[1.0, -2.0, 0.0, 0.0], [0.0, 0.0, 3.0, -1.0]])
    assert squared_overlap(pairs, every) == pytest.approx(1 / 3)
    assert overlap_variance(pairs, every) == pytest.approx(torch.tensor([1.0, 1, 0, 0, 0, 0]).var().item())
    assert math.isnan(overlap_variance(pairs, torch.tensor([True, True, False, False])))
