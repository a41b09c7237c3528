"""§2.7 (E11, E12): superposition and learning dynamics.

Energy-level jumps: in the uniform model on the 1/2 plateau, individual features' dimensionalities D_i move
between discrete levels in sudden jumps, and the loss drops at each jump. Geometric transformations: an m = 3
model of two correlated sets of three features passes through simple geometric stages and typically ends as an
octahedron whose antipodal pairs each join one feature of each set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tmslab import metrics
from tmslab.config import TrainConfig
from tmslab.data import make_distribution
from tmslab.experiments import register
from tmslab.experiments.base import (
    Analysis,
    Check,
    Context,
    Experiment,
    at_least,
    figure,
    finding,
    superseded,
)
from tmslab.io import Run
from tmslab.models import ToyModel
from tmslab.training import build, evaluate

SRC_E11, SRC_E12 = "§2.7, E11", "§2.7, E12"


# ---- E11: jump detection ---------------------------------------------------------------------------------


def _records(steps: Tensor, frac: float) -> int:
    """Number of records spanning `frac` of the training steps (at least 1)."""
    span = float(steps[-1] - steps[0])
    dt = span / max(len(steps) - 1, 1)
    return max(1, int(frac * span / dt))


def _stays(d: Tensor, tol: float, dwell: int) -> list[tuple[int, int]]:
    """Stays of one feature's D trace [records] at a level: (first record, last record) of each maximal run of
    consecutive windows of `dwell` records over each of which D varies by at most 2·tol (it sits still)."""
    if len(d) < dwell:
        return []
    win = d.double().unfold(0, dwell, 1)  # [T − dwell + 1, dwell]
    still = ((win.max(1).values - win.min(1).values) <= 2 * tol).nonzero().flatten().tolist()
    stays: list[tuple[int, int]] = []
    for t in still:
        if stays and stays[-1][1] == t + dwell - 2:
            stays[-1] = (stays[-1][0], t + dwell - 1)
        else:
            stays.append((t, t + dwell - 1))
    return stays


def detect_jumps(
    steps: Tensor,
    D: Tensor,
    norms: Tensor,
    min_change: float = 0.2,
    tol: float = 0.05,
    dwell: float = 0.05,
    transit: float = 0.05,
) -> list[dict[str, Any]]:
    """Jumps of per-feature dimensionality D [records, features] between discrete levels (§2.7, E11).

    A feature sits at a level while D_i varies by at most 2·`tol` over `dwell` of training (a stay); its level is
    the median of D_i over the `dwell` of the stay next to the move. A jump is two consecutive stays whose levels
    differ by ≥ `min_change`, at most `transit` of training apart (the last record of the first stay to the first
    of the second: sudden). Both stays must be levels: the feature is learned there (median ‖W_i‖ over that dwell
    above metrics.LEARNED_NORM, `norms` [records, features]) or not represented (median D_i ≤ tol). The levels are
    whatever a feature sits at (0, 1/2, 1, or a metastable value such as ≈ 0.73), not a fixed list. The initial
    learning from the random init is no jump: before it the features are unlearned directions (D_i ≈ m/n for a
    small init) — no level — and a stay that starts at the first record (the init itself) is none either. Returns
    {feature, before, after, start, stop, step} per jump, by step: `start`/`stop` index the last record at the old
    level and the first at the new one, `step` is the training step of the steepest single-record change between
    them.
    """
    D = D.double()
    w, gap = _records(steps, dwell), _records(steps, transit)
    out = []
    for f in range(D.shape[1]):
        d, norm = D[:, f], norms[:, f].double()

        def level(sl: slice, d: Tensor = d, norm: Tensor = norm) -> float | None:
            v = float(d[sl].median())
            return v if v <= tol or float(norm[sl].median()) > metrics.LEARNED_NORM else None

        stays = _stays(d, tol, w)
        for (a0, i), (j, _) in zip(stays, stays[1:], strict=False):
            before, after = level(slice(max(a0, i - w + 1), i + 1)), level(slice(j, j + w))
            if a0 == 0 or j - i > gap or before is None or after is None or abs(after - before) < min_change:
                continue
            s = i + int((d[i + 1 : j + 1] - d[i:j]).abs().argmax())
            out.append(
                {
                    "feature": f,
                    "before": round(before, 3),
                    "after": round(after, 3),
                    "start": i,
                    "stop": j,
                    "step": int(steps[s + 1]),
                }
            )
    return sorted(out, key=lambda j: j["step"])


def loss_drop(loss: Tensor, start: int, stop: int, window: int, k: float = 3.0) -> dict[str, Any]:
    """Does the loss drop at a jump by more than the surrounding trend (§2.7, E11)?

    `loss` [records] is the loss of each recorded snapshot on one fixed set of samples (common random numbers, so
    the batch noise of the training loss is absent). On log-loss over the `window` records up to `start` and the
    `window` records from `stop` on, fit a line plus a step at the jump, log L = c₀ + c₁·t + s·[t ≥ stop]: the
    line is the surrounding trend, −s the relative drop in excess of it. The drop coincides with the jump when
    −s > k·σ, σ the RMS residual of the fit (the wiggle of the snapshots' loss around the trend).
    """
    T = len(loss)
    idx = torch.tensor([*range(max(0, start - window), start + 1), *range(stop, min(T, stop + window + 1))])
    y = loss.double().clamp_min(1e-300).log()[idx]
    t = idx.double() - (start + stop) / 2
    A = torch.stack([torch.ones_like(t), t / max(window, 1), (idx >= stop).double()], 1)
    coef = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    resid = y - A @ coef
    sigma = float(resid.square().mean().sqrt())
    excess = -float(coef[2])
    return {"drop": excess, "noise": sigma, "coincides": excess > k * sigma}


def snapshot_loss(
    run: Run, n_samples: int, instances: list[int] | None = None, records: list[int] | None = None
) -> Tensor:
    """Loss [records, instances] of the recorded weight snapshots of a one-configuration run (of the given
    instances and records, default all), all on the same `n_samples` fixed-seed samples (common random numbers):
    unlike the training-batch loss it carries no batch noise, so a drop at a jump is not hidden by it, and anyone
    can recompute it from the saved history."""
    cfg, h = run.config, run.history
    if cfg.n_configs != 1:
        raise ValueError(f"snapshot_loss needs a run of one configuration, got {cfg.n_configs}.")
    ks = list(range(cfg.n_instances)) if instances is None else instances
    rs = list(range(h["W"].shape[0])) if records is None else records
    R, K = len(rs), len(ks)
    params = {k: h[k][rs][:, ks].reshape(R * K, *h[k].shape[2:]).contiguous() for k in ("W", "b")}
    _, dist, importance = build(cfg)
    rep = make_distribution(
        cfg.distribution,
        dist.density[:1].expand(R * K, -1).contiguous(),
        set_size=cfg.set_size,
        value_max=cfg.value_max,
    )
    model = ToyModel.from_params(cfg.model, params)
    return evaluate(model, rep, importance[:1].expand(R * K, -1), n_samples, restarts=R * K).view(R, K)


#: The first setting of the E11 check, kept as a superseded row (§7.1 D9) and recomputed from its own run at full
#: fidelity: the previous version's n = 100, m = 10, density 0.4, xavier init, 4 seeds, 10,000 steps.
FIRST_SETTING = (
    "n = 100, m = 10, density 0.4, xavier init, 4 seeds (the previous version's setting, 2026-11-30): the previous "
    "detector (ΔD_i ≥ 0.2 within 5% of training, batch-loss test) found 17 'jumps', 4 with a loss drop (0.24; "
    "quoted from that record, the detector is gone); all fell at steps 1,180–1,820 while the loss still fell from "
    "the init — features settling from D ≈ 0.1–0.28 to 1/2 or 0, not moving between levels. The measured value is "
    "this version's detector on the same setting, recomputed from the saved run."
)

_SNAPSHOT_SAMPLES = 10_000
"""Fixed samples on which every recorded snapshot's loss is measured (E11)."""

#: D12: the new claim counts the jumps that start after this step: the jump leaves its old level after its last
#: record there, so a jump whose last record at the old level is at this step or later starts after it (the D12
#: measurement's "6 jumps after step 3,000" on seeds 0–15 include a pair whose last record at the old level is 3,000).
LATE_STEP = 3_000
#: D12: the new claim needs at least this many such jumps, and this fraction of them with a loss drop.
LATE_MIN_JUMPS, LATE_FRACTION = 5, 0.8
#: D12: the spec's seeds 0–15 are the restarts of the run "uniform" (instance seeds 1–16); its new claim is judged on
#: seeds 16–47, the restarts of "uniform-new" (instance seeds 17–48: the same numbering continued).
FIRST_SEEDS, NEW_SEEDS = 16, 32


def _jump_config(restarts: int, steps: int, seed: int, eval_samples: int) -> TrainConfig:
    """The E11 setup (notes): n = 20, m = 5, I = 1, density 0.3, init × 0.01, weights recorded every 40 steps.
    Restart k has instance seed `seed` + k; we number seeds from 0 at instance seed 1."""
    # Small init (×0.01): training leaves the origin feature by feature, so a feature can sit at a level (0) long
    # after the init and then jump; a small model makes one feature's jump a visible part of the loss (§2.7).
    return TrainConfig(
        n_features=20,
        n_hidden=5,
        density=[0.3],
        restarts=restarts,
        steps=steps,
        record_every=40,
        init_scale=0.01,
        eval_samples=eval_samples,
        seed=seed,
    )


def measure_jumps(run: Run, first_seed: int = 0, trace: int | None = None) -> tuple[list[dict[str, Any]], Tensor]:
    """Every level-to-level jump (`detect_jumps`) of every restart of a one-configuration run, each judged for a
    loss drop (`loss_drop`) on the snapshots' fixed-sample loss (`snapshot_loss`).

    Returns (jumps by seed then step, each with its seed = `first_seed` + restart, `start_step` = the step of the
    last record at the old level, and the drop fit; the fixed-sample loss [records] of restart `trace`, NaN where
    not computed). The loss is computed only on the records a jump's fit uses (and every record of `trace`).
    """
    h = run.history
    steps, Wh = h["step"], h["W"].double()
    T, window = len(steps), _records(steps, 0.05)
    out: list[dict[str, Any]] = []
    traced = torch.full((T,), float("nan"), dtype=torch.float64)
    for k in range(run.config.n_instances):
        jumps = detect_jumps(steps, metrics.feature_dimensionality(Wh[:, k]), metrics.feature_norms(Wh[:, k]))
        loss = torch.full((T,), float("nan"), dtype=torch.float64)
        if k == trace:
            loss = traced = snapshot_loss(run, _SNAPSHOT_SAMPLES, [k])[:, 0].double()
        else:
            idx = sorted({i for j in jumps for i in range(max(0, j["start"] - window), min(T, j["stop"] + window + 1))})
            if idx:
                loss[idx] = snapshot_loss(run, _SNAPSHOT_SAMPLES, [k], idx)[:, 0].double()
        for j in jumps:
            j.update(
                loss_drop(loss, j["start"], j["stop"], window), seed=first_seed + k, start_step=int(steps[j["start"]])
            )
        out += jumps
    return out, traced


def _split(jumps: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(jumps, coinciding) of all jumps, those that start by LATE_STEP and those that start after it (D12)."""
    late = [j for j in jumps if j["start_step"] >= LATE_STEP]
    early = [j for j in jumps if j["start_step"] < LATE_STEP]
    return {k: (len(v), sum(j["coincides"] for j in v)) for k, v in (("all", jumps), ("early", early), ("late", late))}


def digon_seeds(W: Tensor) -> list[bool]:
    """Per model of W [K, m, n]: at least one learned feature (‖W_i‖ > 0.5), and every learned one at D_i within
    0.05 of 1/2 (an antipodal pair) — the paper's "features all end up as digons". An untrained small init has no
    learned feature, so it is no such model."""
    D, norms = metrics.feature_dimensionality(W.double()), metrics.feature_norms(W.double())
    learned = norms > metrics.LEARNED_NORM
    return [bool(learned[k].any()) and bool(((D[k] - 0.5).abs() <= 0.05)[learned[k]].all()) for k in range(len(W))]


@register
class EnergyJumps(Experiment):
    name = "energy-jumps"
    title = "Learning dynamics: discrete energy-level jumps"
    claim = (
        "Features' dimensionalities move between discrete levels in sudden jumps during training, and the loss "
        "drops at each jump."
    )
    spec_ref = "§2.7, E11; §7.2 D12"
    quick_not_evaluated = (
        # a fraction over 4 seeds' 8 jumps says little; the row is judged on the spec's 16 seeds.
        "fraction of level-to-level jumps",
        # D12's new claim: seeds 16–47 at 10,000 steps (the quick run trains no such seeds).
        "jumps that start after step",
    )
    notes = (
        "Setup unstated in the paper; the spec proposes the §2.6.1 uniform model on the 1/2 plateau. We use n = 20, "
        "m = 5, I = 1, density 0.3 (on the 1/2 plateau: at 10,000 steps 13 of 48 seeds have every learned feature in "
        "an antipodal pair, 10 features at D ≈ 1/2; each of the other 35 has 8 features in pairs and one lone feature "
        "at D ≈ 0.73 — 8 of seeds 0–15 end in pairs, only 5 of seeds 16–47), the notebook recipe (AdamW, lr 1e-3, "
        "10,000 steps) from a small init (xavier × 0.01, `init_scale`), weights recorded every 40 steps. Seeds: seed k "
        "is instance seed 1 + k; seeds 0–15 are the run 'uniform' (the spec's setting, §7 E11), seeds 16–47 the run "
        "'uniform-new' (§7.2 D12's new claim, trained separately so that seeds 0–15 cannot enter it). Why this setup: "
        "at n = 100 (the first setting, below) and from the default init at n = 4–20 (8 seeds each, 10,000 steps) no "
        "feature ever moves between levels — each settles once; from the small init at n = 20 a few seeds keep a lone "
        "feature at D ≈ 0.73 beside a feature at 0 for thousands of steps until the two form an antipodal pair. A "
        "small model makes one feature's jump a visible part of the loss. A feature sits at a level while D_i varies "
        "by ≤ 0.1 over 5% of training and it is learned there (‖W_i‖ > 0.5) or not represented (D_i ≤ 0.05); a jump is "
        "two such stays ≥ 0.2 apart (the spec's ΔD) at most 5% of training apart (the spec's 'within < 5%'); a stay "
        "from the first record (the init) is no level. The loss is each snapshot's loss on 10,000 fixed samples "
        "(common random numbers, recomputed from the saved history); a jump coincides with a loss drop when a line "
        "plus a step, fitted to log-loss over 5% of training either side, gives a drop larger than 3× the fit's RMS "
        "residual. The detector is the one the D12 measurement used, unchanged for the new seeds.\n\n§7.2 D12: the row "
        "'≥ 80% of all level-to-level jumps coincide with a loss drop' (seeds 0–15) is not reproduced — most jumps are "
        "early splits (steps 1,000–2,800) of the state reached from the init (all 20 features learned at D ≈ m/n = "
        "1/4) into pairs and unrepresented features, many features at once while the loss still falls steeply, and "
        "most show no drop beyond the trend; the late ones do. The detector counts that state as a level (it sits "
        "there ≥ 5% of training, learned); we do not exclude it after the fact. New "
        f"claim (stated before measuring): on seeds 16–47, ≥ {LATE_FRACTION:.0%} of the jumps that start after step "
        f"{LATE_STEP:,} (the step of the last record at the old level) coincide with a loss drop, and there are ≥ "
        f"{LATE_MIN_JUMPS}. The spec's own E11 row ('at least one jump coinciding with a loss drop') is judged on "
        "seeds 0–15. 'Final D_i ≈ 1/2': the paper shows 'one model whose features all end up as digons'; we count the "
        "seeds whose learned features all end at D_i within 0.05 of 1/2 (at least one learned) and require one, "
        "the fraction reported beside it; the figure shows such a seed (the one with most jumps). Quick fidelity: "
        "seeds 0–3 at the full schedule (10,000 steps, ≈ 5 s; the restarts train independently, so these are the "
        "full run's seeds 0–3). Null model (D20): the init (× 0.01) has no learned "
        "feature and its D_i never move, so every claim fails on it. First setting (kept as a superseded row, "
        "recomputed from its own run at full fidelity): " + FIRST_SETTING
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        if quick:
            return {"uniform": _jump_config(4, 10_000, 1, 10_000)}
        return {
            "uniform": _jump_config(FIRST_SEEDS, 10_000, 1, 100_000),
            "uniform-new": _jump_config(NEW_SEEDS, 10_000, 1 + FIRST_SEEDS, 100_000),
            "first-setting": TrainConfig(
                n_features=100,
                n_hidden=10,
                density=[0.4],
                restarts=4,
                steps=10_000,
                record_every=20,
                eval_samples=100_000,
                seed=1,
            ),
        }

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["uniform"]
        steps, Wh = run.history["step"], run.history["W"].double()
        seeds = run.config.n_instances
        counts = [
            len(detect_jumps(steps, metrics.feature_dimensionality(Wh[:, k]), metrics.feature_norms(Wh[:, k])))
            for k in range(seeds)
        ]
        # The figure's seed, as the paper picks it: "one model whose features all end up as digons" (§2.7) — the one
        # with the most jumps among those (any seed if none does).
        digons = digon_seeds(run.W)
        shown = max(range(seeds), key=lambda k: (digons[k], counts[k], -k))
        jumps, trace = measure_jumps(run, 0, shown)
        split = _split(jumps)
        (n_all, c_all), (n_early, c_early), (n_late, c_late) = split["all"], split["early"], split["late"]
        per_seed = [
            {
                "seed": k,
                "jumps": sum(j["seed"] == k for j in jumps),
                "coinciding": sum(j["coincides"] for j in jumps if j["seed"] == k),
            }
            for k in range(seeds)
        ]
        new = ctx.runs.get("uniform-new")
        new_jumps = measure_jumps(new, seeds)[0] if new is not None else []
        checks: list[Check] = [
            at_least(
                f"level-to-level jumps of D_i that coincide with a loss drop (seeds 0–{seeds - 1})",
                c_all,
                1,
                SRC_E11,
                f"the spec's E11 row: at least one ΔD_i ≥ 0.2 within < 5% of training with a loss drop beyond "
                f"the trend; {c_all} of {n_all} jumps over {seeds} seeds",
            ),
            finding(
                at_least(
                    f"fraction of level-to-level jumps of D_i that coincide with a loss drop (seeds 0–{seeds - 1})",
                    c_all / n_all if n_all else float("nan"),
                    0.8,
                    SRC_E11,
                    f"{c_all} of {n_all} jumps over {seeds} seeds (per seed: "
                    + ", ".join(f"{r['jumps']}/{r['coinciding']}" for r in per_seed if r["jumps"])
                    + " jumps/coinciding where any); the paper: the loss drops at each jump — 80% (issue "
                    "12) allows a jump whose drop hides in the snapshots' wiggle",
                ),
                "D12",
                f"{c_all} of {n_all} jumps coincide with a loss drop: of the {n_early} that start before step "
                f"{LATE_STEP:,} (early splits of the state reached from the init) {c_early} do, of the "
                f"{n_late} that start after it {c_late} do",
            ),
        ]
        if new is not None:
            late = [j for j in new_jumps if j["start_step"] >= LATE_STEP]
            c_new = sum(j["coincides"] for j in late)
            ok = len(late) >= LATE_MIN_JUMPS and c_new / len(late) >= LATE_FRACTION
            measured: Any = round(c_new / len(late), 4) if late else "no such jump"
            evidence = (
                f"{c_new} of {len(late)} jumps that start after step {LATE_STEP:,} coincide with a loss drop "
                f"on seeds 16–47 (all jumps there: {len(new_jumps)}, "
                f"{sum(j['coincides'] for j in new_jumps)} coinciding); at step {int(new.history['step'][-1]):,} "
                f"{new.config.n_instances - sum(digon_seeds(new.W))} of {new.config.n_instances} seeds still "
                "hold a learned feature away from D ≈ 1/2 (the lone feature a late jump pairs)"
            )
            note = evidence + f"; ≥ {LATE_MIN_JUMPS} jumps so that one miss cannot decide it alone"
        else:
            measured, ok, evidence, note = "not run at quick fidelity", False, "", "seeds 16–47 are trained at full"
        checks.append(
            finding(
                Check(
                    f"jumps that start after step {LATE_STEP:,} and coincide with a loss drop (seeds 16–47)",
                    measured,
                    f"≥ {LATE_FRACTION:g} of ≥ {LATE_MIN_JUMPS} jumps",
                    ok,
                    SRC_E11 + "; §7.2 D12",
                    note,
                ),
                "D12",
                evidence,
            )
        )
        ends = {f"0–{seeds - 1}": digons} | (
            {f"{seeds}–{seeds + new.config.n_instances - 1}": digon_seeds(new.W)} if new is not None else {}
        )
        n_end, n_seeds = sum(sum(v) for v in ends.values()), sum(len(v) for v in ends.values())
        checks.append(
            Check(
                "final D_i ≈ 1/2 for the learned features: seeds where all are",
                f"{n_end} of {n_seeds}",
                "≥ 1 (the paper picks one such model)",
                n_end >= 1,
                SRC_E11,
                "every learned feature within 0.05 of 1/2 (an antipodal pair), at least one learned; "
                + "; ".join(f"seeds {k}: {sum(v)} of {len(v)}" for k, v in ends.items())
                + ". The paper shows 'one model whose features all end up as digons' (§2.7) and states no "
                "fraction; the fraction is reported, not judged",
            )
        )
        first = ctx.runs.get("first-setting")
        if first is not None:
            fj = measure_jumps(first)[0]
            fc = sum(j["coincides"] for j in fj)
            first_measured: Any = round(fc / len(fj), 4) if fj else "no level-to-level jump"
            first_note = f"this detector: {fc} of {len(fj)} jumps coincide, recomputed from the saved run"
            first_ok = bool(fj) and fc / len(fj) >= 0.8
        else:
            first_measured, first_ok, first_note = "not run at quick fidelity", False, "the run is trained at full"
        checks.append(
            superseded(
                Check(
                    "fraction of jumps coinciding with a loss drop, first setting (n = 100, m = 10)",
                    first_measured,
                    "≥ 0.8",
                    first_ok,
                    SRC_E11,
                    first_note,
                ),
                FIRST_SETTING,
            )
        )
        D_shown = metrics.feature_dimensionality(Wh[:, shown])
        ever = (metrics.feature_norms(Wh[:, shown]) > metrics.LEARNED_NORM).any(0)
        figs = [
            figure(
                "traces",
                "traces",
                steps,
                D_shown[:, ever],
                trace,
                title=f"seed {shown}: D_i of features ever learned, above the loss",
                caption="Each learned feature's dimensionality D_i over training (top) above the loss of the "
                f"snapshots on {_SNAPSHOT_SAMPLES:,} fixed samples (bottom, log). Level-to-level jumps: "
                + (
                    ", ".join(
                        f"feature {j['feature']} {j['before']:g} → {j['after']:g} at step "
                        f"{j['step']} (drop {100 * j['drop']:.2g}%"
                        + (", coincides)" if j["coincides"] else ", below 3× the residual)")
                        for j in jumps
                        if j["seed"] == shown
                    )
                    or "none"
                )[:600],
            ),
        ]
        strip = ("start", "stop")
        tables = {
            "per_seed": per_seed,
            "split_seeds_0_15": split,
            "split_seeds_16_47": _split(new_jumps),
            "jumps": [{k: v for k, v in j.items() if k not in strip} for j in jumps],
            "jumps_seeds_16_47": [{k: v for k, v in j.items() if k not in strip} for j in new_jumps],
        }
        return Analysis(checks, figs, tables)


# ---- E12: geometry over training -----------------------------------------------------------------------------


def octahedron_report(W: Tensor, set_size: int = 3) -> dict[str, Any]:
    """Is one m = 3 model W [3, 6] the cross-set octahedron of E12?

    Three antipodal pairs (each feature's most opposite partner is mutual, cos < −0.9), each pair one feature of
    each correlated set, all features learned (‖W_i‖ > 0.5), and |cos| < 0.1 between features of different pairs.
    """
    W = W.double()
    n = W.shape[1]
    norms = W.norm(dim=0)
    cos = (W.T @ W) / (norms[:, None] * norms[None, :]).clamp_min(1e-12)
    partner = cos.argmin(1)
    pair_cos = [float(cos[i, partner[i]]) for i in range(n)]
    mutual = all(int(partner[int(partner[i])]) == i for i in range(n))
    cross_set = all((i // set_size) != (int(partner[i]) // set_size) for i in range(n))
    others = [abs(float(cos[i, j])) for i in range(n) for j in range(n) if j != i and j != int(partner[i])]
    ok = (
        mutual
        and cross_set
        and max(pair_cos) < -0.9
        and max(others) < 0.1
        and bool((norms > metrics.LEARNED_NORM).all())
    )
    return {
        "octahedron": ok,
        "max_pair_cos": max(pair_cos),
        "max_cross_pair_abs_cos": max(others),
        "mutual_pairs": mutual,
        "pairs_cross_sets": cross_set,
        "min_norm": float(norms.min()),
    }


@register
class GeometryDynamics(Experiment):
    name = "geometry-dynamics"
    title = "Learning dynamics: training as a sequence of geometric transformations (n = 6, m = 3)"
    claim = (
        "Training an m = 3 model of two correlated sets of three features passes through distinct geometric "
        "stages; the final solution is typically an octahedron whose antipodal pairs join features of different sets."
    )
    spec_ref = "§2.7, E12"
    notes = (
        "Density (unstated in the paper) 0.1 per correlated set: a set is all-zero with probability 0.9, else its "
        "three values are drawn independently (paper-spec §2.6.4 ii). Uniform importance, 16 seeds, notebook "
        "recipe, weights recorded every 50 steps. Octahedron (E12): each feature's most opposite partner is mutual "
        "with cos < −0.9 and comes from the other set, all ‖W_i‖ > 0.5, and |cos| < 0.1 between different pairs. "
        "The 3-D figure shows the lowest-loss seed at log-spaced steps (features 0–2 in reds = set A, 3–5 in blues = "
        "set B, the same colours in every snapshot). Quick fidelity trains the full schedule (10,000 steps) on 6 "
        "seeds instead of 16 (≈ 6 s): at 3,000 steps none of 6 seeds has formed the octahedron yet. Null model "
        "(D20): a Xavier init (‖W_i‖ ≈ 0.8, random directions) has no mutual antipodal pairs, so both claims fail on "
        "it."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        return {
            "correlated": TrainConfig(
                n_features=6,
                n_hidden=3,
                density=[0.1],
                distribution="correlated",
                set_size=3,
                restarts=6 if quick else 16,
                steps=10_000,
                record_every=50,
                eval_samples=10_000 if quick else 100_000,
                seed=2,
            )
        }

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["correlated"]
        W = run.W.double()
        reports = [octahedron_report(W[k]) for k in range(run.config.n_instances)]
        n_oct = sum(r["octahedron"] for r in reports)
        best = run.best_indices()[0]
        checks: list[Check] = [
            Check(
                "seeds ending in the cross-set octahedron",
                f"{n_oct}/{len(reports)}",
                "a majority (> 1/2)",
                n_oct > len(reports) / 2,
                SRC_E12,
                "pair cos < −0.9, cross-pair |cos| < 0.1, all ‖W_i‖ > 0.5",
            ),
            Check(
                "the lowest-loss seed is the cross-set octahedron",
                reports[best]["octahedron"],
                "True",
                reports[best]["octahedron"],
                SRC_E12,
                "the paper calls it a strong attractor",
            ),
        ]
        h = run.history
        steps, Wh, loss = h["step"], h["W"].double()[:, best], h["loss"].double()[:, best]
        T = len(steps)
        pick = sorted({0, T - 1, *torch.logspace(0, torch.log10(torch.tensor(T - 1.0)), 10).round().long().tolist()})
        pick = [p for p in pick if p < T]
        colors = ["#b2182b", "#e34a33", "#fc8d59", "#08519c", "#3182bd", "#6baed6"]
        figs = [
            figure(
                "snapshots",
                "points_3d",
                Wh[pick],
                [f"step {int(steps[p])}" for p in pick],
                feature_colors=colors,
                title=f"seed {best}: feature directions over training",
                caption="Feature directions W_i in the 3-D hidden space at log-spaced training steps (slider); "
                "reds = correlated set A (features 0–2), blues = set B (3–5).",
            ),
            figure(
                "loss",
                "lines",
                steps[1:],
                {"training loss": loss[1:]},
                xlabel="step",
                ylabel="loss",
                log_x=True,
                log_y=True,
                markers=False,
                vlines={f"{int(steps[p])}": float(steps[p]) for p in pick if p > 0},
                caption="Training-batch loss of the same seed; dotted lines mark the snapshots.",
            ),
        ]
        return Analysis(checks, figs, {"seeds": reports})
