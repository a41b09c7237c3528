"""§6.2 / §6.6 (F3): sparse autoencoders recover known features — on Sharkey et al.'s toy data and on the
hidden layer of trained toy models. Needs the `sae` extra (SAELens); without it the experiments report
every check as not evaluated, with the install line as the reason.

Standard and TopK SAEs are trained by tmslab.sae_batched (SAELens's training semantics, many SAEs per
loop), the other architectures by SAELens's SAETrainer; every SAE is saved in SAELens's format under
DIR/<experiment>/saes/<name>/ with its metrics (tmslab_sae.json); a re-run reuses every saved SAE whose
settings and source match. Every metric is of the weights on disk (the saved, inference form of each SAE), so
the null-model pass (paper-spec §7.2 D20), which puts the SAEs back to their initialisation, is judged on them.
"""

from __future__ import annotations

import json
from typing import Any

from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, figure, needs


def _saved(ctx: Context, name: str, source: Any, settings: Any) -> dict[str, Any] | None:
    """The record of SAE `name` on disk when its settings and source match, else None."""
    from dataclasses import asdict

    from tmslab import sae

    try:
        record = json.loads((ctx.out / "saes" / name / sae.METRICS_FILE).read_text())
        if record["settings"] == asdict(settings) and record["source"] == json.loads(json.dumps(source.describe())):
            return record
    except (OSError, ValueError, KeyError):
        pass
    return None


def _fit(ctx: Context, jobs: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """Metrics of the SAEs (name, source, settings), always those of the weights saved under DIR/saes/<name>: a
    saved SAE whose settings and source match is reused and scored by `tmslab.sae.saved_metrics` (its record if
    the weights file is the one recorded, else scored again — the null-model pass, D20, replaces the weights);
    the rest are trained per source with tmslab.sae_batched.train_many (standard / TopK batched, others SAELens)
    and scored on the saved (inference) SAE."""
    from tmslab.sae import saved_metrics
    from tmslab.sae_batched import train_many

    metrics = {}
    todo: dict[int, tuple[Any, list[tuple[str, Any]]]] = {}
    for name, src, s in jobs:
        if _saved(ctx, name, src, s) is not None:
            metrics[name] = saved_metrics(ctx.out / "saes" / name, src)
        else:
            todo.setdefault(id(src), (src, []))[1].append((name, s))
    (ctx.out / "saes").mkdir(parents=True, exist_ok=True)
    for src, items in todo.values():
        results = train_many(src, [s for _, s in items], [ctx.out / "saes" / n for n, _ in items], force=True)
        metrics.update({n: r.metrics for (n, _), r in zip(items, results, strict=True)})
    return [metrics[name] for name, _, _ in jobs]


def _missing_extra() -> str | None:
    from tmslab.sae import SAEExtraMissing, require_saelens

    try:
        require_saelens()
    except SAEExtraMissing as e:
        return str(e)
    return None


def _not_evaluated(names: list[str], reason: str, src: str) -> list[Check]:
    return [Check(n, None, "—", False, src, kind="claim", status="not evaluated", reason=reason) for n in names]


# ---- sae-synthetic ---------------------------------------------------------------------------------

F3 = "§6.2, F3-SAE"
RATIOS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
#: Half-decade steps over two decades. The first grid, {0.003, 0.01, 0.03, 0.1}, had every ratio's best MMCS at its
#: top value (ratio 1: 0.93 at 0.1) and ≤ 0.56 everywhere at 0.003, so the optimum was not bracketed; 1.0 is
#: α = 128 in the post's units (α · ‖c‖₁ / dictionary size, at ratio 1), just past the spec's α range (≤ 100).
L1S = [0.01, 0.03, 0.1, 0.3, 1.0]
QUICK_RATIOS = [0.25, 1.0, 2.0]
QUICK_L1S = [0.3, 1.0]
#: Activations per SAE: 1,953 steps of batch 256 at both fidelities (quick differs by the size of the problem).
SAMPLES = 500_000
RECOVER = "every dictionary ratio ≥ 1 reaches MMCS ≥ 0.95 at its best L1"
DEAD = "the dead-latent fraction rises with the dictionary ratio from 1 to 8"
SMALL = "a ratio-0.25 dictionary stays below MMCS 0.95"
F3_CLAIMS = [RECOVER, DEAD]


def synthetic_checks(rows: list[dict[str, Any]], n_true: int) -> list[Check]:
    """The F3 checks from the grid's rows (l1, ratio, mmcs, dead, dead_fraction per SAE) — a function of the
    scored SAEs alone, so that a test can judge it on SAEs at initialisation (paper-spec §7.2 D20).

    RECOVER: per ratio ≥ 1, the best MMCS over the L1 grid; every one must reach 0.95 (the spec's claim is about
    every dictionary at least as large as G, not the best cell of the grid). DEAD: at the L1 whose ratio-≥ 1
    SAEs have the highest mean MMCS (the L1 that recovers the features), the dead fractions at ratios 1, 2, 4, 8
    never fall and the one at 8 exceeds the one at 1 — fractions, since the dictionaries are 1× to 8× G; needs
    ratios 1 and 8 in the grid (full fidelity). SMALL (sanity): a quarter-size dictionary has G/4 atoms for G
    directions in general position, so at most G/4 features can sit at cosine ≈ 1 and the rest cannot bring the
    mean to 0.95 — a capacity bound any dictionary of that size meets, the untrained one included."""
    ratios = sorted({r["ratio"] for r in rows})
    l1s = sorted({r["l1"] for r in rows})

    def cell(l1: float, ratio: float) -> dict[str, Any]:
        return next(r for r in rows if r["l1"] == l1 and r["ratio"] == ratio)

    best = {q: max(cell(a, q)["mmcs"] for a in l1s) for q in ratios if q >= 1}
    recover = Check(
        RECOVER,
        {f"ratio {q:g}": round(v, 4) for q, v in best.items()},
        "each ≥ 0.95",
        bool(best) and all(v >= 0.95 for v in best.values()),
        F3,
        "the spec's threshold (unverified; the post reports near 1); each ratio at its best L1 of the grid",
    )
    big = [q for q in ratios if q >= 1]
    l1 = max(l1s, key=lambda a: sum(cell(a, q)["mmcs"] for q in big) / max(1, len(big)))
    chain = [q for q in (1.0, 2.0, 4.0, 8.0) if q in ratios]
    frac = {q: cell(l1, q)["dead_fraction"] for q in chain}
    ok = (
        1.0 in frac
        and 8.0 in frac
        and frac[8.0] > frac[1.0]
        and all(frac[b] >= frac[a] for a, b in zip(chain, chain[1:], strict=False))
    )
    dead = Check(
        DEAD,
        {f"ratio {q:g}": round(v, 4) for q, v in frac.items()},
        "non-decreasing over ratios 1, 2, 4, 8 and higher at 8 than at 1",
        ok,
        F3,
        f"dead = never active on the evaluation samples; fractions of the dictionary; at L1 = {l1:g}, the L1 "
        "with the best mean MMCS over ratios ≥ 1",
    )
    if not (1.0 in ratios and 8.0 in ratios):
        needs(dead, "full")
    small = [cell(a, 0.25)["mmcs"] for a in l1s] if 0.25 in ratios else []
    capacity = Check(
        SMALL,
        round(max(small), 4) if small else None,
        "< 0.95",
        bool(small) and max(small) < 0.95,
        F3,
        f"sanity, not a claim: {round(0.25 * n_true)} atoms for {n_true} features cap MMCS well below "
        "0.95 for any dictionary of that size (the untrained one too), so it cannot tell training "
        "from none (D20)",
        kind="sanity",
    )
    return [recover, dead, capacity]


@register
class SAESynthetic(Experiment):
    name = "sae-synthetic"
    analysis_trains = "the SAEs"
    title = "SAEs recover ground-truth features of Sharkey et al.'s toy data"
    claim = (
        "An L1 sparse autoencoder recovers the ground-truth features (MMCS near 1) when its dictionary is at least "
        "as large as the true feature count; dead latents appear past that size, the loss stops improving and "
        "dictionaries of neighbouring sizes agree most around it."
    )
    spec_ref = "§6.2, F3-SAE"
    notes = (
        "CPU size (ours): G = 128 ground-truth features in h = 64 dimensions (the post's G = 512, h = 256 is "
        "SharkeySource(512, 256)), 5 active on average, probabilities decayed by 0.99^i (Cunningham's "
        "multiplicative form; the post's exact form is unverified), correlated through a random covariance. SAE: "
        "SAELens's standard architecture (ReLU encoder, L1 penalty weighted by decoder norms, b_dec) with the post's "
        "Adam lr 1e-3 and batch 256, trained by tmslab's batched trainer (SAELens's training semantics, tested "
        "against SAELens; saved in SAELens's format) — SAELens's recipe rather than the post's unit-norm decoder "
        "without bias; its L1 is not divided by the dictionary size (the post's α = L1 × dictionary size). Grid: "
        "L1 ∈ {0.01, 0.03, 0.1, 0.3, 1} × ratio ∈ {0.25, 0.5, 1, 2, 4, 8} (the spec's 0.25–32 cut at 8 for CPU), "
        "500k activations each; the L1 grid was moved up half a decade from {0.003, …, 0.1}, whose top value was "
        "every ratio's best (the optimum was not bracketed). Quick fidelity: G = 16 in h = 8, 2 active on average, "
        "L1 ∈ {0.3, 1} × ratio ∈ {0.25, 1, 2}, the same 500k activations (tiny SAEs: about a second). Claims: "
        "(1) every ratio ≥ 1 reaches MMCS ≥ 0.95 at its best L1 (the spec's 0.95 is unverified; the post reports "
        "near 1) — each ratio, not the best cell of the grid; (2) dead-latent *fractions* (the dictionaries are "
        "1× to 8× G, so counts are not comparable) at ratios 1, 2, 4, 8 never fall and are higher at 8 than at 1, "
        "at the L1 with the best mean MMCS over ratios ≥ 1; needs ratios 1–8, so full fidelity. Dead = never "
        "active on the evaluation samples (65,536 fresh ones; 8,192 at quick). 'Ratio 0.25 stays below 0.95' is "
        "sanity, not a claim: G/4 atoms for G features in general position cap MMCS far below 0.95 for any "
        "dictionary, the untrained one included, so it cannot tell training from none (§7.2 D20); 'MMCS rises "
        "with the ratio up to 1' was not taken as the replacement claim because random dictionaries also score "
        "higher the more atoms they have. D20: every claim fails on the SAEs at initialisation (tested; the "
        "null-model pass resets saved SAEs too, and every metric is of the weights on disk). Cross-size MMCS "
        "(table): MMCS of ratio r's atoms against ratio 2r's, at the best L1."
    )

    def _grid(self, quick: bool) -> tuple[list[float], list[float]]:
        return (QUICK_L1S, QUICK_RATIOS) if quick else (L1S, RATIOS)

    def _source(self, quick: bool) -> Any:
        from tmslab.sae import SharkeySource

        return SharkeySource(16, 8, 2.0, seed=0) if quick else SharkeySource(128, 64, 5.0, seed=0)

    def fidelity(self, quick: bool) -> str:
        l1s, ratios = self._grid(quick)
        size = "G = 16 in h = 8, 2 active on average" if quick else "G = 128 in h = 64, 5 active on average"
        return (
            f"{size}; 500k activations (1,953 steps of 256) per SAE; L1 {l1s} × ratio {ratios}; standard SAEs "
            "(batched trainer, SAELens semantics)"
        )

    def analyze(self, ctx: Context) -> Analysis:
        import torch

        from tmslab.sae import SAESettings, cosines, load

        source = self._source(ctx.quick)
        self_mmcs = float(cosines(source.features, source.features).max(dim=1).values.mean())
        invariant = Check(
            "ground-truth dictionary scores MMCS 1 against itself",
            self_mmcs,
            "1 ± 1e-6",
            abs(self_mmcs - 1) < 1e-6,
            F3,
            "metric invariant",
            kind="sanity",
        )
        missing = _missing_extra()
        if missing:  # the invariant needs no SAE, so it is checked either way
            return Analysis([*_not_evaluated(F3_CLAIMS, missing, F3), invariant])
        l1s, ratios = self._grid(ctx.quick)
        samples = SAMPLES
        cells = [(l1, ratio) for l1 in l1s for ratio in ratios]
        jobs = [
            (
                f"l1-{l1:g}-ratio-{ratio:g}",
                source,
                SAESettings(
                    arch="standard",
                    ratio=ratio,
                    l1=l1,
                    samples=samples,
                    batch_size=256,
                    lr=1e-3,
                    eval_samples=8192 if ctx.quick else 65_536,
                ),
            )
            for l1, ratio in cells
        ]
        rows = []
        for (l1, ratio), (name, _, _), m in zip(cells, jobs, _fit(ctx, jobs), strict=True):
            rows.append(
                {
                    "name": name,
                    "l1": l1,
                    "ratio": ratio,
                    **{
                        k: m[k]
                        for k in (
                            "mmcs",
                            "mcc",
                            "recovered",
                            "dead",
                            "dead_fraction",
                            "l0",
                            "nmse",
                            "shrinkage",
                            "n_latents",
                        )
                    },
                }
            )
        checks = [*synthetic_checks(rows, source.n_true), invariant]
        best_l1 = max(l1s, key=lambda a: max(r["mmcs"] for r in rows if r["l1"] == a))
        cross = []
        for a, b in zip(ratios, ratios[1:], strict=False):
            sa, _ = load(ctx.out / "saes" / f"l1-{best_l1:g}-ratio-{a:g}")
            sb, _ = load(ctx.out / "saes" / f"l1-{best_l1:g}-ratio-{b:g}")
            with torch.no_grad():
                c = cosines(sa.W_dec.float(), sb.W_dec.float()).max(dim=1).values.mean()
            cross.append({"ratio": a, "next_ratio": b, "cross_mmcs": float(c)})
        figs = []
        shown = (("mmcs", "MMCS"), ("dead_fraction", "dead latents (fraction)"), ("nmse", "normalised MSE"))
        for metric, label in shown:
            grid = [[next(r[metric] for r in rows if r["l1"] == a and r["ratio"] == q) for q in ratios] for a in l1s]
            figs.append(
                figure(
                    f"{metric}-heatmap",
                    "heatmap2d",
                    ratios,
                    l1s,
                    grid,
                    xlabel="dictionary ratio (× G)",
                    ylabel="L1 coefficient",
                    zlabel=label,
                    log_x=True,
                    log_y=len(l1s) > 1,
                    title=f"{label} over L1 × ratio",
                    caption=f"{label} of standard SAEs over L1 coefficient × dictionary size.",
                )
            )
        return Analysis(
            checks, figs, {"grid": rows, "cross_size_mmcs": cross, "best_l1": best_l1, "source": source.describe()}
        )


# ---- sae-tms ---------------------------------------------------------------------------------------

TMS = "§6.6, sae-tms (issue 16)"
ARCHS = ["topk", "batchtopk", "matryoshka", "standard", "jumprelu"]
TMS_L1S = [0.003, 0.03, 0.3]
TARGET = "tms-40-10"
TMS_CLAIM = "the 40-10 model represents all 40 features and TopK at the true L0 recovers them (MMCS ≥ 0.9)"
#: Quick fidelity's SAE recipe: Sharkey et al.'s Adam lr 1e-3 and batch 256 (§6.2) on 100k activations — 390 steps,
#: about a second; full fidelity keeps SAELens's defaults (lr 3e-4, batch 1024) on 1M activations.
QUICK_SAE = {"samples": 100_000, "batch_size": 256, "lr": 1e-3, "eval_samples": 8192}


def true_l0(source: Any) -> float:
    """Expected number of active learned features per sample: Σ_i density_i over the learned features."""
    return float(source.distribution.density[0, source.learned].sum())


def tms_check(rows: list[dict[str, Any]], n_features: int) -> Check:
    """The sae-tms claim from the SAE table: the target model learned all its features (‖W_i‖ > 0.5; the 40-10
    decomposition target is a model holding 40 features in 10 dimensions — an untrained one holds fewer) and its
    TopK SAE at the true L0 scores MMCS ≥ 0.9 against them (an untrained SAE scores about 0.75: 160 random atoms in
    10 dimensions). Both halves must hold (paper-spec §7.2 D20)."""
    topk = next((r for r in rows if r["model"] == TARGET and r["arch"] == "topk"), None)
    if topk is None or topk.get("mmcs") is None:
        learned = topk["n_true"] if topk else 0
        return Check(
            TMS_CLAIM,
            {"learned": learned, "MMCS": None},
            f"learned = {n_features} and MMCS ≥ 0.9",
            False,
            TMS,
            "the target model has no learned feature to recover",
        )
    ok = topk["n_true"] == n_features and topk["mmcs"] >= 0.9
    return Check(
        TMS_CLAIM,
        {"learned": topk["n_true"], "MMCS": round(topk["mmcs"], 4)},
        f"learned = {n_features} and MMCS ≥ 0.9",
        ok,
        TMS,
        f"k = {topk['k']} (true L0 {topk['true_l0']}); 0.9 is the issue's threshold; the learned count "
        "tells the trained target from an untrained model (its initialisation has 28 of 40 features with "
        "‖W_i‖ > 0.5)",
    )


@register
class SAETms(Experiment):
    name = "sae-tms"
    analysis_trains = "the SAEs"
    title = "SAEs on the hidden layer of toy models in superposition"
    claim = (
        "SAEs trained on a toy model's hidden activations recover its learned feature directions; TopK at the true "
        "L0 reaches MMCS ≥ 0.9 on the 40-10 decomposition target, which holds all 40 features in 10 dimensions."
    )
    spec_ref = "§6.6, issue 16"
    notes = (
        "Targets (§6.6): n = 40, m = 10, density 0.05, I = 1 (the parameter-decomposition papers' '40-10'; trained "
        "here with AdamW lr 5e-3, 10k steps × batch 1024 instead of their batch 8192, to fit a CPU; 1k steps at "
        "quick fidelity), and n = 400, m = 30 at density 0.01 (E4's model, sparse end; full fidelity only). Ground "
        "truth = learned features (‖W_i‖ > 0.5); true L0 = Σ density over them; k = max(1, round(true L0)). Every "
        "SAE: dictionary ratio 4, activations sampled from the run's own distribution (its densities, value range "
        "and sign; a saved SAE is reused only for the same densities, values and weights); full fidelity: 1M "
        "activations, SAELens defaults otherwise (lr 3e-4, batch 1024); quick fidelity: TopK and standard (L1 0.1) "
        "only, on 100k activations with Sharkey et al.'s lr 1e-3 and batch 256 (§6.2) so that the TopK claim can be "
        "judged in about a second. Standard and topk through tmslab's batched trainer (SAELens's semantics, tested "
        "against it), the others through SAELens's SAETrainer. Every metric is measured on the SAE as saved "
        "(SAELens's inference SAE: batchtopk and matryoshka become JumpReLU SAEs with the training run's threshold "
        "estimate; their training-form L0 on the same samples is the table's l0_training). Architectures: topk, "
        "batchtopk, matryoshka (k = true L0), standard and jumprelu over the sparsity grid {0.003, 0.03, 0.3}. The "
        "claim (0.9 is the issue's threshold) also requires the target to hold all 40 features: D20's null model — "
        "the toy model at its initialisation — has 28 features with ‖W_i‖ > 0.5 and random directions, and an SAE "
        "at its initialisation scores MMCS ≈ 0.75. Absorption (table only): the 40-10 model's first 8 learned "
        "features as 4 parent → child pairs (a child fires only with its parent; its density becomes the "
        "product), a TopK SAE on that stream; tmslab.sae.absorption's excess of P(parent latent silent | child on) "
        "over P(silent | parent alone)."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        steps = 1_000 if quick else 10_000
        ev = 10_000 if quick else 100_000
        out = {
            TARGET: TrainConfig(
                n_features=40, n_hidden=10, density=[0.05], lr=5e-3, steps=steps, eval_samples=ev, seed=1
            )
        }
        if not quick:
            out["tms-400-30"] = TrainConfig(
                n_features=400, n_hidden=30, density=[0.01], steps=steps, eval_samples=ev, seed=1
            )
        return out

    def fidelity(self, quick: bool) -> str:
        sae = (
            "TopK and standard SAEs (ratio 4) on 100k activations, lr 1e-3, batch 256"
            if quick
            else f"{', '.join(ARCHS)} SAEs (ratio 4) on 1M activations, SAELens defaults; a hierarchical TopK SAE"
        )
        return f"{super().fidelity(quick)}; {sae}"

    def analyze(self, ctx: Context) -> Analysis:
        missing = _missing_extra()
        if missing:
            return Analysis(_not_evaluated([TMS_CLAIM], missing, TMS))
        from tmslab.config import ConfigError
        from tmslab.sae import RunSource, SAESettings

        recipe = QUICK_SAE if ctx.quick else {"samples": 1_000_000, "eval_samples": 65_536}
        archs = ["topk", "standard"] if ctx.quick else ARCHS
        l1s = [0.1] if ctx.quick else TMS_L1S
        rows, jobs, skipped = [], [], {}
        for run_name, run in ctx.runs.items():
            try:
                source = RunSource(run, 0)
            except ConfigError as e:  # no learned feature (an untrained model, D20): nothing to recover
                skipped[run_name] = str(e)
                rows.append({"model": run_name, "arch": "topk", "l1": None, "k": None, "n_true": 0, "mmcs": None})
                continue
            k = max(1, round(true_l0(source)))
            for arch in archs:
                for l1 in l1s if arch in ("standard", "jumprelu") else [None]:
                    s = SAESettings(arch=arch, ratio=4.0, k=k, l1=l1 or 1.0, **recipe)
                    jobs.append((f"{run_name}-{arch}" + (f"-l1-{l1:g}" if l1 is not None else ""), source, s))
                    rows.append(
                        {
                            "model": run_name,
                            "arch": arch,
                            "l1": l1,
                            "k": k,
                            "n_true": source.n_true,
                            "true_l0": round(true_l0(source), 4),
                        }
                    )
        hier_s = None
        if not ctx.quick and TARGET not in skipped:
            # Absorption on the 40-10 model: its first learned features paired as parent → child (a child fires
            # only with its parent), a TopK SAE at the true L0 of that hierarchical stream.
            base = RunSource(ctx.runs[TARGET], 0)
            learned = [int(i) for i in base.learned[:8]]
            if len(learned) >= 2:
                hier = RunSource(ctx.runs[TARGET], 0, parents=dict(zip(learned[1::2], learned[::2], strict=False)))
                hier_s = SAESettings(arch="topk", ratio=4.0, k=max(1, round(true_l0(hier))), samples=1_000_000)
                jobs.append((f"{TARGET}-topk-hierarchical", hier, hier_s))
        metrics = _fit(ctx, jobs)
        trained = [r for r in rows if "true_l0" in r]
        for row, m in zip(trained, metrics, strict=False):  # the absorption SAE, if any, is the last job
            row.update(
                {
                    key: m.get(key)
                    for key in ("mmcs", "mcc", "recovered", "dead", "l0", "l0_training", "nmse", "shrinkage")
                }
            )
        tables: dict[str, Any] = {"saes": rows}
        if skipped:
            tables["skipped"] = skipped
        if hier_s is not None:
            m = metrics[-1]
            tables["absorption"] = {"k": hier_s.k, **m["absorption"], "mmcs": m["mmcs"]}
        checks = [tms_check(rows, ctx.runs[TARGET].config.n_features)]
        figs = []
        for run_name in ctx.runs:
            sub = [r for r in trained if r["model"] == run_name]
            if not sub:
                continue
            labels = [r["arch"] + (f" l1={r['l1']:g}" if r["l1"] is not None else "") for r in sub]
            figs.append(
                figure(
                    f"{run_name}-recovery",
                    "lines",
                    list(range(len(sub))),
                    {
                        "MMCS": [r["mmcs"] for r in sub],
                        "MCC": [r["mcc"] for r in sub],
                        "recovered (cos ≥ 0.9)": [r["recovered"] for r in sub],
                    },
                    xlabel="SAE: " + ", ".join(f"{i}={lab}" for i, lab in enumerate(labels)),
                    ylabel="score against the learned features",
                    caption=f"SAE recovery of {run_name}'s learned features by architecture and sparsity.",
                )
            )
        return Analysis(checks, figs, tables)
