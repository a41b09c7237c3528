"""§2.9 (E14): superposition in a privileged basis — the hidden-ReLU model, n = 10, m = 5, I = 0.75^i.

With a ReLU on the hidden layer, W (neurons × features) is directly interpretable. Dense features get one
monosemantic neuron each (the five most important); as features get sparser, more features are packed into
the five neurons as binary-code-like superposition, ending (density ≤ 0.04 in the paper) with every feature
on a pair of neurons.

The paper shows the lowest-loss of 1000 models per density. Training 1000 × 10k steps per density does not
fit the budget, so restarts are pruned by successive halving on evaluation loss (`successive_halving`):
train every restart a few hundred steps, keep the best fraction, continue the survivors from their weights,
and so on. A smaller exhaustive run (every restart trained to the end) measures how often pruning still
finds the structure that exhaustive training finds, and how many restarts reach the best structure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tmslab import metrics
from tmslab.config import EVAL_SEED, TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import (
    Analysis,
    Check,
    Context,
    Experiment,
    at_least,
    figure,
    load_or_make,
    superseded,
)
from tmslab.io import load_run

SRC = "§2.9, E14"
DENSITIES = [1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.08, 0.05, 0.04, 0.03, 0.02]
QUICK_DENSITIES = [1.0, 0.3, 0.1, 0.03]

#: (restarts alive, train until this cumulative step) per round; the first entry is the initial restart count.
PLAN = [(1000, 500), (250, 2_000), (64, 5_000), (16, 10_000)]
QUICK_PLAN = [(16, 150), (4, 500), (1, 1_500)]
#: The exhaustive comparison: this many restarts per density, each trained for the whole run.
EXHAUSTIVE_K, QUICK_EXHAUSTIVE_K = 16, 4
#: Evaluation samples while screening (paired across restarts); the final round uses config.eval_samples.
SCREEN_EVAL = 10_000
#: Seed of the screening samples: not the final evaluation's (config.EVAL_SEED), so that the restarts kept are not
#: chosen on the very samples that then score them (which biases the reported best loss low).
SCREEN_SEED = EVAL_SEED + 7919
#: §7.2 D13: the pruned best is "at or below" the exhaustive best up to this relative tie (both searches finding the
#: same optimum is the expected outcome; float32 training of one optimum differs in the 5th–6th digit).
TIE = 1e-4

#: §7.1 D8: at equal compute the pruned best must reach ≤ this × the exhaustive best.
EQUAL_COMPUTE_RATIO = 1.005

#: Rel. threshold for "a neuron carries a feature" (paper-spec §3 proposal) and for "a feature uses a neuron" (A5).
NEURON_REL, FEATURE_REL = 0.1, 0.2


# ---- successive halving (reusable) --------------------------------------------------------------------


def select_survivors(eval_loss: Tensor, alive: int, keep: int) -> list[int]:
    """Flat instance indices of the `keep` lowest-loss restarts of every configuration.

    `eval_loss` is [configs × alive] in the on-disk order (configurations outer, restarts inner); the result
    keeps that order, each configuration's survivors sorted by loss (ties to the lower index).
    """
    if eval_loss.numel() % alive:
        raise ValueError(f"{eval_loss.numel()} losses are not a whole number of configurations of {alive}.")
    if not 1 <= keep <= alive:
        raise ValueError(f"keep must be in [1, {alive}], got {keep}.")
    grouped = eval_loss.reshape(-1, alive).double()
    order = torch.argsort(grouped, dim=1, stable=True)[:, :keep]
    return (order + torch.arange(grouped.shape[0])[:, None] * alive).flatten().tolist()


def plan_cost(plan: list[tuple[int, int]]) -> int:
    """Instance-steps per configuration of a successive-halving plan."""
    return sum(k * (s - (plan[i - 1][1] if i else 0)) for i, (k, s) in enumerate(plan))


def check_plan(plan: list[tuple[int, int]]) -> None:
    """A plan is a list of (restarts alive, cumulative steps), alive non-increasing, steps increasing."""
    if not plan:
        raise ValueError("a successive-halving plan needs at least one round.")
    for (k0, s0), (k1, s1) in zip(plan, plan[1:], strict=False):
        if not (1 <= k1 <= k0 and s1 > s0):
            raise ValueError(f"plan rounds must keep ≤ restarts and train further: {plan}.")


def sweep_round(config: TrainConfig, out: Path, progress: bool = False) -> tuple[Tensor, Callable[[list[int]], dict]]:
    """Train every restart of `config` as a `tmslab.sweep` over its densities (packed jobs, resumable, on all
    cores): (eval losses in TrainConfig instance order, a function gathering the weights of chosen instances)."""
    from tmslab.sweep import run_sweep

    base = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("density", "restarts", "seed", "record_every") and v is not None
    }
    spec = {"base": base, "grid": {"density": list(config.density)}, "restarts": config.restarts, "seed": config.seed}
    df = run_sweep(spec, out, progress=progress)  # rows: grid point (density) outer, restart inner

    def gather(idx: list[int]) -> dict[str, Tensor]:
        runs: dict[str, Any] = {}
        picked: dict[str, list[Tensor]] = {}
        for i in idx:
            row = df.iloc[i]
            run = runs.setdefault(row["job_dir"], load_run(out / row["job_dir"]))
            for name, p in run.params.items():
                picked.setdefault(name, []).append(p[int(row["instance"])])
        return {name: torch.stack(v) for name, v in picked.items()}

    return torch.tensor(df["eval_loss"].to_numpy()), gather


def screen_losses(config: TrainConfig, params: dict[str, Tensor], n_samples: int, seed: int = SCREEN_SEED) -> Tensor:
    """The paper's L of every instance of `params` (config's instance layout) on `n_samples` samples drawn with
    `seed`, shared by a configuration's restarts (paired): the screening score of successive halving."""
    from tmslab.training import build, evaluate

    model, dist, importance = build(config)
    model.load_state_dict({k: v.detach().float() for k, v in params.items()})
    return evaluate(model, dist, importance, n_samples, seed=seed, restarts=config.restarts)


def successive_halving(
    config: TrainConfig,
    plan: list[tuple[int, int]],
    screen_eval: int = SCREEN_EVAL,
    progress: bool = False,
    sweep_dir: Path | None = None,
    screen_seed: int = SCREEN_SEED,
) -> tuple[Any, dict[str, Any]]:
    """Best-of-k by successive halving: (TrainResult of the last round's survivors, a record of every round).

    Round 0 trains plan[0][0] restarts per configuration of `config` (its seed, so the first rounds are the
    prefix of an exhaustive run with the same seed and a constant schedule) for plan[0][1] steps. Each later
    round keeps the lowest-eval-loss restarts of every configuration and continues them from their weights
    with a fresh AdamW state and fresh data (seed + round) up to the round's cumulative step count.
    Screening rounds score on `screen_eval` samples drawn with `screen_seed` (paired across restarts; not the final
    evaluation's stream); the last round on config.eval_samples, the run's own evaluation.
    With `sweep_dir`, round 0 — most of the work — runs through the sweep engine (`sweep_round`).
    """
    from tmslab.training import train

    check_plan(plan)
    rounds: list[dict[str, Any]] = []
    lineage: list[int] | None = None  # original restart index of every alive instance (flat, config-major)
    params: dict[str, Tensor] | None = None
    result = None
    done = 0
    for r, (alive, until) in enumerate(plan):
        last = r == len(plan) - 1
        cfg = replace(
            config,
            restarts=alive,
            steps=until - done,
            seed=config.seed + 1009 * r,
            eval_samples=config.eval_samples if last else screen_eval,
        )
        if r == 0:
            if sweep_dir is not None and not last:
                eval_loss, gather = sweep_round(cfg, sweep_dir, progress)
            else:
                result = train(cfg, progress=progress, desc=f"halving round 0 ({alive} restarts)")
                eval_loss, gather = result.eval_loss, lambda idx, res=result: {k: v[idx] for k, v in res.params.items()}
            lineage = [k % alive for k in range(cfg.n_instances)]
        else:
            prev_alive = plan[r - 1][0]
            idx = select_survivors(eval_loss, prev_alive, alive)
            params = gather(idx)
            lineage = [lineage[i] for i in idx]
            result = train(cfg, progress=progress, desc=f"halving round {r} ({alive} restarts)", init_params=params)
            eval_loss, gather = result.eval_loss, lambda idx, res=result: {k: v[idx] for k, v in res.params.items()}
        if not last:  # screen on other samples than the final evaluation's (SCREEN_SEED)
            eval_loss = screen_losses(cfg, gather(list(range(cfg.n_instances))), screen_eval, screen_seed)
        done = until
        rounds.append(
            {
                "restarts": alive,
                "until_step": until,
                "eval_samples": cfg.eval_samples,
                "eval_seed": EVAL_SEED if last else screen_seed,
                "origin": list(lineage),
                "eval_loss": [round(float(v), 8) for v in eval_loss],
            }
        )
    record = {
        "plan": [list(p) for p in plan],
        "screen_eval": screen_eval,
        "screen_seed": screen_seed,
        "base_config": config.to_dict(),
        "rounds": rounds,
    }
    return result, record


def load_or_run_halving(
    path: Path, config: TrainConfig, plan: list[tuple[int, int]], progress: bool = False, sweep: bool = False
):
    """The saved successive-halving run at `path` if it was made from this config and plan, else run and save it."""
    sweep_dir = path.with_name(path.name + "-round0") if sweep else None
    key = {"base_config": config.to_dict(), "plan": [list(p) for p in plan], "screen_seed": SCREEN_SEED}
    return load_or_make(
        path,
        "successive_halving",
        key,
        lambda: successive_halving(config, plan, progress=progress, sweep_dir=sweep_dir),
    )


# ---- structure of a privileged-basis model ----------------------------------------------------------------


def structure(W: Tensor) -> dict[str, Any]:
    """Neuron-level description of one model W [neurons, features] (paper-spec §3 operational definitions)."""
    W = W.double()[None]
    norms = metrics.feature_norms(W)[0]
    learned = norms > metrics.LEARNED_NORM
    npf = metrics.neurons_per_feature(W, FEATURE_REL)[0]
    counts = metrics.neuron_feature_counts(W, NEURON_REL)[0]
    top = W[0].abs().argmax(-1)
    mono = counts == 1
    return {
        "learned": int(learned.sum()),
        "neurons_per_learned_feature": [int(npf[i]) for i in range(W.shape[-1]) if learned[i]],
        "monosemantic": int(mono.sum()),
        "polysemantic": int((counts >= 2).sum()),
        "mono_top_features": sorted(int(top[k]) for k in range(W.shape[1]) if mono[k]),
    }


def _largest_secondary(W: Tensor) -> tuple[int, int, float]:
    """(neuron, feature, |W_kf| / the neuron's largest |weight|) of the largest second-largest weight of any neuron
    in W [neurons, features] — how close the model is to the §3 polysemanticity threshold."""
    A = W.double().abs()
    A = A / A.amax(-1, keepdim=True).clamp_min(1e-12)
    second = A.topk(2, dim=-1)
    k = int(second.values[:, 1].argmax())
    return k, int(second.indices[k, 1]), float(second.values[k, 1])


def signature(W: Tensor) -> str:
    """A neuron-permutation-invariant label of a model's structure, for comparing restarts."""
    s = structure(W)
    npf = ",".join(map(str, s["neurons_per_learned_feature"]))
    return f"{s['learned']} learned; neurons/feature {npf}; {s['polysemantic']} polysemantic"


# ---- is the paper's code better here? ------------------------------------------------------------------


def continuation_test(
    config: TrainConfig, density: float, found: dict[str, Tensor], code: dict[str, Tensor], steps: int
) -> tuple[float, float, dict[str, Any]]:
    """Train two solutions on at `density` for `steps` more steps, evaluated on the same samples: the best one
    found there, and another code (e.g. the winner of a neighbouring density). Returns (loss of the found one,
    loss of the other, the other's structure after training) — whether that code beats what the search found."""
    from tmslab.training import train

    cfg = replace(config, density=[density], restarts=2, steps=steps, seed=config.seed + 7)
    init = {k: torch.stack([found[k], code[k]]) for k in found}
    res = train(cfg, init_params=init)
    return float(res.eval_loss[0]), float(res.eval_loss[1]), structure(res.params["W"][1])


# ---- the experiment ------------------------------------------------------------------------------------


def _base(quick: bool, restarts: int = 1) -> TrainConfig:
    plan = QUICK_PLAN if quick else PLAN
    return TrainConfig(
        model="hidden-relu",
        n_features=10,
        n_hidden=5,
        importance_decay=0.75,
        density=QUICK_DENSITIES if quick else DENSITIES,
        restarts=restarts,
        steps=plan[-1][1],
        eval_samples=20_000 if quick else 100_000,
        seed=100,
    )


def equal_compute_restarts(plan: list[tuple[int, int]]) -> int:
    """Restarts trained to the end that cost what `plan` costs (§7.1 D8: 115 for PLAN)."""
    return round(plan_cost(plan) / plan[-1][1])


def _exhaustive_plan(k: int, plan: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The main plan's keep fractions applied to k restarts (at least one survivor per round)."""
    return [(max(1, round(k * a / plan[0][0])), s) for a, s in plan]


@register
class Privileged(Experiment):
    name = "privileged"
    analysis_trains = "the successive-halving stages"
    title = "Superposition in a privileged basis (hidden-ReLU model, n = 10, m = 5)"
    claim = (
        "With a ReLU hidden layer, dense features get monosemantic neurons (the five most important); as sparsity "
        "grows, more features share the five neurons in binary-code-like polysemantic patterns, until every feature "
        "is a pair of neurons."
    )
    spec_ref = "§2.9, E14"
    quick_not_evaluated = (
        # 16 restarts pruned to one at 1,500 steps: neither the monosemantic nor the all-pairs code forms, and
        # pruning 16 cannot be compared with 4 exhaustive restarts meaningfully.
        "monosemantic neurons over the learned features",
        "neurons per learned feature",
        "loss ratio per density",
    )
    notes = (
        "Hidden-ReLU model x' = ReLU(Wᵀ ReLU(Wx) + b), I = 0.75^i, notebook recipe (AdamW 1e-3, batch 1024, 10k "
        "steps). The paper shows the best of 1000 models per density; we prune restarts by successive halving on "
        f"evaluation loss: {PLAN[0][0]} restarts per density for {PLAN[0][1]} steps, then "
        + ", ".join(f"keep {k} → train to {s} steps" for k, s in PLAN[1:])
        + ", each round continuing the survivors' weights with a fresh AdamW state and fresh data "
        f"(screening evaluations on {SCREEN_EVAL:,} samples shared by a density's restarts, drawn with their own "
        "seed — not from the final evaluation's stream, so the kept restarts are not scored on the samples that "
        "chose them; the final one on 100,000). "
        f"A separate exhaustive run ({EXHAUSTIVE_K} restarts per density, all trained to {PLAN[-1][1]} steps) measures "
        "how many restarts reach the best structure, and pruning is re-run on those same seeds (its first round is "
        "the exhaustive runs' prefix; the same keep fractions, at least one survivor) to measure whether pruning "
        "finds what exhaustive training finds. "
        "Densities: 1, 0.5, 0.3, 0.2, 0.15, 0.12, 0.08, 0.05, 0.04, 0.03, 0.02 (the paper's regimes). Neuron "
        "measures (paper-spec §3, thresholds ours): a neuron is monosemantic / polysemantic when exactly one / "
        "≥ 2 features have |W_kf| > 0.1 · the neuron's largest |weight|; a feature uses a neuron when its "
        "positive weight there exceeds 0.2 · the feature's largest positive weight (A5); learned = ‖W_i‖ > 0.5. "
        "Structure signature = (learned features, neurons per learned feature in importance order, polysemantic "
        "neurons). Early evaluation loss ranks restarts poorly at this size (`benchmarks/bench_pruning.py`, held-out "
        "seeds 200 and 300): the plan's fractions applied to 16 restarts find the exhaustive best (±1%) at 4 of 11 "
        "densities on each seed; plans costing up to 2.8× more reach 6–8; and the same rounds without pruning (all 16"
        " continued, with a fresh AdamW state and data each round) reach only 9, the bar of our same-seed check. At "
        "equal compute (115 restarts trained to the end, seed 100), the pruned best of 1000 has the lower loss at 8 "
        "of 11 densities (by up to 6% where good codes are rare) and loses by 0.6–2.7% at 0.15, 0.12 and 0.05 — "
        "pruning pays through the number of restarts it can afford, not an accurate early ranking. Where the best "
        "model at density ≤ 0.04 is not the all-pairs code, the nearest sparser density's all-pairs winner is trained"
        " on at that density beside it, to tell an unfound optimum from a different one.\n\n"
        "Paper-spec §7.1: D6 — a neuron's monosemanticity at density ≥ 0.5 is judged over the learned features only "
        "(weight on unlearned ones ignored; the all-features reading stays as a superseded row); D7 — the all-pairs "
        "code is checked at density 0.03 (and 0.02), and 0.04 is a superseded row with the continuation result as "
        "its evidence; D8 — the pruning acceptance is the equal-compute comparison: the pruned best of 1000 within "
        f"{EQUAL_COMPUTE_RATIO} × the best of as many restarts trained to the end as the same instance-steps buy (115) "
        "at ≥ 8 of 11 densities, and below the exhaustive best of 16 at all 11; the same-seed ±1% comparison stays as "
        "a superseded row. The pruning checks are sanity checks (our method, not a paper claim). §7.2 D13: 'below "
        "the exhaustive best of 16' becomes 'at or below (relative tie within 1e-4)' — both searches finding the same "
        "optimum is the expected outcome; the strict row stays as superseded. The all-pairs row requires all 10 "
        "features learned besides 2 neurons per learned feature (the paper: 'each feature = a pair of neurons, the "
        "densest code with 10 features'; the previous version judged the learned features only). The screening "
        "seed changed after the last full measurement (2026-12-01): the numbers quoted above (equal compute 8 of 11, "
        "held-out seeds) were measured with screening on the final evaluation's first 10,000 samples. Null model "
        "(D20): a Xavier init has ‖W_i‖ ≈ 0.8, so all 10 features count as learned at every density — the "
        "'5 → ≥ 8' row fails at its dense end, the monosemantic rows find no monosemantic neuron."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        k = QUICK_EXHAUSTIVE_K if quick else EXHAUSTIVE_K
        equal = equal_compute_restarts(QUICK_PLAN if quick else PLAN)
        return {"exhaustive": _base(quick, restarts=k), "exhaustive-equal-compute": _base(quick, restarts=equal)}

    def fidelity(self, quick: bool) -> str:
        plan = QUICK_PLAN if quick else PLAN
        c = _base(quick)
        rounds = " → ".join(f"{k} to step {s}" for k, s in plan)
        return (
            f"pruned: hidden-relu n=10, m=5, {c.n_configs} densities, successive halving {rounds}, batch "
            f"{c.batch_size}, eval on {c.eval_samples} samples; " + super().fidelity(quick)
        )

    def analyze(self, ctx: Context) -> Analysis:
        quick = ctx.quick
        plan = QUICK_PLAN if quick else PLAN
        pruned = load_or_run_halving(ctx.out / "pruned", _base(quick), plan, sweep=True)
        exh = ctx.runs["exhaustive"]
        k_small = exh.config.restarts
        small_plan = _exhaustive_plan(k_small, plan)
        pruned_small = load_or_run_halving(ctx.out / "pruned-small", replace(exh.config, restarts=1), small_plan)

        dens = [float(d) for d in pruned.config.density]
        best = pruned.best_indices()
        W = pruned.W.double()
        S = [structure(W[i]) for i in best]
        checks: list[Check] = []

        # Dense: five monosemantic neurons, one for each of the five most important features; §7.1 D6 judges a
        # neuron over the learned features only (‖W_i‖ > 0.5), ignoring weight on unlearned ones.
        for c, (d, s) in enumerate(zip(dens, S, strict=True)):
            if d >= 0.5:
                Wc = W[best[c]]
                learned_f = metrics.feature_norms(Wc[None])[0] > metrics.LEARNED_NORM
                sl = structure(Wc * learned_f)
                ok = sl["monosemantic"] == 5 and sl["mono_top_features"] == [0, 1, 2, 3, 4]
                checks.append(
                    Check(
                        f"density {d:g}: monosemantic neurons over the learned features, and which",
                        f"{sl['monosemantic']} mono; features {sl['mono_top_features']}",
                        "5 mono; features [0, 1, 2, 3, 4]",
                        ok,
                        SRC + "; §7.1 D6",
                        f"monosemantic = one learned feature above {NEURON_REL} × the neuron's largest "
                        f"|weight|; learned features: {torch.nonzero(learned_f).flatten().tolist()}",
                    )
                )
                ok_all = s["monosemantic"] == 5 and s["mono_top_features"] == [0, 1, 2, 3, 4]
                k, f, rel = _largest_secondary(Wc)
                checks.append(
                    superseded(
                        Check(
                            f"density {d:g}: monosemantic neurons over all features (the spec's first reading)",
                            f"{s['monosemantic']} mono; features {s['mono_top_features']}",
                            "5 mono; features [0, 1, 2, 3, 4]",
                            ok_all,
                            SRC,
                        ),
                        f"§7.1 D6: weight on unlearned features is ignored — the largest second weight is {rel:.3f} × "
                        f"(neuron {k}, feature {f}, whose ‖W_f‖ = {float(Wc[:, f].norm()):.2f})",
                    )
                )
        # Sparse: every learned feature on exactly two neurons. Where the best model is not that code, the
        # nearest sparser density's all-pairs winner is trained on at this density beside it: is the code
        # better here and only unfound, or is the found solution better?
        contrast = {}
        for c, (d, s) in enumerate(zip(dens, S, strict=True)):
            pair_code = next(
                (j for j in range(c + 1, len(dens)) if S[j]["neurons_per_learned_feature"] == [2] * W.shape[-1]), None
            )
            if d <= 0.04:
                npf = s["neurons_per_learned_feature"]
                n_feat = W.shape[-1]
                # The paper's code at density ≤ 0.04 is "each feature = a pair of neurons (densest code with 10
                # features)": every feature learned, not only the learned ones on pairs (a model that drops
                # features but pairs the rest is another code).
                ok = s["learned"] == n_feat and all(v == 2 for v in npf)
                note = (
                    f"a feature uses a neuron where its positive weight > {FEATURE_REL} × its largest (A5); all "
                    f"{n_feat} features learned (‖W_i‖ > 0.5) is required too; A5 found 2–3 neurons per feature "
                    "at density 0.03 with best of 1000 at 5k steps"
                )
                if not ok and pair_code is not None and not quick:
                    found = {k: v[best[c]] for k, v in pruned.params.items()}
                    code = {k: v[best[pair_code]] for k, v in pruned.params.items()}
                    lf, lc, sc = continuation_test(pruned.config, d, found, code, plan[-1][1])
                    contrast[f"{d:g}"] = {
                        "found_loss": lf,
                        "pair_code_loss": lc,
                        "pair_code_after": sc,
                        "pair_code_from_density": dens[pair_code],
                    }
                    note += (
                        f". Both the best model and density {dens[pair_code]:g}'s all-pairs winner trained "
                        f"{plan[-1][1]:,} more steps here: L = {lf:.6f} vs {lc:.6f} "
                        f"({(lc / lf - 1) * 100:+.1f}%; after training the code has "
                        f"{sc['learned']} learned features on {sc['neurons_per_learned_feature']} neurons)"
                    )
                row = Check(
                    f"density {d:g}: learned features, and neurons per learned feature",
                    f"{s['learned']} learned; {npf}",
                    f"{n_feat} learned; all 2",
                    ok,
                    SRC,
                    note,
                )
                if d == 0.04:  # §7.1 D7: the all-pairs code is checked at 0.03, 0.04 is an observation
                    row = superseded(
                        row,
                        "§7.1 D7: the all-pairs code is checked at density 0.03 (and 0.02); at "
                        "0.04 it is reported as an observation"
                        + (note[note.index(". Both") :] if ". Both" in note else ""),
                    )
                checks.append(row)
        learned = [s["learned"] for s in S]
        mono_dec = all(b >= a for a, b in zip(learned, learned[1:], strict=False))
        checks.append(
            Check(
                "learned features (‖W_i‖ > 0.5) from dense to sparse",
                learned,
                "non-decreasing, 5 → ≥ 8",
                mono_dec and learned[0] == 5 and learned[-1] >= 8,
                SRC,
                "integer counts of the best model per density; no tolerance",
            )
        )

        # Pruning vs exhaustive training on the same seeds.
        eb, pb = exh.best_indices(), pruned_small.best_indices()
        We, Wp = exh.W.double(), pruned_small.W.double()
        le, lp = exh.eval_loss, pruned_small.eval_loss
        comparison = []
        for c, d in enumerate(dens):
            sig_e, sig_p = signature(We[eb[c]]), signature(Wp[pb[c]])
            sigs = [signature(We[c * k_small + r]) for r in range(k_small)]
            comparison.append(
                {
                    "density": d,
                    "exhaustive_best": sig_e,
                    "pruned_best": sig_p,
                    "same_structure": sig_e == sig_p,
                    "exhaustive_loss": float(le[eb[c]]),
                    "pruned_loss": float(lp[pb[c]]),
                    "restarts_reaching_best_structure": f"{sigs.count(sig_e)}/{k_small}",
                }
            )
        same = sum(r["same_structure"] for r in comparison)
        close = sum(r["pruned_loss"] <= r["exhaustive_loss"] * 1.01 for r in comparison)
        # §7.1 D8: the pruning acceptance is the equal-compute comparison (the same evaluation samples per density).
        eq = ctx.runs["exhaustive-equal-compute"]
        k_eq = eq.config.restarts
        eq_best = eq.best_indices()
        eq_ratio = [float(pruned.eval_loss[best[c]] / eq.eval_loss[eq_best[c]]) for c in range(len(dens))]
        main_ratio = [float(pruned.eval_loss[best[c]] / exh.eval_loss[eb[c]]) for c in range(len(dens))]
        need = math.ceil(8 / 11 * len(dens))
        n_eq = sum(v <= EQUAL_COMPUTE_RATIO for v in eq_ratio)
        checks += [
            Check(
                f"pruned best of {plan[0][0]} vs exhaustive best of {k_eq} at equal compute: densities with loss "
                f"ratio ≤ {EQUAL_COMPUTE_RATIO}",
                f"{n_eq} of {len(dens)}",
                f"≥ {need} of {len(dens)}",
                n_eq >= need,
                SRC + "; §7.1 D8",
                "our acceptance for the pruning method (not a paper claim); per-density ratios "
                f"{[round(v, 4) for v in eq_ratio]}",
                kind="sanity",
            ),
            Check(
                f"pruned best of {plan[0][0]} vs exhaustive best of {k_small}: loss ratio per density",
                [round(v, 6) for v in main_ratio],
                f"all ≤ 1 + {TIE:g} (at or below; a relative tie within {TIE:g})",
                all(v <= 1 + TIE for v in main_ratio),
                SRC + "; §7.1 D8, §7.2 D13",
                "our acceptance for the pruning method (not a paper claim); §7.2 D13: both searches finding the same "
                f"optimum is the expected outcome, so a tie within {TIE:g} (relative; float32 training of one "
                "optimum differs in the 5th–6th digit) counts as at or below",
                kind="sanity",
            ),
            superseded(
                Check(
                    f"pruned best of {plan[0][0]} below the exhaustive best of {k_small} at every density",
                    [round(v, 6) for v in main_ratio],
                    "all < 1 (pruning beats it)",
                    all(v < 1 for v in main_ratio),
                    SRC + "; §7.1 D8",
                    kind="sanity",
                ),
                "§7.2 D13: 'below' becomes 'at or below (relative tie within 1e-4)' — both searches finding "
                "the same optimum is the expected outcome",
            ),
            superseded(
                at_least(
                    f"densities where pruning {k_small} restarts finds the exhaustive best's loss (±1%)",
                    close,
                    math.ceil(0.8 * len(dens)),
                    SRC,
                    kind="sanity",
                ),
                "§7.1 D8: replaced by the equal-compute comparison — early evaluation loss ranks restarts poorly at "
                "this size (held-out seeds 200 and 300: 4 of 11 each, 9 of 11 without pruning; "
                "benchmarks/bench_pruning.py)",
            ),
        ]
        # Reported, not judged (a table entry, not a check): the structure signature is sensitive to weights
        # near the thresholds.
        tables_extra = {
            "densities_where_pruning_finds_the_exhaustive_structure": f"{same}/{len(dens)}",
            "equal_compute_loss_ratio": eq_ratio,
            "equal_compute_restarts": k_eq,
        }

        reach = []
        for c, _ in enumerate(dens):
            sig = signature(W[best[c]])
            reach.append(f"{[signature(We[c * k_small + r]) for r in range(k_small)].count(sig)}/{k_small}")

        titles = [
            f"density {d:g}: {s['monosemantic']} mono / {s['polysemantic']} poly" for d, s in zip(dens, S, strict=True)
        ]
        figs = [
            figure(
                "weights",
                "weight_matrix",
                W[best],
                titles,
                ncols=4,
                caption="Best (pruned) model per density: W (neurons × features), features in importance order.",
            ),
            figure(
                "neuron-stacks",
                "neuron_stack",
                W[best],
                titles,
                order="largest-feature",
                ncols=4,
                caption="Neuron stack plots: one column per neuron, a rectangle of height |W_kf| per feature "
                "(colour = importance rank, dark = most important), negative weights below the axis.",
            ),
            figure(
                "neuron-counts",
                "lines",
                dens,
                {
                    "monosemantic neurons": [s["monosemantic"] for s in S],
                    "polysemantic neurons": [s["polysemantic"] for s in S],
                    "learned features": learned,
                },
                xlabel="feature density 1−S",
                ylabel="count",
                log_x=True,
                caption="Mono/polysemantic neurons (§3 operational definition) and learned features per density.",
            ),
        ]
        tables = {
            "per_density": [
                {
                    "density": d,
                    **s,
                    "signature": signature(W[best[c]]),
                    "eval_loss": float(pruned.eval_loss[best[c]]),
                    "exhaustive_restarts_with_this_structure": reach[c],
                    "loss_vs_exhaustive_best": round(main_ratio[c], 5),
                }
                for c, (d, s) in enumerate(zip(dens, S, strict=True))
            ],
            "pruning_vs_exhaustive": comparison,
            "pair_code_continuation": contrast,
            **tables_extra,
        }
        return Analysis(checks, figs, tables)
