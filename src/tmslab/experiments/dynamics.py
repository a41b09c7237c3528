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
    all_within,
    at_least,
    figure,
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
    steps: Tensor, D: Tensor, norms: Tensor, min_change: float = 0.2, tol: float = 0.05, dwell: float = 0.05,
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
            out.append({"feature": f, "before": round(before, 3), "after": round(after, 3), "start": i, "stop": j,
                        "step": int(steps[s + 1])})
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
    rep = make_distribution(cfg.distribution, dist.density[:1].expand(R * K, -1).contiguous(),
                            set_size=cfg.set_size, value_max=cfg.value_max)
    model = ToyModel.from_params(cfg.model, params)
    return evaluate(model, rep, importance[:1].expand(R * K, -1), n_samples, restarts=R * K).view(R, K)


#: The first setting of the E11 check (n = 100, m = 10, density 0.4, xavier init, 4 seeds, 10,000 steps), measured
#: on the stored full run of the previous version (lead, 2026-11-30); it is not retrained (one full run costs ~5 min).
FIRST_SETTING = (
    "n = 100, m = 10, density 0.4, xavier init, 4 seeds: the previous detector (ΔD_i ≥ 0.2 within 5% of training, "
    "batch-loss test) found 17 'jumps', 4 with a loss drop (0.24); all 17 fell at steps 1,180–1,820 while the loss "
    "still fell from the init (10.1 → 8.02, flat after ~2,000) — features settling from D ≈ 0.1–0.28 to 1/2 or 0, "
    "not moving between levels. On the snapshots' fixed-sample loss 7 of 17 exceed the fit residual. The detector "
    "of this version finds 2 level-to-level jumps in those 4 seeds (seed 1 feature 36, 0.27 → 0.01 at step 1,820: "
    "no drop; seed 3 feature 59, 0.32 → 0.03 at step 1,320: a 0.7% drop against a 0.2% residual), 1 of 2 coinciding "
    "(10,000 samples); every other feature settles once."
)


_SNAPSHOT_SAMPLES = 10_000
"""Fixed samples on which every recorded snapshot's loss is measured (E11)."""


@register
class EnergyJumps(Experiment):
    name = "energy-jumps"
    title = "Learning dynamics: discrete energy-level jumps"
    claim = (
        "Features' dimensionalities move between discrete levels in sudden jumps during training, and the loss "
        "drops at each jump."
    )
    spec_ref = "§2.7, E11"
    quick_not_evaluated = (
        # 2 seeds × 2,000 steps: the first level-to-level jumps come after ~1,000 steps, late ones after 3,000.
        "fraction of level-to-level jumps",
        # at 4,000–6,000 steps one or more of 3 seeds still holds a feature at D ≈ 0.73 (a metastable level).
        "final D_i",
    )
    notes = (
        "Setup unstated in the paper; the spec proposes the §2.6.1 uniform model on the 1/2 plateau. We use n = 20, "
        "m = 5, I = 1, density 0.3 (on the 1/2 plateau: at 10,000 steps half the seeds have every learned feature "
        "in an antipodal pair, the rest keep one lone feature at D ≈ 0.73), 16 seeds, the "
        "notebook recipe (AdamW, lr 1e-3, 10,000 steps) from a small init (xavier × 0.01, `init_scale`), weights "
        "recorded every 40 steps. Why: at n = 100 (the first setting, below) and from the default init at "
        "n = 4–20 (8 seeds each, 10,000 steps) no feature ever moves between levels — each settles once; from the "
        "small init at n = 20 a few seeds keep a lone feature at D ≈ 0.73 beside a feature at 0 for thousands of "
        "steps until the two form an antipodal pair. A small model makes one feature's jump a visible part of the "
        "loss. A feature sits at a level while D_i varies by ≤ 0.1 over 5% of training and it is learned there "
        "(‖W_i‖ > 0.5) or not represented (D_i ≤ 0.05); a jump is two such stays ≥ 0.2 apart (the spec's ΔD) "
        "at most 5% of training apart (the spec's 'within < 5%'); a stay from the first record (the init) is no "
        "level. The loss is each snapshot's loss on 10,000 fixed samples (common random numbers, recomputed from the "
        "saved history); a jump coincides with a loss drop when a line plus a step, fitted to log-loss over 5% of "
        "training either side, gives a drop larger than 3× the fit's RMS residual. Measured at full fidelity "
        "(16 seeds): 35 jumps, 9 coincide (0.26). The late ones (after step 3,000: 3 events of two "
        "simultaneous jumps — a feature rises from 0 to 1/2 while a lone feature drops from ≈ 0.73 to 1/2, "
        "or one at ≈ 1/4 to 0) all coincide: 6 of 6, "
        "drops of 2.7–3.9% against a residual of 0.1–0.4%. The other 29, at steps 1,000–2,800, split the state "
        "reached from the init (all 20 features learned at D ≈ m/n = 1/4) into pairs and unrepresented features — "
        "many features at once while the loss still falls steeply; 3 of 29 clear 3× the residual (32 seeds, 20,000 "
        "samples: 58 jumps, 11 coincide; late 6 of 6). The detector counts that state as a level (it sits there "
        "≥ 5% of training, learned); we do not exclude it after the "
        "fact, so the ≥ 80% check fails. First setting (kept as a superseded row): " + FIRST_SETTING
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        # Small init (×0.01): training leaves the origin feature by feature, so a feature can sit at a level (0) long
        # after the init and then jump; a small model makes one feature's jump a visible part of the loss (§2.7).
        return {"uniform": TrainConfig(n_features=20, n_hidden=5, density=[0.3], restarts=2 if quick else 16,
                                       steps=2_000 if quick else 10_000, record_every=40, init_scale=0.01,
                                       eval_samples=10_000 if quick else 100_000, seed=1)}

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["uniform"]
        h = run.history
        steps, Wh = h["step"], h["W"].double()
        seeds = run.config.n_instances
        found = [detect_jumps(steps, metrics.feature_dimensionality(Wh[:, k]), metrics.feature_norms(Wh[:, k]))
                 for k in range(seeds)]
        shown = max(range(seeds), key=lambda k: (len(found[k]), -k))
        # The fixed-sample loss only where it is needed (the records a jump's fit uses, and the figure's seed), so
        # that the full run stays cheap; other records stay NaN.
        window = _records(steps, 0.05)
        loss = {k: torch.full((len(steps),), float("nan"), dtype=torch.float64) for k in range(seeds)}
        loss[shown] = snapshot_loss(run, _SNAPSHOT_SAMPLES, [shown])[:, 0].double()
        for k, jumps in enumerate(found):
            for j in jumps if k != shown else ():
                idx = list(range(max(0, j["start"] - window), min(len(steps), j["stop"] + window + 1)))
                loss[k][idx] = snapshot_loss(run, _SNAPSHOT_SAMPLES, [k], idx)[:, 0].double()
        per_seed, all_jumps = [], []
        for k, jumps in enumerate(found):
            for j in jumps:
                j.update(loss_drop(loss[k], j["start"], j["stop"], window), seed=k)
            all_jumps += jumps
            per_seed.append({"seed": k, "jumps": len(jumps), "coinciding": sum(j["coincides"] for j in jumps)})
        W = run.W.double()[shown]
        D_final = metrics.feature_dimensionality(W[None])[0]
        learned = metrics.feature_norms(W[None])[0] > metrics.LEARNED_NORM
        coinciding = sum(j["coincides"] for j in all_jumps)
        D_all, norms = metrics.feature_dimensionality(run.W.double()), metrics.feature_norms(run.W.double())
        all_half = sum(bool(((D_all[k] - 0.5).abs() <= 0.05)[norms[k] > metrics.LEARNED_NORM].all())
                       for k in range(seeds))
        checks: list[Check] = [
            at_least("fraction of level-to-level jumps of D_i that coincide with a loss drop",
                     coinciding / len(all_jumps) if all_jumps else float("nan"), 0.8, SRC_E11,
                     f"{coinciding} of {len(all_jumps)} jumps over {seeds} seeds (per seed: "
                     + ", ".join(f"{r['jumps']}/{r['coinciding']}" for r in per_seed if r["jumps"])
                     + " jumps/coinciding where any); the paper: the loss drops at each jump — 80% (issue 12) "
                     "allows a jump whose drop hides in the snapshots' wiggle"),
            superseded(Check("fraction of jumps coinciding with a loss drop, first setting (n = 100, m = 10)",
                             "4/17 = 0.24 (previous detector); 1/2 (this detector)", "≥ 0.8",
                             False, SRC_E11, "measured on the stored full run, not recomputed here"),
                       FIRST_SETTING),
            all_within(f"final D_i of the learned features (seed {shown})", D_final[learned], 0.45, 0.55, SRC_E11,
                       "on the 1/2 plateau every learned feature is in an antipodal pair; ±0.05. The seed is the "
                       "figure's (most jumps), as the paper picks 'one model whose features all end up as digons'; "
                       f"{all_half} of {seeds} seeds end so"),
        ]
        D_shown = metrics.feature_dimensionality(Wh[:, shown])
        ever = (metrics.feature_norms(Wh[:, shown]) > metrics.LEARNED_NORM).any(0)
        figs = [
            figure("traces", "traces", steps, D_shown[:, ever], loss[shown],
                   title=f"seed {shown}: D_i of features ever learned, above the loss",
                   caption="Each learned feature's dimensionality D_i over training (top) above the loss of the "
                           f"snapshots on {_SNAPSHOT_SAMPLES:,} fixed samples (bottom, log). Level-to-level jumps: "
                           + (", ".join(f"feature {j['feature']} {j['before']:g} → {j['after']:g} at step "
                                        f"{j['step']} (drop {100 * j['drop']:.2g}%"
                                        + (", coincides)" if j["coincides"] else ", below 3× the residual)")
                                        for j in all_jumps if j["seed"] == shown) or "none")[:600]),
        ]
        tables = {"per_seed": per_seed, "jumps": [{k: v for k, v in j.items() if k not in ("start", "stop")}
                                                  for j in all_jumps]}
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
    ok = (mutual and cross_set and max(pair_cos) < -0.9 and max(others) < 0.1
          and bool((norms > metrics.LEARNED_NORM).all()))
    return {"octahedron": ok, "max_pair_cos": max(pair_cos), "max_cross_pair_abs_cos": max(others),
            "mutual_pairs": mutual, "pairs_cross_sets": cross_set, "min_norm": float(norms.min())}


@register
class GeometryDynamics(Experiment):
    name = "geometry-dynamics"
    title = "Learning dynamics: training as a sequence of geometric transformations (n = 6, m = 3)"
    claim = (
        "Training an m = 3 model of two correlated sets of three features passes through distinct geometric "
        "stages; the final solution is typically an octahedron whose antipodal pairs join features of different sets."
    )
    spec_ref = "§2.7, E12"
    quick_not_evaluated = (
        # 3,000 steps × 6 seeds end before the octahedron forms (0 of 6 in our quick run).
        "cross-set octahedron",
    )
    notes = (
        "Density (unstated in the paper) 0.1 per correlated set: a set is all-zero with probability 0.9, else its "
        "three values are drawn independently (paper-spec §2.6.4 ii). Uniform importance, 16 seeds, notebook "
        "recipe, weights recorded every 50 steps. Octahedron (E12): each feature's most opposite partner is mutual "
        "with cos < −0.9 and comes from the other set, all ‖W_i‖ > 0.5, and |cos| < 0.1 between different pairs. "
        "The 3-D figure shows the lowest-loss seed at log-spaced steps (features 0–2 in reds = set A, 3–5 in blues = "
        "set B, the same colours in every snapshot)."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        return {"correlated": TrainConfig(n_features=6, n_hidden=3, density=[0.1], distribution="correlated",
                                          set_size=3, restarts=6 if quick else 16, steps=3_000 if quick else 10_000,
                                          record_every=25 if quick else 50, eval_samples=10_000 if quick else 100_000,
                                          seed=2)}

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["correlated"]
        W = run.W.double()
        reports = [octahedron_report(W[k]) for k in range(run.config.n_instances)]
        n_oct = sum(r["octahedron"] for r in reports)
        best = run.best_indices()[0]
        checks: list[Check] = [
            Check("seeds ending in the cross-set octahedron", f"{n_oct}/{len(reports)}", "a majority (> 1/2)",
                  n_oct > len(reports) / 2, SRC_E12, "pair cos < −0.9, cross-pair |cos| < 0.1, all ‖W_i‖ > 0.5"),
            Check("the lowest-loss seed is the cross-set octahedron", reports[best]["octahedron"], "True",
                  reports[best]["octahedron"], SRC_E12, "the paper calls it a strong attractor"),
        ]
        h = run.history
        steps, Wh, loss = h["step"], h["W"].double()[:, best], h["loss"].double()[:, best]
        T = len(steps)
        pick = sorted({0, T - 1, *torch.logspace(0, torch.log10(torch.tensor(T - 1.0)), 10).round().long().tolist()})
        pick = [p for p in pick if p < T]
        colors = ["#b2182b", "#e34a33", "#fc8d59", "#08519c", "#3182bd", "#6baed6"]
        figs = [
            figure("snapshots", "points_3d", Wh[pick], [f"step {int(steps[p])}" for p in pick], feature_colors=colors,
                   title=f"seed {best}: feature directions over training",
                   caption="Feature directions W_i in the 3-D hidden space at log-spaced training steps (slider); "
                           "reds = correlated set A (features 0–2), blues = set B (3–5)."),
            figure("loss", "lines", steps[1:], {"training loss": loss[1:]}, xlabel="step", ylabel="loss", log_x=True,
                   log_y=True, markers=False,
                   vlines={f"{int(steps[p])}": float(steps[p]) for p in pick if p > 0},
                   caption="Training-batch loss of the same seed; dotted lines mark the snapshots."),
        ]
        return Analysis(checks, figs, {"seeds": reports})
