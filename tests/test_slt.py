"""tmslab.slt (devinterp LLC on one-hot data) and the slt experiment's plateau labelling (§6.4, F5-SLT)."""

from __future__ import annotations

import builtins
import math

import pytest
import torch

from tmslab import theory as T
from tmslab.experiments.slt import nearest, plateaus, transitions, visits


def test_plateaus_and_nearest_labels():
    steps = torch.arange(0, 1000, 10)
    # A plateau at the 5-gon loss, a drop, then the 6-gon's (c = 6).
    pts = T.critical_points(6)
    l5 = [p for p in pts if p.label == "5-gon"][0].loss
    l6 = [p for p in pts if p.label == "6-gon"][0].loss
    loss = torch.where(steps < 400, torch.full((100,), l5), torch.full((100,), l6)).double()
    loss[38:42] = torch.linspace(l5, l6, 4)  # the transition
    found = plateaus(steps, loss)
    assert [nearest(p["loss"], pts)[0].label for p in found] == ["5-gon", "6-gon"]
    assert found[0]["end"] < found[1]["start"]
    assert plateaus(steps, torch.linspace(1.0, 0.1, 100)) == []  # a steady decline has no plateau


def test_missing_extra_is_one_actionable_line(monkeypatch):
    from tmslab import slt

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("devinterp"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(slt.SLTExtraMissing, match=r"pip install 'tmslab\[slt\]'"):
        slt.require_devinterp()


def test_one_hot_data():
    from tmslab.slt import one_hot_data

    x = one_hot_data(500, 6, seed=1)
    assert x.shape == (500, 6) and ((x > 0).sum(-1) <= 1).all() and float(x.max()) <= 1
    assert torch.equal(x, one_hot_data(500, 6, seed=1))


def test_llc_estimate_runs_through_devinterp():
    """devinterp SGLD at the 6-gon (c = 6) on data: finite, positive, saved traces of the requested shape.
    Accuracy against λ = 8.5 is the experiment's claim (on the population loss; on n = 2,000 samples with
    γ = 10 the localisation bias alone predicts ≈ 6.8, see test_laplace_llc_known_answers)."""
    pytest.importorskip("devinterp")
    from tmslab import slt

    (p,) = [p for p in T.critical_points(6, 6) if p.plus == 0]
    W, b = p.weights()
    x = slt.one_hot_data(2000, 6, seed=0)
    e = slt.estimate_llc(W[0], b[0], x, lr=1e-4, localization=10.0, chains=2, draws=200, burnin=100, seed=0)
    assert math.isfinite(e.llc) and e.loss_trace.shape == (2, 200)
    assert 0 < e.llc < 3 * 6, e.llc  # below the parameter count 3c: a sample-size-independent bound


def test_laplace_llc_known_answers():
    """Σ ½·nβh/(nβh + γ): half the positive eigenvalues when nβh ≫ γ, a quarter each at nβh = γ; zero modes
    add nothing. At the 6-gon (c = 6) with n = 5,000, nβ = n/log n, γ = 100 it predicts ≈ 4.9 (the low devinterp
    reading on data that γ explains), and ≈ 8.4 at the experiment's nβ = 1e5."""
    from tmslab.slt import laplace_llc

    ev = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64)
    assert laplace_llc(ev, 1e12, 1.0) == pytest.approx(1.5)
    assert laplace_llc(torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64), 10.0, 10.0) == pytest.approx(0.5)
    (p,) = [p for p in T.critical_points(6, 6) if p.plus == 0]
    W, b = p.weights()
    _, zero, eig = T.hessian_modes(W[0], b[0])
    assert laplace_llc(eig, 5000 / math.log(5000), 100.0) == pytest.approx(4.94, abs=0.01)
    assert p.llc == 8.5 and 8.3 < laplace_llc(eig, 1e5, 100.0) < 8.5


def test_population_llc_needs_nbeta():
    pytest.importorskip("devinterp")
    from tmslab import slt

    (p,) = [p for p in T.critical_points(6, 6) if p.plus == 0]
    W, b = p.weights()
    with pytest.raises(ValueError, match="nbeta"):
        slt.estimate_llc(W[0], b[0], None, lr=1e-6, localization=100.0)


def _tilted_double_well(theta: torch.Tensor) -> torch.Tensor:
    """Wells at ±1: the right one lower (−0.02 vs +0.02) but 4× steeper (less posterior volume)."""
    x = theta[:, 0]
    return (x**2 - 1) ** 2 * (1 + 3 * torch.sigmoid(4 * x)) - 0.02 * x


def test_replica_exchange_matches_quadrature_through_a_bayesian_transition():
    from tmslab.slt import replica_exchange

    ns = torch.logspace(0, 4, 12, dtype=torch.float64)
    post = replica_exchange(_tilted_double_well, 1, ns, ladders=8, steps=3000, burnin=1000, thin=10, seed=1)
    right = (post.theta[..., 0] > 0).double().mean(0)  # [ladders, rungs]
    grid = torch.linspace(-4, 4, 200_001, dtype=torch.float64)
    logp = -(grid**2) / 2 - ns[:, None] * _tilted_double_well(grid[:, None])  # [rungs, grid]
    p = torch.exp(logp - logp.max(-1, keepdim=True).values)
    exact = (p * (grid > 0)).sum(-1) / p.sum(-1)
    assert float(exact[0]) < 0.5 < float(exact[-1])  # the flat well first, the low one at large n
    # Each ladder is an independent run: the mean over 8 is within 4 standard errors (plus 0.01 for autocorrelated
    # draws at the largest n, where all but a few hundredths sit in one well).
    se = right.std(0) / math.sqrt(right.shape[0])
    assert bool(((right.mean(0) - exact).abs() <= 4 * se + 0.01).all()), (right.mean(0), exact, se)
    assert post.accept > 0.4 and float(post.swap_rate.min()) > 0.2


def test_bayes_crossing_and_free_energy_prediction():
    from tmslab.experiments.slt import crossing, free_energy_crossing

    ns = torch.tensor([10.0, 100.0, 1000.0, 10_000.0])
    assert crossing(ns, torch.tensor([-0.5, -0.1, 0.1, 0.9])) == pytest.approx(math.sqrt(100 * 1000))
    assert math.isnan(crossing(ns, torch.tensor([-0.5, 0.1, -0.1, -0.2])))  # never positive for good
    assert math.isnan(crossing(ns, torch.tensor([0.5, 0.1, 0.1, 0.2])))  # positive from the start
    n = free_energy_crossing(0.02, 1.5)
    assert n * 0.02 == pytest.approx(1.5 * math.log(n), rel=1e-9) and n > math.e
    n = free_energy_crossing(0.02, 1.5, 2.0)
    assert n * 0.02 == pytest.approx(1.5 * math.log(n) + 2.0, rel=1e-9)


def test_d15_formula_from_the_closed_forms():
    """D15: the paper's 601 solves n·ΔL = Δλ·log n + Δc with Δc = ½(‖w₆*‖² − ‖w₅*‖²) (standard normal prior, dead
    features at 0); without Δc the same equation gives 445 — both from our closed forms and derived λ."""
    from tmslab.experiments.slt import free_energy_crossing, prior_energy

    pts = {p.name: p for p in T.critical_points(6)}
    five, six = pts["5"], pts["6"]
    d_loss, d_llc = five.loss - six.loss, six.llc - five.llc
    assert d_llc == 1.5
    d_c = prior_energy(six) - prior_energy(five)
    assert d_c == pytest.approx(0.5 * (6 * (six.length**2 + six.bias**2) - 5 * (five.length**2 + five.bias**2)))
    assert round(free_energy_crossing(d_loss, d_llc)) == 445
    assert round(free_energy_crossing(d_loss, d_llc, d_c)) == 601


def test_empirical_loss_is_the_exact_mean_over_the_samples():
    """EmpiricalOneHotLoss (sorted prefix sums) ≡ the forward pass averaged over the same points, value and gradient,
    including a row with zero weights (the a = 0 branch)."""
    from tmslab.slt import EmpiricalOneHotLoss

    c, sizes = 6, [7, 40, 300]
    data = EmpiricalOneHotLoss.sample(sizes, c, seeds=[0, 1], nested=False)
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(6, 3 * c, generator=g, dtype=torch.float64)
    theta[1, : 2 * c] = 0.0
    theta[1, 2 * c :] = torch.linspace(-0.5, 0.5, c)
    rows = torch.tensor([0, 1, 2, 3, 4, 5])
    th = theta.clone().requires_grad_(True)
    fast = data(th, rows)
    (gfast,) = torch.autograd.grad(fast.sum(), th)
    for r in range(6):
        seed, rung = divmod(r, len(sizes))
        n, N = sizes[rung], max(sizes)
        gen = torch.Generator().manual_seed(seed * 100_003 + rung)
        idx = torch.randint(c, (N,), generator=gen)[:n]
        t = torch.rand(N, generator=gen, dtype=torch.float64)[:n]
        x = torch.zeros(n, c, dtype=torch.float64)
        x[torch.arange(n), idx] = t
        w = theta[r].clone().requires_grad_(True)
        W, b = w[: 2 * c].view(2, c), w[2 * c :]
        direct = ((torch.relu(x @ (W.T @ W) + b) - x) ** 2).sum(-1).mean()
        (gd,) = torch.autograd.grad(direct, w)
        assert float(fast[r].detach()) == pytest.approx(float(direct.detach()), rel=1e-12, abs=1e-14)
        torch.testing.assert_close(gfast[r], gd, rtol=1e-9, atol=1e-12)
    # Nested datasets: the size-n dataset is the first n points of one stream per seed.
    nested = EmpiricalOneHotLoss.sample(sizes, c, seeds=[5])
    first = [nested(theta[:1], torch.tensor([r])) * n for r, n in enumerate(sizes)]
    gen = torch.Generator().manual_seed(5)
    idx, t = torch.randint(c, (300,), generator=gen), torch.rand(300, generator=gen, dtype=torch.float64)
    for n, total in zip(sizes, first, strict=True):
        x = torch.zeros(n, c, dtype=torch.float64)
        x[torch.arange(n), idx[:n]] = t[:n]
        W, b = theta[0, : 2 * c].view(2, c), theta[0, 2 * c :]
        assert float(total) == pytest.approx(float(((torch.relu(x @ (W.T @ W) + b) - x) ** 2).sum()), rel=1e-12)
    # Large n: the empirical loss tends to the population loss (a standard error of a few 1e-3 at n = 20,000).
    big = EmpiricalOneHotLoss.sample([20_000], c, seeds=[3])
    (p,) = [p for p in T.critical_points(6, 6) if p.plus == 0]
    W, b = p.weights()
    w = torch.cat([W[0].flatten(), b[0]])[None]
    assert float(big(w, torch.tensor([0]))) == pytest.approx(p.loss, abs=0.004)


def test_replica_exchange_per_replica_reduces_to_the_shared_loss():
    """With one loss for every replica the per-replica exchange rule is exp((n_i − n_j)(L_i − L_j)): same draws."""
    from tmslab.slt import replica_exchange

    ns = torch.logspace(0, 3, 5, dtype=torch.float64)
    kw = dict(ladders=2, steps=60, burnin=30, thin=10, seed=4)
    a = replica_exchange(_tilted_double_well, 1, ns, **kw)
    b = replica_exchange(lambda th, rows: _tilted_double_well(th), 1, ns, per_replica=True, **kw)
    torch.testing.assert_close(a.theta, b.theta)
    torch.testing.assert_close(a.swap_rate, b.swap_rate)


def test_visits_and_transitions_follow_the_order():
    def p(label, loss, k, gap=0.0, start=0, end=1):
        return {"nearest": label, "critical_loss": loss, "gap": gap, "k": k, "loss": loss, "start": start, "end": end}

    path = visits([p("5-gon", 0.069, 5), p("5-gon", 0.069, 5), p("5⁺-gon", 0.062, 5), p("6-gon", 0.048, 6)])
    assert [v["point"] for v in path] == ["5-gon", "5⁺-gon", "6-gon"]  # the repeated plateau is one visit
    assert transitions(path) == (2, [])
    back = visits([p("5-gon", 0.069, 5), p("4²⁺-gon", 0.097, 4)])
    assert transitions(back)[1] == ["5-gon → 4²⁺-gon"]  # higher loss and fewer vertices: against the order
    assert transitions(visits([p("5-gon", 0.069, 5)])) == (0, [])  # a constant trajectory never jumps
    far = visits([p("5-gon", 0.08, 5, gap=0.1), p("6-gon", 0.048, 6)])
    assert far[0]["point"] == "none" and transitions(far)[1]


def test_order_of_families():
    from tmslab.experiments.slt import order_of_families

    ns = torch.arange(5.0)
    shares = {4: torch.tensor([0.8, 0.5, 0.1, 0.0, 0.0]), 5: torch.tensor([0.2, 0.4, 0.6, 0.4, 0.2]),
              6: torch.tensor([0.0, 0.1, 0.3, 0.6, 0.8])}  # fmt: skip
    assert order_of_families(ns, shares) == [4, 5, 6]
    shares[4][3] = 0.9
    assert order_of_families(ns, shares) == [4, 5, 4, 6]


def test_pentagon_claim_passes_on_the_5gon_and_fails_on_an_init():
    from types import SimpleNamespace

    from tmslab.experiments import slt as E

    pts = T.critical_points(5)
    (p5,) = [p for p in pts if p.name == "5"]
    W, b = p5.weights()
    g = torch.Generator().manual_seed(0)
    rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    good = SimpleNamespace(
        runs={
            "c5": SimpleNamespace(
                W=torch.cat([rot @ W[0], 0.3 * torch.randn(2, 5, generator=g, dtype=torch.float64)])[None].view(
                    2, 2, 5
                ),
                b=torch.cat([b, torch.zeros(1, 5)]),
            )
        }
    )
    tables: dict = {}
    assert E.SLT()._pentagon(good, pts, tables).status == "pass"
    assert tables["c5_best"]["live"] == 5
    init = SimpleNamespace(
        runs={
            "c5": SimpleNamespace(W=0.5 * torch.randn(4, 2, 5, generator=g, dtype=torch.float64), b=torch.zeros(4, 5))
        }
    )
    assert E.SLT()._pentagon(init, pts, {}).status == "fail"


def test_bayes_analysis_records_the_d15_claim_and_json_tables(monkeypatch):
    import json
    from types import SimpleNamespace

    from tmslab.experiments import slt as E

    small = {"ladders": 2, "steps": 40, "burnin": 20, "thin": 10, "prior_std": 1.0}
    monkeypatch.setattr(E, "BAYES_NS", torch.tensor([10.0, 100.0, 1000.0], dtype=torch.float64))
    monkeypatch.setattr(E, "DATA_BAYES_NS", torch.tensor([10.0, 100.0, 1000.0], dtype=torch.float64))
    monkeypatch.setattr(E, "BAYES_RUN", small)
    monkeypatch.setattr(E, "DATA_BAYES_RUN", small)
    tables: dict = {}
    claim, old = E.SLT()._bayes(SimpleNamespace(quick=False), T.critical_points(6), tables)
    assert claim.kind == "claim" and claim.decision == "D15" and claim.status in ("pass", "not reproduced")
    assert old.status == "superseded"
    bayes = json.loads(json.dumps(tables["bayesian"], allow_nan=False))  # no NaN reaches results.json
    for key in ("data", "population"):
        fam = torch.tensor(list(bayes[key]["families"].values()), dtype=torch.float64)
        assert bool((fam.sum(0) <= 1 + 1e-12).all())  # every draw in at most one family
    assert bayes["formula"]["with_dc"] == pytest.approx(601, abs=1) and bayes["formula"]["without_dc"] == pytest.approx(
        445, abs=1
    )
    assert "null_prior_draws" in bayes["data"]
    quick = E.SLT()._bayes(SimpleNamespace(quick=True), T.critical_points(6), {})
    assert [q.status for q in quick] == ["not evaluated", "not evaluated"]
