"""§6.2 / §6.6 (F3): sparse autoencoders recover known features — on Sharkey et al.'s toy data and on the
hidden layer of trained toy models. Needs the `sae` extra (SAELens); without it the experiments report
every check as not evaluated, with the install line as the reason.

Standard and TopK SAEs are trained by tmslab.sae_batched (SAELens's training semantics, many SAEs per
loop), the other architectures by SAELens's SAETrainer; every SAE is saved in SAELens's format under
DIR/<experiment>/saes/<name>/ with its metrics (tmslab_sae.json); a re-run reuses every saved SAE whose
settings and source match.
"""

from __future__ import annotations

import json
from typing import Any

from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, figure

NEEDS_FULL = "needs full fidelity"


def _saved(ctx: Context, name: str, source: Any, settings: Any) -> dict[str, Any] | None:
    """The record of SAE `name` on disk when its settings and source match, else None."""
    from dataclasses import asdict

    from tmslab import sae

    try:
        record = json.loads((ctx.out / "saes" / name / sae.METRICS_FILE).read_text())
        if record["settings"] == asdict(settings) and record["source"] == json.loads(
            json.dumps(source.describe())
        ):
            return record
    except (OSError, ValueError, KeyError):
        pass
    return None


def _fit(ctx: Context, jobs: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """Records of the SAEs (name, source, settings): reused from disk when source and settings match, the
    rest trained per source with tmslab.sae_batched.train_many (standard / TopK batched, others SAELens)."""
    from tmslab.sae_batched import train_many

    records = {name: rec for name, src, s in jobs if (rec := _saved(ctx, name, src, s)) is not None}
    todo: dict[int, tuple[Any, list[tuple[str, Any]]]] = {}
    for name, src, s in jobs:
        if name not in records:
            todo.setdefault(id(src), (src, []))[1].append((name, s))
    (ctx.out / "saes").mkdir(parents=True, exist_ok=True)
    for src, items in todo.values():
        results = train_many(src, [s for _, s in items], [ctx.out / "saes" / n for n, _ in items], force=True)
        records.update({n: r.record for (n, _), r in zip(items, results, strict=True)})
    return [records[name] for name, _, _ in jobs]


def _missing_extra() -> str | None:
    from tmslab.sae import SAEExtraMissing, require_saelens

    try:
        require_saelens()
    except SAEExtraMissing as e:
        return str(e)
    return None


def _not_evaluated(names: list[str], reason: str, src: str) -> list[Check]:
    return [Check(n, None, "—", False, src, kind="claim", status="not evaluated", reason=reason) for n in names]


def _claim(check: Check, quick: bool) -> Check:
    """A claim measured at quick fidelity is shown but not counted (status not evaluated)."""
    if quick:  # never a pass nor a fail at quick fidelity
        check.passed, check.status, check.reason = False, "not evaluated", NEEDS_FULL
    return check


# ---- sae-synthetic ---------------------------------------------------------------------------------

F3 = "§6.2, F3-SAE"
RATIOS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
L1S = [0.003, 0.01, 0.03, 0.1]
QUICK_RATIOS = [0.25, 1.0, 2.0]
QUICK_L1S = [0.03]
F3_CLAIMS = ["some cell with ratio ≥ 1 reaches MMCS ≥ 0.95", "dead latents rise past ratio 1 (best L1)",
             "no ratio-0.25 cell reaches MMCS 0.95"]


@register
class SAESynthetic(Experiment):
    name = "sae-synthetic"
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
        "against SAELens; saved in SAELens's format) "
        "— SAELens's recipe rather than the post's unit-norm decoder without bias. Grid: L1 ∈ {0.003, 0.01, 0.03, "
        "0.1} × ratio ∈ {0.25, 0.5, 1, 2, 4, 8} (the spec's 0.25–32 cut at 8 for CPU), 500k activations each. The "
        "0.95 threshold is the spec's (unverified; the post reports near 1). 'Dead latents rise past ratio 1': at "
        "the L1 with the best MMCS, the dead count at ratio 8 exceeds the largest dead count at ratio ≤ 1. Dead = "
        "never active on 65,536 fresh samples. Cross-size MMCS: MMCS of ratio r's atoms against ratio 2r's."
    )

    def _grid(self, quick: bool) -> tuple[list[float], list[float]]:
        return (QUICK_L1S, QUICK_RATIOS) if quick else (L1S, RATIOS)

    def fidelity(self, quick: bool) -> str:
        l1s, ratios = self._grid(quick)
        size = "G = 16 in h = 8, 10k activations" if quick else "G = 128 in h = 64, 500k activations"
        return f"{size} per SAE; L1 {l1s} × ratio {ratios}; standard SAEs (batched trainer, SAELens semantics)"

    def analyze(self, ctx: Context) -> Analysis:
        import torch

        from tmslab.sae import SAESettings, SharkeySource, cosines, load

        source = SharkeySource(16, 8, 2.0, seed=0) if ctx.quick else SharkeySource(128, 64, 5.0, seed=0)
        self_mmcs = float(cosines(source.features, source.features).max(dim=1).values.mean())
        invariant = Check("ground-truth dictionary scores MMCS 1 against itself", self_mmcs, "1 ± 1e-6",
                          abs(self_mmcs - 1) < 1e-6, F3, "metric invariant", kind="sanity")
        missing = _missing_extra()
        if missing:  # the invariant needs no SAE, so it is checked either way
            return Analysis([*_not_evaluated(F3_CLAIMS, missing, F3), invariant])
        l1s, ratios = self._grid(ctx.quick)
        samples = 10_000 if ctx.quick else 500_000
        cells = [(l1, ratio) for l1 in l1s for ratio in ratios]
        jobs = [(f"l1-{l1:g}-ratio-{ratio:g}", source, SAESettings(
            arch="standard", ratio=ratio, l1=l1, samples=samples, batch_size=256, lr=1e-3,
            eval_samples=8192 if ctx.quick else 65_536)) for l1, ratio in cells]
        rows = []
        for (l1, ratio), (name, _, _), record in zip(cells, jobs, _fit(ctx, jobs), strict=True):
            m = record["metrics"]
            rows.append({"name": name, "l1": l1, "ratio": ratio, **{k: m[k] for k in (
                "mmcs", "mcc", "recovered", "dead", "dead_fraction", "l0", "nmse", "shrinkage", "n_latents")}})
        best_l1 = max(l1s, key=lambda a: max(r["mmcs"] for r in rows if r["l1"] == a))
        at_best = [r for r in rows if r["l1"] == best_l1]
        cross = []
        for a, b in zip(ratios, ratios[1:], strict=False):
            sa, _ = load(ctx.out / "saes" / f"l1-{best_l1:g}-ratio-{a:g}")
            sb, _ = load(ctx.out / "saes" / f"l1-{best_l1:g}-ratio-{b:g}")
            with torch.no_grad():
                c = cosines(sa.W_dec.float(), sb.W_dec.float()).max(dim=1).values.mean()
            cross.append({"ratio": a, "next_ratio": b, "cross_mmcs": float(c)})
        big = [r["mmcs"] for r in rows if r["ratio"] >= 1]
        small = [r["mmcs"] for r in rows if r["ratio"] == 0.25]
        dead_low = max(r["dead"] for r in at_best if r["ratio"] <= 1)
        dead_top = at_best[-1]["dead"]
        checks = [
            _claim(Check(F3_CLAIMS[0], round(max(big), 4), "≥ 0.95", max(big) >= 0.95, F3,
                         "spec's threshold (unverified; post: near 1)"), ctx.quick),
            _claim(Check(F3_CLAIMS[1], {"ratio ≤ 1 (max)": dead_low, f"ratio {ratios[-1]:g}": dead_top},
                         f"dead at ratio {ratios[-1]:g} > max dead at ratio ≤ 1", dead_top > dead_low, F3,
                         f"at the L1 with the best MMCS ({best_l1:g})"), ctx.quick),
            _claim(Check(F3_CLAIMS[2], round(max(small), 4), "< 0.95", max(small) < 0.95, F3,
                         "a quarter-size dictionary cannot hold 128 directions"), ctx.quick),
            invariant,
        ]
        figs = []
        shown = (("mmcs", "MMCS"), ("dead_fraction", "dead latents (fraction)"), ("nmse", "normalised MSE"))
        for metric, label in shown:
            grid = [[next(r[metric] for r in rows if r["l1"] == a and r["ratio"] == q) for q in ratios] for a in l1s]
            figs.append(figure(f"{metric}-heatmap", "heatmap2d", ratios, l1s, grid, xlabel="dictionary ratio (× G)",
                               ylabel="L1 coefficient", zlabel=label, log_x=True, log_y=len(l1s) > 1,
                               title=f"{label} over L1 × ratio",
                               caption=f"{label} of standard SAEs over L1 coefficient × dictionary size."))
        return Analysis(checks, figs, {"grid": rows, "cross_size_mmcs": cross, "best_l1": best_l1,
                                       "source": source.describe()})


# ---- sae-tms ---------------------------------------------------------------------------------------

TMS = "§6.6, sae-tms (issue 16)"
ARCHS = ["topk", "batchtopk", "matryoshka", "standard", "jumprelu"]
TMS_L1S = [0.003, 0.03, 0.3]
TMS_CLAIM = "TopK at the true L0 reaches MMCS ≥ 0.9 on the 40-10 model"


def true_l0(source: Any) -> float:
    """Expected number of active learned features per sample: Σ_i density_i over the learned features."""
    return float(source.distribution.density[0, source.learned].sum())


@register
class SAETms(Experiment):
    name = "sae-tms"
    title = "SAEs on the hidden layer of toy models in superposition"
    claim = (
        "SAEs trained on a toy model's hidden activations recover its learned feature directions; TopK at the true "
        "L0 reaches MMCS ≥ 0.9 on the 40-10 decomposition target."
    )
    spec_ref = "§6.6, issue 16"
    notes = (
        "Targets (§6.6): n = 40, m = 10, density 0.05, I = 1 (the parameter-decomposition papers' '40-10'; trained "
        "here with AdamW lr 5e-3, 10k steps × batch 1024 instead of their batch 8192, to fit a CPU), and n = 400, "
        "m = 30 at density 0.01 (E4's model, sparse end). Ground truth = learned features (‖W_i‖ > 0.5); true L0 = "
        "Σ density over them; k = max(1, round(true L0)). Every SAE: dictionary ratio 4, 1M activations sampled "
        "from the run's own distribution, SAELens defaults otherwise; standard and topk through tmslab's batched "
        "trainer (SAELens's semantics, tested against it), the others through SAELens's SAETrainer. "
        "Architectures: topk, batchtopk, matryoshka "
        "(k = true L0), standard and jumprelu over the sparsity grid {0.003, 0.03, 0.3}. The 0.9 threshold is "
        "the issue's. Absorption (table only): the 40-10 model's first 8 learned features as 4 parent → child "
        "pairs (a child fires only with its parent; its density becomes the product), a TopK SAE on that stream; "
        "tmslab.sae.absorption's excess of P(parent latent silent | child on) over P(silent | parent alone)."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        steps = 1_000 if quick else 10_000
        ev = 10_000 if quick else 100_000
        out = {"tms-40-10": TrainConfig(n_features=40, n_hidden=10, density=[0.05], lr=5e-3, steps=steps,
                                        eval_samples=ev, seed=1)}
        if not quick:
            out["tms-400-30"] = TrainConfig(n_features=400, n_hidden=30, density=[0.01], steps=steps,
                                            eval_samples=ev, seed=1)
        return out

    def analyze(self, ctx: Context) -> Analysis:
        missing = _missing_extra()
        if missing:
            return Analysis(_not_evaluated([TMS_CLAIM], missing, TMS))
        from tmslab.sae import RunSource, SAESettings

        samples = 20_000 if ctx.quick else 1_000_000
        archs = ["topk", "standard"] if ctx.quick else ARCHS
        l1s = [0.1] if ctx.quick else TMS_L1S
        rows, jobs = [], []
        for run_name, run in ctx.runs.items():
            source = RunSource(run, 0)
            k = max(1, round(true_l0(source)))
            for arch in archs:
                for l1 in (l1s if arch in ("standard", "jumprelu") else [None]):
                    s = SAESettings(arch=arch, ratio=4.0, k=k, l1=l1 or 1.0, samples=samples,
                                    eval_samples=8192 if ctx.quick else 65_536)
                    jobs.append((f"{run_name}-{arch}" + (f"-l1-{l1:g}" if l1 is not None else ""), source, s))
                    rows.append({"model": run_name, "arch": arch, "l1": l1, "k": k, "n_true": source.n_true,
                                 "true_l0": round(true_l0(source), 4)})
        if not ctx.quick:
            # Absorption on the 40-10 model: its first learned features paired as parent → child (a child fires
            # only with its parent), a TopK SAE at the true L0 of that hierarchical stream.
            base = RunSource(ctx.runs["tms-40-10"], 0)
            learned = [int(i) for i in base.learned[:8]]
            hier = RunSource(ctx.runs["tms-40-10"], 0, parents=dict(zip(learned[1::2], learned[::2], strict=True)))
            hier_s = SAESettings(arch="topk", ratio=4.0, k=max(1, round(true_l0(hier))), samples=samples)
            jobs.append(("tms-40-10-topk-hierarchical", hier, hier_s))
        records = _fit(ctx, jobs)
        for row, record in zip(rows, records, strict=False):  # the absorption SAE, if any, is the last job
            row.update({key: record["metrics"][key] for key in ("mmcs", "mcc", "recovered", "dead", "l0", "nmse",
                                                                "shrinkage")})
        tables: dict[str, Any] = {"saes": rows}
        if not ctx.quick:
            m = records[-1]["metrics"]
            tables["absorption"] = {"k": hier_s.k, **m["absorption"], "mmcs": m["mmcs"]}
        topk = next(r for r in rows if r["model"] == "tms-40-10" and r["arch"] == "topk")
        checks = [_claim(Check(TMS_CLAIM, round(topk["mmcs"], 4), "≥ 0.9", topk["mmcs"] >= 0.9, TMS,
                               f"k = {topk['k']} (true L0 {topk['true_l0']}), {topk['n_true']} learned features"),
                         ctx.quick)]
        figs = []
        for run_name in ctx.runs:
            sub = [r for r in rows if r["model"] == run_name]
            labels = [r["arch"] + (f" l1={r['l1']:g}" if r["l1"] is not None else "") for r in sub]
            figs.append(figure(f"{run_name}-recovery", "lines", list(range(len(sub))),
                               {"MMCS": [r["mmcs"] for r in sub], "MCC": [r["mcc"] for r in sub],
                                "recovered (cos ≥ 0.9)": [r["recovered"] for r in sub]},
                               xlabel="SAE: " + ", ".join(f"{i}={lab}" for i, lab in enumerate(labels)),
                               ylabel="score against the learned features",
                               caption=f"SAE recovery of {run_name}'s learned features by architecture and sparsity."))
        return Analysis(checks, figs, tables)
