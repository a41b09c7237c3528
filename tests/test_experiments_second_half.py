"""Second-half experiments (§2.7–§2.13, §5): quick-mode structure, and the pure helpers they rely on."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tmslab import metrics, theory
from tmslab.experiments import get
from tmslab.experiments.runner import run_experiment

SECOND_HALF = ["energy-jumps", "geometry-dynamics", "adversarial", "privileged", "abs-small", "abs-sweep", "l1",
               "nonlinear-compression"]


@pytest.mark.parametrize("name", SECOND_HALF)
def test_quick_run_structure(name, tmp_path):
    torch.set_num_threads(1)  # tiny models: one thread avoids oversubscription on a busy 2-core machine
    res = run_experiment(get(name), tmp_path, "quick", progress=False)
    assert res["quick"] is True and res["name"] == name
    assert res["checks"], "every experiment has checks"
    for c in res["checks"]:
        vals = c["measured"] if isinstance(c["measured"], list) else [c["measured"]]
        for v in vals:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert math.isfinite(v), c
        assert c["expected"] and c["source"]
    assert res["figures"]
    for f in res["figures"]:
        assert (tmp_path / f["html"]).stat().st_size > 0 and (tmp_path / f["png"]).stat().st_size > 0
    saved = json.loads((tmp_path / name / "results.json").read_text())
    assert saved["checks"] == res["checks"] and saved["notes"]


# ---- energy jumps ---------------------------------------------------------------------------------------------


def _synthetic_trace(T=500, jump_at=300, n=6, drop=0.9):
    """Records every 20 steps: feature 1 sits at 1/2 and jumps to 1 at `jump_at`, the loss stepping by `drop`."""
    g = torch.Generator().manual_seed(0)
    steps = torch.arange(T) * 20
    t = torch.arange(T)
    D = torch.full((T, n), 0.5, dtype=torch.float64)
    D[:60, 0] = torch.linspace(0.2, 0.5, 60, dtype=torch.float64)  # initial learning from the init: no jump
    D[:, 1] = torch.where(t < jump_at, 0.5, 1.0)  # a level-to-level jump (1/2 → 1)
    D[:20, 1] = torch.linspace(0.2, 0.5, 20, dtype=torch.float64)  # learnt from the init first
    D[jump_at - 1, 1] = 0.8  # caught mid-jump by one record
    D[:, 2] = torch.linspace(0.1, 0.4, T, dtype=torch.float64)  # a slow drift: no sudden jump
    D[:, 3] = torch.where((t > 200) & (t < 205), 0.3, 0.0)  # leaves level 0 briefly and returns: no jump
    # settles from the init to 0, passes through 1/2 (shorter than a stay) to 1: one jump 0 → 1
    D[:, 4] = torch.where(t < 100, 0.0, torch.where(t < 110, 0.5, 1.0))
    D[:20, 4] = torch.linspace(0.4, 0.0, 20, dtype=torch.float64)
    D[:, 5] = torch.where(t < 400, 0.2, 0.5)  # sits at its init value (record 0 on) and moves: no jump
    D[:, 5] = torch.where(t < 400, 0.2, 0.5)
    D += 0.01 * torch.randn(D.shape, generator=g, dtype=torch.float64)  # snapshot wiggle, well inside tol
    trend = 1.0 - 0.3 * t.double() / T
    wiggle = 1 + 0.001 * torch.randn(T, generator=g, dtype=torch.float64)
    loss = 0.1 * trend * wiggle * torch.where(t < jump_at, 1.0, drop)
    return steps, D, loss


def test_detect_jumps_finds_level_to_level_jumps_only():
    from tmslab.experiments.dynamics import detect_jumps

    steps, D, _ = _synthetic_trace()
    norms = torch.ones_like(D)  # every feature learned (‖W_i‖ = 1)
    jumps = detect_jumps(steps, D, norms)
    assert [(j["feature"], round(j["before"], 1), round(j["after"], 1)) for j in jumps] == [(4, 0.0, 1.0),
                                                                                           (1, 0.5, 1.0)]
    j = jumps[1]
    assert (j["start"], j["stop"]) == (298, 300) and j["step"] in (299 * 20, 300 * 20)
    # a jump slower than `transit` (5% of training) is no sudden jump
    slow = D.clone()
    slow[250:350, 1] = torch.linspace(0.5, 1.0, 100, dtype=torch.float64)
    assert [j["feature"] for j in detect_jumps(steps, slow, norms)] == [4]
    # levels are where a feature sits, not a fixed list: a metastable 0.73 → 1/2 is a jump
    odd = D.clone()
    odd[:, 3] = torch.where(torch.arange(500) < 250, 0.73, 0.5)
    odd[:10, 3] = torch.linspace(0.2, 0.73, 10, dtype=torch.float64)
    assert [(j["feature"], round(j["before"], 2)) for j in detect_jumps(steps, odd, norms)][1] == (3, 0.73)
    # a change smaller than min_change between two stays is no jump
    small = D.clone()
    small[300:, 1] = 0.6
    assert [j["feature"] for j in detect_jumps(steps, small, norms)] == [4]
    # an unlearned feature (‖W_i‖ ≪ 1, as before the initial learning of a small init) sits at no level
    tiny = norms.clone()
    tiny[:300, 1] = 0.01
    assert [j["feature"] for j in detect_jumps(steps, D, tiny)] == [4]
    tiny[:, 4] = 0.01  # ... but a feature not represented (D_i ≈ 0) sits at level 0: 0 → 1 is still a jump
    tiny[110:, 4] = 1.0
    assert [j["feature"] for j in detect_jumps(steps, D, tiny)] == [4]


def test_loss_drop_needs_a_step_beyond_the_trend():
    from tmslab.experiments.dynamics import loss_drop

    for drop, coincides in ((0.9, True), (1.0, False), (1.1, False)):
        _, _, loss = _synthetic_trace(drop=drop)
        r = loss_drop(loss, 298, 300, 25)
        assert r["coincides"] is coincides, (drop, r)
        assert r["drop"] == pytest.approx(-torch.log(torch.tensor(drop)).item(), abs=0.01)
    _, _, loss = _synthetic_trace()
    assert not loss_drop(loss, 148, 150, 25)["coincides"]  # the trend alone (no jump there) is no drop
    # a drop smaller than 3× the wiggle is not called a drop
    _, _, loss = _synthetic_trace(drop=0.999)
    assert not loss_drop(loss, 298, 300, 25)["coincides"]


def test_late_jumps_and_digon_seeds():
    """§7.2 D12: a jump starts after step 3,000 when its last record at the old level is at 3,000 or later; a seed
    ends "all digons" only with at least one learned feature (the small init has none)."""
    from tmslab.experiments.dynamics import LATE_STEP, _split, digon_seeds

    jumps = [
        {"start_step": LATE_STEP - 40, "coincides": False},
        {"start_step": LATE_STEP, "coincides": True},
        {"start_step": LATE_STEP + 400, "coincides": False},
    ]
    assert _split(jumps) == {"all": (3, 1), "early": (1, 0), "late": (2, 1)}
    pair = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])  # features 0, 1 antipodal (D = 1/2), 2 unlearned
    lone = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # feature 2 alone in its direction (D = 1)
    assert digon_seeds(torch.stack([pair, lone, 0.01 * lone])) == [True, False, False]


def test_snapshot_loss_matches_evaluate_per_snapshot(make_config, tmp_path):
    from tmslab.experiments.dynamics import snapshot_loss
    from tmslab.io import Run, load_run, save_run
    from tmslab.models import ToyModel
    from tmslab.training import build, evaluate, train

    torch.set_num_threads(1)
    cfg = make_config(n_features=6, n_hidden=2, density=[0.3], restarts=2, steps=40, record_every=20)
    run: Run = load_run(save_run(tmp_path / "r", train(cfg)))
    L = snapshot_loss(run, 2_000)
    R = len(run.history["step"])
    assert L.shape == (R, 2) and R >= 2
    # a subset of instances and records is scored on the same samples
    torch.testing.assert_close(snapshot_loss(run, 2_000, [1], [R - 1]), L[R - 1 :, 1:])
    _, dist, importance = build(cfg)
    for r in (0, R - 1):
        model = ToyModel.from_params(cfg.model, {"W": run.history["W"][r], "b": run.history["b"][r]})
        torch.testing.assert_close(L[r], evaluate(model, dist, importance, 2_000, restarts=2))


# ---- successive halving -----------------------------------------------------------------------------------------


def test_select_survivors_keeps_the_best_per_configuration():
    from tmslab.experiments.privileged import check_plan, select_survivors

    loss = torch.tensor([0.5, 0.1, 0.3, 0.2, 9.0, 7.0, 8.0, 1.0])  # two configurations of 4 restarts
    assert select_survivors(loss, 4, 2) == [1, 3, 7, 5]
    assert select_survivors(loss, 4, 1) == [1, 7]
    assert select_survivors(torch.tensor([1.0, 1.0]), 2, 1) == [0]  # ties to the lower index
    with pytest.raises(ValueError):
        select_survivors(loss, 3, 1)
    with pytest.raises(ValueError):
        check_plan([(4, 100), (8, 200)])


def test_successive_halving_follows_lineage(make_config):
    from dataclasses import replace

    from tmslab.experiments.privileged import successive_halving

    torch.set_num_threads(1)
    cfg = make_config(model="hidden-relu", n_features=6, n_hidden=3, density=[1.0, 0.1], steps=10)
    result, record = successive_halving(cfg, [(4, 20), (2, 40), (1, 60)], screen_eval=512)
    assert result.config.restarts == 1 and result.params["W"].shape == (2, 3, 6)
    r0, r1, r2 = record["rounds"]
    assert r0["origin"] == [0, 1, 2, 3] * 2
    # round 1 keeps the two lowest round-0 losses of each configuration, in loss order
    for c in range(2):
        losses = r0["eval_loss"][4 * c : 4 * c + 4]
        assert r1["origin"][2 * c : 2 * c + 2] == sorted(range(4), key=lambda i: losses[i])[:2]
    assert r2["origin"][0] in r1["origin"][:2] and r2["until_step"] == 60
    # screening scores on its own samples, not the final evaluation's stream (which would bias the kept best low)
    from tmslab.config import EVAL_SEED
    from tmslab.experiments.privileged import SCREEN_SEED, screen_losses

    assert (r0["eval_seed"], r1["eval_seed"], r2["eval_seed"]) == (SCREEN_SEED, SCREEN_SEED, EVAL_SEED)
    final = [round(float(v), 8) for v in result.eval_loss]
    assert r2["eval_loss"] == final
    one = replace(cfg, restarts=1)
    torch.testing.assert_close(screen_losses(one, result.params, cfg.eval_samples, EVAL_SEED), result.eval_loss)
    assert not torch.equal(screen_losses(one, result.params, cfg.eval_samples), result.eval_loss)


def test_largest_secondary_weight_is_relative_to_its_neuron():
    from tmslab.experiments.privileged import _largest_secondary

    W = torch.tensor([[2.0, 0.1, 0.0], [0.0, -1.0, 0.3], [0.0, 0.0, 5.0]])  # second weights 0.05, 0.3, 0
    k, f, rel = _largest_secondary(W)
    assert (k, f) == (1, 2) and rel == pytest.approx(0.3)


# ---- abs model -------------------------------------------------------------------------------------------------


def test_motif_search_on_a_hand_built_model():
    from tmslab.experiments.absval import find_asymmetric_motifs

    W1 = torch.tensor([[2.0, -0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # neuron 1 fires with x_a > 0
    W2 = torch.zeros(3, 3)
    W2[0, 0], W2[1, 0] = 0.5, 2.0  # reciprocal outputs: feature a=0 interferes heavily with output b=1
    W2[1, 1] = -4.0  # neuron 1 inhibits output 1
    W2[2, 2] = 1.0
    found = find_asymmetric_motifs(W1, W2)
    assert [(f["neuron"], f["a"], f["b"], f["inhibitors"]) for f in found] == [(0, 0, 1, [1])]
    assert found[0]["w_in"] == [1.0, -0.25] and found[0]["w_out"] == [1.0, 4.0]  # after the footnote-15 rescale
    W2[1, 1] = 0.0
    assert find_asymmetric_motifs(W1, W2)[0]["inhibitors"] == []
    W2[1, 0] = 0.5  # symmetric outputs: not the asymmetric motif
    assert find_asymmetric_motifs(W1, W2) == []
    W2[1, 0] = 2.0
    assert len(find_asymmetric_motifs(W1, W2)) == 1
    # the same shape at a twentieth of the gain (|W1_kf|·W2_fk = 0.05 < 0.1): the neuron computes neither feature
    assert find_asymmetric_motifs(W1, W2 / 20) == []


def test_computed_counts_use_path_gains_and_the_init_computes_nothing():
    """§5, E16 (paper-spec §7.2 D20): polysemantic neurons and computed features are counted on path gains
    |W1_kf|·W2_fk, which a random init at n = 100, m = 40 keeps below 0.1 nearly everywhere; the |W1|-only reading
    called every neuron of that init polysemantic."""
    from tmslab.config import TrainConfig
    from tmslab.experiments.absval import computed_counts, find_asymmetric_motifs, init_params

    e = torch.eye(3)
    W1, W2 = torch.cat([e, -e])[None], torch.cat([e, e], 1)[None]  # the exact pair code: gain 1 each
    assert computed_counts(W1, W2) == ([0], [3])
    W1[0, 0, 1], W2[0, 1, 0] = -0.5, 0.5  # neuron 0 also passes |x_1| (negative side) into output 1: gain 0.25
    assert computed_counts(W1, W2) == ([1], [3])
    W2[0, 1, 0] = -0.5  # ... inhibiting output 1 instead computes nothing there
    assert computed_counts(W1, W2) == ([0], [3])
    cfg = TrainConfig(model="abs", n_features=100, n_hidden=40, importance_decay=0.8, density=[1.0], restarts=2)
    init = init_params(cfg)
    poly, computed = computed_counts(init["W1"], init["W2"])
    assert poly == [0, 0] and max(computed) <= 2  # measured 1 and 1 (the tail of a product of Gaussians), vs > 20
    assert (metrics.neuron_feature_counts(init["W1"], 0.1) >= 2).sum(-1).tolist() == [40, 40]
    assert find_asymmetric_motifs(init["W1"][0], init["W2"][0]) == []


def test_pair_neurons_on_the_exact_solution():
    from tmslab.experiments.absval import pair_neurons

    W1 = torch.cat([torch.eye(3), -torch.eye(3)])  # neurons 0-2: +x_i, 3-5: −x_i
    assert pair_neurons(W1) == [{"plus": [i], "minus": [i + 3]} for i in range(3)]


def test_duplicate_neurons_counts_copies_of_a_feature_and_sign():
    from tmslab.experiments.absval import duplicate_neurons

    e = torch.eye(3)
    # +x0 twice (one a half-size copy), −x0 once, +x1 once, and a dead neuron
    W1 = torch.stack([e[0], 0.5 * e[0], -e[0], e[1], torch.zeros(3)])
    assert duplicate_neurons(W1[None]) == [1]
    assert duplicate_neurons(torch.cat([e, -e])[None]) == [0]


def test_resample_duplicates_keeps_the_function_and_frees_only_monosemantic_copies():
    from tmslab.experiments.absval import monosemantic_duplicates, resample_duplicates
    from tmslab.models import ToyModel

    e = torch.eye(4)
    # neurons: +x0, a 3x copy of +x0, −x0, a polysemantic neuron led by +x0 (kept), +x1, a copy of +x1
    W1 = torch.stack([e[0], 3 * e[0], -e[0], e[0] + 0.5 * e[2], e[1], 0.5 * e[1]])
    W2 = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    assert monosemantic_duplicates(W1.double()) == {1: 0, 5: 4}
    V1, V2, freed = resample_duplicates(W1[None], W2[None], torch.Generator().manual_seed(1))
    assert freed == [[1, 5]]
    assert torch.all(V2[0][:, [1, 5]] == 0) and V1[0, [1, 5]].abs().amax(-1).min() > 0  # re-drawn, silent
    assert monosemantic_duplicates(V1[0].double()) == {}
    model = ToyModel("abs", 2, 4, 6)
    b = torch.randn(4).expand(2, 4).clone()
    x = torch.rand(2, 512, 4) * 2 - 1
    with torch.no_grad():
        model.load_state_dict({"W1": torch.cat([W1[None], V1]), "W2": torch.cat([W2[None], V2]), "b": b})
        y = model(x[:1].expand(2, -1, -1))
    torch.testing.assert_close(y[1], y[0])  # merged copies: the same function


def test_pair_code_loss_is_the_loss_of_the_pair_code():
    from tmslab.config import TrainConfig
    from tmslab.experiments.absval import _pair_code_loss
    from tmslab.training import evaluate_params

    # n = 6 features, m = 4 neurons: ±x0, ±x1 computed exactly, features 2–5 left at their mean 1/2.
    cfg = TrainConfig(model="abs", n_features=6, n_hidden=4, importance_decay=0.8, density=[1.0],
                      eval_samples=100_000)
    e = torch.eye(6)
    W1 = torch.stack([e[0], -e[0], e[1], -e[1]])
    W2 = torch.zeros(6, 4)
    W2[0, :2] = W2[1, 2:] = 1.0
    b = torch.tensor([0.0, 0.0, 0.5, 0.5, 0.5, 0.5])
    loss = float(evaluate_params(cfg, {"W1": W1[None], "W2": W2[None], "b": b[None]})[0])
    # per-sample loss Σ_{i≥2} 0.8^i (|x_i| − 1/2)² has relative SE ≈ 0.2% at 100k samples; allow 1%
    assert loss == pytest.approx(_pair_code_loss(cfg), rel=0.01)
    assert _pair_code_loss(cfg) == pytest.approx(sum(0.8**i for i in range(2, 6)) / 12)


@pytest.mark.slow
def test_resampling_escapes_the_duplicate_plateau_at_density_1():
    """§5, E16 at full size: plain training leaves copies of ±x_i neurons (a zero-gradient plateau); resampling
    them lowers the loss towards the 20-pair code's."""
    from dataclasses import replace

    from tmslab.config import TrainConfig
    from tmslab.experiments.absval import _pair_code_loss, duplicate_neurons, train_resampled
    from tmslab.training import train

    torch.set_num_threads(2)
    cfg = TrainConfig(model="abs", n_features=100, n_hidden=40, importance_decay=0.8, density=[1.0], steps=5_000,
                      eval_samples=50_000)
    plain = train(cfg)
    V1, _ = metrics.abs_rescale(plain.params["W1"], plain.params["W2"])
    assert duplicate_neurons(V1)[0] >= 5  # 14–18 in the full run's 4 restarts
    twice = {k: v.repeat_interleave(2, 0) for k, v in plain.params.items()}
    res, record = train_resampled(replace(cfg, restarts=2), twice, 3, 1_500)
    assert record["rounds"][0]["resampled_neurons"][0] >= 5
    target = _pair_code_loss(cfg)
    # same evaluation samples (one configuration); measured: plain 7.4×, resampled 1.00× and 1.36× the pair code
    assert float(res.eval_loss.max()) < 0.5 * float(plain.eval_loss[0])
    assert float(res.eval_loss.min()) < 1.5 * target


# ---- geometry, adversarial, compression ---------------------------------------------------------------------


def test_octahedron_report():
    from tmslab.experiments.dynamics import octahedron_report

    rep = octahedron_report(theory.octahedron()[0])
    assert rep["mutual_pairs"] and rep["max_pair_cos"] == pytest.approx(-1) and rep["max_cross_pair_abs_cos"] < 1e-9
    # pairing features within one correlated set is not the cross-set octahedron
    same_set = torch.cat([torch.eye(3)[:, :1], -torch.eye(3)[:, :1], torch.eye(3)[:, 1:2], -torch.eye(3)[:, 1:2],
                          torch.eye(3)[:, 2:], -torch.eye(3)[:, 2:]], dim=1)
    assert not octahedron_report(same_set)["octahedron"]
    cross = same_set[:, [0, 2, 4, 1, 3, 5]]
    assert octahedron_report(cross)["octahedron"]


def test_attack_losses_match_metrics_and_reference_is_lambda_squared():
    from tmslab.experiments.adversarial import attack_losses, reference_model, spearman

    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(3, 8, generator=g, dtype=torch.float64), -0.1 * torch.rand(8, generator=g, dtype=torch.float64)
    x = torch.rand(300, 8, generator=g, dtype=torch.float64) * (torch.rand(300, 8, generator=g) < 0.3)
    a = attack_losses(W, b, x, 0.05, chunk=64)
    ref = metrics.adversarial_losses(W[None], b[None], x[None], radius=0.05)
    assert a["clean"] == pytest.approx(float(ref.clean[0])) and a["fixed"] == pytest.approx(float(ref.attacked[0]))
    assert a["per_sample"] >= a["fixed"] - 1e-12
    W0, b0 = reference_model(8, 3, 0.3)
    a0 = attack_losses(W0, b0, x, 0.05)
    assert a0["per_sample"] - a0["clean"] == pytest.approx(0.05**2)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)


def test_relu_codec_matches_closed_form():
    from tmslab.experiments.compression import relu_codec_mse, relu_ramp_floor

    u = torch.tensor([0.2, 0.95, 1.0, 1.05, 2.5], dtype=torch.float64)
    assert relu_ramp_floor(u, 3, 0.1).tolist() == pytest.approx([0, 0, 0.5, 1, 2])
    mc, se = relu_codec_mse(3, 0.1, 50_000)
    assert abs(mc - theory.compression_mse(3, 0.1, grid=300)) < 5 * se
