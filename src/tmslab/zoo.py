"""The model zoo: named, documented toy models built deterministically on first request (paper-spec §6.6).

Each entry is a TrainConfig plus the checks its model must pass. `load(NAME)` trains it on first use,
evaluates its checks on the saved weights, and caches the run directory — with a model card
(card.md + card.json: what it is, configuration, seed, versions, eval loss, geometry, checks, how to
rebuild it) — under the user's cache folder; later calls read the cache. A model that fails a check of
its card is not cached (`ZooCheckError`): the zoo never hands out a model its card misdescribes.

Cache folder: $TMSLAB_CACHE_DIR, else $XDG_CACHE_HOME/tmslab, else ~/.cache/tmslab; entries live in
zoo/NAME-KEY, KEY a hash of the configuration, the card's text and tmslab's version, so a changed recipe or card
rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tmslab import __version__, metrics, theory
from tmslab.config import ConfigError, TrainConfig, versions
from tmslab.experiments.base import Check, all_within, at_least, at_most, within
from tmslab.experiments.intro import regular_pentagon
from tmslab.io import (
    Run,
    atomic_write_bytes,
    atomic_write_json,
    check_output_dir,
    load_run,
    replace_dir,
    save_run,
)

CARD_MD, CARD_JSON = "card.md", "card.json"


class ZooError(ConfigError):
    """An unknown zoo name or a bad request."""


class ZooCheckError(RuntimeError):
    """A freshly built zoo model failed a check of its card; nothing was cached."""


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: a recipe and the checks its model passes."""

    name: str
    title: str
    description: str
    config: TrainConfig
    checks: Callable[[Run], list[Check]]
    source: str
    """Where the setting comes from (paper-spec section, the other project)."""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """The cache key: the configuration, the card's text and tmslab's version (a cached model whose card
        changed — e.g. a claim now asserted — is built and checked again)."""
        card = {"title": self.title, "description": self.description, "source": self.source, "tags": self.tags}
        blob = json.dumps({"config": self.config.to_dict(), "card": card, "tmslab": __version__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---- checks (all computed from the saved weights) ----------------------------------------------------


def _best(run: Run) -> list[int]:
    return run.best_indices()


def sum_dimensionality(run: Run) -> Check:
    """Σ_i D_i ≤ m for every model (§2.6.2, a theorem)."""
    D = metrics.feature_dimensionality(run.W.double())
    excess = float((D.sum(-1) - run.config.n_hidden).max())
    return at_most("max over models of Σ_i D_i − m", round(excess, 6), 1e-4, "§2.6.2, E5",
                   "Σ D_i ≤ m is a theorem; a violation is a bug", kind="sanity")


def pentagon(run: Run) -> list[Check]:
    """Five learned features at 72° ± 3° consecutive gaps (E1b) in the best restart."""
    return regular_pentagon(run.W[_best(run)[0]].double(), "best restart") + [sum_dimensionality(run)]


def intro_pentagon(run: Run) -> list[Check]:
    """E1 at density 0.05 with importance 0.9^i: a regular pentagon with norms ≈ 1.1 and negative biases."""
    W, b = run.W[_best(run)[0]].double(), run.b[_best(run)[0]].double()
    norms = metrics.feature_norms(W[None])[0]
    return pentagon(run) + [
        all_within("‖W_i‖", norms, 1.08, 1.2, "§2.1, E1", "the spec's range [R]"),
        all_within("b_i", b, -0.32, -0.18, "§2.1, E1", "negative bias cuts off positive interference"),
    ]


def no_superposition_loss(config: TrainConfig, c: int = 0) -> float:
    """Loss of the best model without superposition: the m most important features kept exactly, the rest
    predicted by their mean (loss I_i·Var(x_i) = I_i·(p/3 − p²/4) each, x_i ~ p·U[0, 1])."""
    imp, dens = config.config_importance(c), config.config_density(c)
    dropped = sorted(range(config.n_features), key=lambda i: -imp[i] * dens[i] / 3)[config.n_hidden :]
    return sum(imp[i] * (dens[i] / 3 - dens[i] ** 2 / 4) for i in dropped)


def superposed(run: Run) -> list[Check]:
    """Sparse n > m: more than m features learned, and a loss below every model without superposition (§2.3)."""
    k = _best(run)[0]
    m = run.config.n_hidden
    learned = int((metrics.feature_norms(run.W[k : k + 1].double())[0] > 0.5).sum())
    baseline = no_superposition_loss(run.config)
    loss = float(run.eval_loss[k])
    return [
        Check("learned features (‖W_i‖ > 0.5)", learned, f"> m = {m}", learned > m, "§2.3, E2"),
        at_most("eval loss (paper L)", round(loss, 6), round(baseline, 6), "§2.3",
                "the loss of keeping the m most important features exactly and dropping the rest (closed form)"),
        sum_dimensionality(run),
    ]


def dstar_series(run: Run) -> list[Check]:
    """E4: D* ≈ 1 at density 1 and non-increasing (±0.05) as density falls."""
    W = run.W[_best(run)].double()
    dstar = metrics.dimensions_per_feature(W).tolist()
    rises = [dstar[i + 1] - dstar[i] for i in range(len(dstar) - 1)]
    return [
        within("D* at density 1", dstar[0], 0.95, 1.05, "§2.6.1, E4"),
        Check("largest rise of D* between consecutive densities", round(max(rises), 4), "≤ 0.05",
              max(rises) <= 0.05, "§2.6.1, E4", "monotone non-increasing up to ±0.05 noise"),
        sum_dimensionality(run),
    ]


def learned_growth(run: Run, dense: int, sparse_at_least: int, source: str) -> list[Check]:
    """The number of learned features (‖W_i‖ > 0.5) is `dense` at density 1 and non-decreasing with sparsity,
    reaching at least `sparse_at_least` at the sparsest density."""
    counts = [int(c) for c in (metrics.feature_norms(run.W[_best(run)].double()) > 0.5).sum(-1)]
    return [
        Check("learned features per density (dense → sparse)", counts, f"{dense} at density 1", counts[0] == dense,
              source),
        Check("learned features never fall as sparsity grows", counts, "non-decreasing",
              all(a <= b for a, b in zip(counts, counts[1:], strict=False)), source),
        at_least("learned features at the sparsest density", counts[-1], sparse_at_least, source),
    ]


def privileged(run: Run) -> list[Check]:
    return learned_growth(run, 5, 8, "§2.9, E14")


def absval(run: Run) -> list[Check]:
    """E16 (§5): dense, each feature needs a pair of neurons (±x_i), so at most m/2 features are learned; sparse,
    more than m/2 features have non-trivial weights (‖W1_i‖ > 0.5) at every density ≤ 0.01."""
    dens = [float(d) for d in run.config.density]
    counts = [int(c) for c in (metrics.feature_norms(run.W[_best(run)].double()) > 0.5).sum(-1)]
    half = run.config.n_hidden // 2
    sparse = [n for d, n in zip(dens, counts, strict=True) if d <= 0.01]
    return [
        at_most("learned features at density 1", counts[dens.index(1.0)], half, "§5, E16",
                "a dense feature is computed by a pair of neurons, so m neurons hold at most m/2 features"),
        Check("learned features at every density ≤ 0.01", sparse, f"all > {half}",
              bool(sparse) and min(sparse) > half, "§5, E16"),
    ]


def kgon(run: Run) -> list[Check]:
    """F5 (§6.4): the best restart on one-hot data is a regular k-gon whose exact one-hot loss is near the k-gon
    critical point's L(k, c)."""
    k_best = _best(run)[0]
    W, b = run.W[k_best].double(), run.b[k_best].double()
    c = run.config.n_features
    live = metrics.feature_norms(W[None])[0] > 0.5
    k = int(live.sum())
    gaps = metrics.angular_gaps(W[:, live][None])[0] if k >= 3 else torch.tensor([float("nan")])
    # Chen et al.'s k⁺ points: a dead feature with bias 1/(2c) > 0 predicts its mean and lowers the loss.
    plus = int((b[~live] > 0).sum())
    loss = float(theory.one_hot_loss(W, b))
    ref = theory.solve_kgon(k).loss(c, plus) if k >= 3 else math.nan
    name = f"L({k}{'⁺' * bool(plus)}, {c})"
    return [
        at_least("features in the k-gon (‖W_i‖ > 0.5)", k, 3, "§6.4, F5"),
        all_within("consecutive angular gaps of the k-gon (°)", gaps, 360 / max(k, 1) - 3, 360 / max(k, 1) + 3,
                   "§6.4, F5", "360°/k ± 3°: a regular k-gon"),
        within(f"exact one-hot loss − {name}", loss - ref, -5e-4, 5e-4, "§6.4, F5",
               f"{name} = {ref:.5f} ({plus} dead features with positive bias); ±5e-4 is half the smallest gap "
               "between neighbouring k-gons' losses at c ≤ 8 (L(7, 8) − L(8, 8) = −0.0010), so the loss names the "
               "same k-gon as the geometry"),
    ]


def shift(run: Run) -> list[Check]:
    """Distribution-shift target: the features left on form the geometry of a model without the off ones
    (4 features in 2 dimensions at p = 0.05: a square), the off feature's output stays off, and switching it
    on at evaluation costs loss."""
    k = _best(run)[0]
    off = run.config.off_features
    on = [i for i in range(run.config.n_features) if i not in off]
    W = run.W[k].double()
    norms = metrics.feature_norms(W[None])[0]
    learned = int((norms[on] > 0.5).sum())
    rec = run.metrics["instances"][k]
    return [
        Check("learned features among those left on (‖W_i‖ > 0.5)", learned, f"{len(on)}", learned == len(on),
              "§2.1, §6.4"),
        all_within("consecutive angular gaps of the features left on (°)", metrics.angular_gaps(W[:, on][None])[0],
                   87, 93, "§2.1, §6.4", "90° ± 3°: four features in two dimensions form a square (k-gon, k = 4)"),
        all_within("b_i of the always-off features", run.b[k, off], -10, 0, "§6.6",
                   "a positive bias would output a constant where the target is always 0", kind="sanity"),
        Check("shifted eval loss − eval loss", round(rec["shifted_eval_loss"] - rec["eval_loss"], 6), "> 0",
              rec["shifted_eval_loss"] > rec["eval_loss"], "§6.6",
              "features switched on at evaluation that the model never saw are reconstructed badly", kind="sanity"),
    ]


def resid_mlp_checks(samples: int = 1_000_000) -> Callable[[Run], list[Check]]:
    """Checks of a resid-mlp target (paper-spec §6.7), on its best instance and 10⁶ fresh samples: the frozen
    embedding (unit rows, W_U = W_Eᵀ, unchanged by training), the folded forward equal to param-decomp's order of
    operations, training lowering L/p below the untrained model's, and L/p below the naive baseline
    (n − d_mlp·layers)/n · 1/6 — the APD claim, which every entry's card checks when it is built."""

    def checks(run: Run) -> list[Check]:
        from tmslab import cis
        from tmslab.training import build

        k = _best(run)[0]
        cfg = run.config
        model = run.model
        W_E = run.params["W_E"][k]
        frozen = float((W_E - cis.embedding(cfg.n_features, cfg.d_embed, cfg.instance_seed(k))).abs().max())
        rows = float((W_E.double().norm(dim=1) - 1).abs().max())
        eye = torch.eye(cfg.n_features)[None].expand(cfg.n_instances, -1, -1)
        with torch.no_grad():
            order = float((model(eye) - model.forward_reference(eye)).abs().max())
        p = cfg.config_density(0)[0]
        lp = float(cis.evaluate(model, p, samples).lp[k])
        lp0 = float(cis.evaluate(build(cfg)[0], p, samples).lp[k])
        naive = cis.naive_lp(cfg.n_features, cfg.n_hidden * cfg.n_layers)
        return [
            at_most("embedding: max(|‖W_E,i‖ − 1|, change in training)", max(rows, frozen), 1e-6, "§6.7",
                    "unit rows up to float32 rounding, frozen exactly; W_U = W_Eᵀ by construction", kind="sanity"),
            at_most("folded forward − param-decomp's order (max |Δ|, one-hot inputs)", order, 1e-5, "§6.7",
                    "the same function computed in another order", kind="sanity"),
            at_most("L/p at the training density, trained ÷ untrained", round(lp / lp0, 5), 0.9, "§6.7",
                    f"L/p = {lp:.5f} ({samples:,} samples) against {lp0:.5f} before training; naive {naive:.5f}"),
            at_most(f"L/p at the training density ({samples:,} samples)", round(lp, 5), round(naive, 5), "§6.7, D19",
                    "below the naive baseline: the APD claim"),
        ]

    return checks


# ---- the entries -------------------------------------------------------------------------------------

_PD = "param-decomp's TMS target (paper-spec §6.6): tied ReLU output, p = 0.05, U[0,1] values, importance 1, AdamW"
_D7 = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]


def _entries() -> list[ZooModel]:
    pd_small = dict(n_features=5, n_hidden=2, density=[0.05], batch_size=1024, steps=10_000, lr=5e-3, restarts=8)
    pd_large = dict(n_features=40, n_hidden=10, density=[0.05], batch_size=8192, steps=10_000, lr=5e-3)
    out = [
        ZooModel("tms-5-2", "TMS 5-2 (param-decomp)", f"{_PD}; batch 1024, 10k steps, lr 5e-3; best of 8 seeds. "
                 "A regular pentagon.", TrainConfig(**pd_small), pentagon, "§6.6, E1b", ("param-decomp",)),
        ZooModel("tms-5-2-id", "TMS 5-2 with a frozen identity layer (param-decomp)",
                 f"{_PD}; a frozen 2 × 2 identity between encoder and decoder; batch 1024, 10k steps, lr 5e-3; "
                 "best of 8 seeds; trained as tms-5-2 (the frozen identity changes no gradient).",
                 TrainConfig(model="relu-output-id", **pd_small), pentagon,
                 "§6.6, E1b", ("param-decomp",)),
        ZooModel("tms-40-10", "TMS 40-10 (param-decomp)", f"{_PD}; batch 8192, 10k steps, lr 5e-3, bias "
                 "initialised to zero; one seed, as param-decomp trains it.", TrainConfig(**pd_large), superposed,
                 "§6.6, E2", ("param-decomp",)),
        ZooModel("tms-40-10-id", "TMS 40-10 with a frozen identity layer (param-decomp)",
                 f"{_PD}; a frozen 10 × 10 identity between encoder and decoder; batch 8192, 10k steps, lr 5e-3; "
                 "one seed; trained as tms-40-10 (the frozen identity changes no gradient).",
                 TrainConfig(model="relu-output-id", **pd_large), superposed,
                 "§6.6, E2", ("param-decomp",)),
        ZooModel("tms-5-2-off", "TMS 5-2 with an always-off feature (distribution shift)",
                 f"{_PD}; feature 4 never active in training; the shifted loss with it on at p = 0.05 is recorded "
                 "(param-decomp issue #4).", TrainConfig(**pd_small, off_features=[4], eval_density=[0.05]), shift,
                 "§6.6", ("param-decomp", "distribution-shift")),
        ZooModel("intro-pentagon", "The intro figure's pentagon (n = 5, m = 2, I = 0.9^i, density 0.05)",
                 "The paper's first figure at its sparsest point: the notebook recipe (AdamW lr 1e-3, batch 1024, "
                 "10k steps), best of 16 seeds.",
                 TrainConfig(density=[0.05], importance_decay=0.9, restarts=16), intro_pentagon, "§2.1, E1"),
        ZooModel("uniform-400-30", "Uniform superposition, n = 400, m = 30, density series (the D* plot)",
                 "Importance 1, densities 1 … 0.001 (7 points), the notebook recipe; one seed each. Feature "
                 "dimensionality and D* sticking at fractions (§2.6).",
                 TrainConfig(n_features=400, n_hidden=30, density=_D7), dstar_series, "§2.6.1, E4"),
        ZooModel("privileged-10-5", "Privileged basis, n = 10, m = 5, ReLU hidden layer, density series",
                 "hidden-relu model, importance 0.75^i, densities 1 … 0.001 (7 points), the notebook recipe, best "
                 "of 8 seeds each.", TrainConfig(model="hidden-relu", n_features=10, n_hidden=5, density=_D7,
                                                  importance_decay=0.75, restarts=8), privileged, "§2.9, E14"),
        ZooModel("abs-100-40", "Computation in superposition: absolute value, n = 100, m = 40, density series",
                 "The §5 model y = ReLU(W2 ReLU(W1 x) + b) with target |x|, x_i ~ U[−1, 1] when active, importance "
                 "0.8^i, densities 1 … 0.001 (7 points), the notebook recipe, one seed each (plain training: at "
                 "density 1 it learns 12 of the paper's 20 neuron pairs; `tms reproduce`'s abs-sweep adds restarts "
                 "and resampling for that).",
                 TrainConfig(model="abs", n_features=100, n_hidden=40, density=_D7, importance_decay=0.8), absval,
                 "§5, E16"),
    ]
    for c in range(4, 9):
        out.append(ZooModel(
            f"onehot-kgon-{c}", f"One-hot k-gon target, c = {c} features in 2 dimensions",
            f"Exactly one of {c} features active (U[0,1]), importance 1, the notebook recipe, best of 32 seeds: the "
            "k-gon critical points studied with SLT (Chen et al., paper-spec §6.4). Best of 8 was not enough at "
            "c = 7 and 8 (a hexagon with two features on one direction won there).",
            TrainConfig(n_features=c, n_hidden=2, distribution="one-hot", restarts=32), kgon, "§6.4, F5",
            ("devinterp",)))
    recipe = dict(model="resid-mlp", d_embed=1000, density=[0.01], batch_size=2048, lr=3e-3, weight_decay=0.01,
                  schedule="cosine-floor", lr_floor=0.0, seed=0)
    for name, n, m, layers, steps in (("resid-mlp1", 100, 50, 1, 1_000), ("resid-mlp2", 100, 25, 2, 1_000),
                                      ("resid-mlp3", 102, 17, 3, 10_000)):
        out.append(ZooModel(
            name, f"Residual MLP {name[-1]} (APD / param-decomp): {n} ReLUs, {layers} × {m} neurons",
            f"Braun et al.'s compressed-computation target (paper-spec §6.7): d_embed = 1000, frozen random embedding "
            f"with unit rows and W_U = W_Eᵀ, {layers} residual MLP block(s) of {m} neurons without biases, labels "
            f"x + ReLU(x), x_i = U(−1, 1)·Bernoulli(0.01), AdamW lr 3e-3 (weight decay 0.01), batch 2048, {steps:,} "
            "steps, cosine to 0, seed 0. `tms export DIR --to param-decomp` writes their resid_mlp checkpoint.",
            TrainConfig(n_features=n, n_hidden=m, n_layers=layers, steps=steps, **recipe),
            resid_mlp_checks(), "§6.7, F7", ("param-decomp", "computation-in-superposition")))
    return out


ZOO: dict[str, ZooModel] = {z.name: z for z in _entries()}


def entry(name: str) -> ZooModel:
    if name not in ZOO:
        import difflib

        hint = difflib.get_close_matches(name, ZOO, n=1)
        raise ZooError(f"unknown zoo model {name!r}{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
                       "`tms zoo list` lists them.")
    return ZOO[name]


# ---- cache ------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """$TMSLAB_CACHE_DIR, else $XDG_CACHE_HOME/tmslab, else ~/.cache/tmslab."""
    if os.environ.get("TMSLAB_CACHE_DIR"):
        return Path(os.environ["TMSLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tmslab"


def path(name: str) -> Path:
    z = entry(name)
    return cache_dir() / "zoo" / f"{z.name}-{z.key}"


def is_built(name: str) -> bool:
    return (path(name) / CARD_JSON).exists()


def load(name: str, *, progress: bool = False) -> Run:
    """The zoo model `name` as a Run, built (and cached) on first request."""
    if not is_built(name):
        build(name, progress=progress)
    return load_run(path(name))


def build(name: str, *, progress: bool = False) -> Path:
    """Train, check and cache zoo model `name`; raise ZooCheckError (caching nothing) if a check fails."""
    from tmslab.training import train

    z = entry(name)
    final = path(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    result = train(z.config, progress=progress, desc=name)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        run_dir = save_run(tmp / "run", result)
        run = load_run(run_dir)
        checks = z.checks(run)
        failed = [c for c in checks if c.status != "pass"]
        if failed:
            raise ZooCheckError(
                f"zoo model {name} failed {len(failed)} check(s) of its card ({failed[0].name}: measured "
                f"{failed[0].measured}, expected {failed[0].expected}); nothing was cached."
            )
        card = make_card(z, run, checks)
        atomic_write_json(run_dir / CARD_JSON, card)
        atomic_write_bytes(run_dir / CARD_MD, card_markdown(card).encode())
        try:
            os.replace(run_dir, final)
        except OSError:  # another process cached it first: keep theirs (same recipe, same machine)
            if not is_built(name):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def get(name: str, out: Path, *, force: bool = False, progress: bool = False) -> Path:
    """Copy zoo model `name` (built on first request) into directory `out`: a tmslab run plus its card."""
    out = Path(out)
    entry(name)
    check_output_dir(out, "run", force=force)
    src = path(name) if is_built(name) else build(name, progress=progress)
    tmp = Path(tempfile.mkdtemp(dir=out.resolve().parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        replace_dir(tmp, out, "run")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---- model cards ------------------------------------------------------------------------------------


def make_card(z: ZooModel, run: Run, checks: list[Check]) -> dict[str, Any]:
    """card.json: what the model is, its recipe, scores, geometry and the checks it passed."""
    from tmslab.summary import run_table

    table = run_table(run, best_only=True)
    geometry = json.loads(table.to_json(orient="records"))
    return {
        "name": z.name,
        "title": z.title,
        "description": z.description,
        "source": z.source,
        "tags": list(z.tags),
        "config": z.config.to_dict(),
        "seed": z.config.seed,
        "versions": versions(),
        "engine": run.metrics.get("engine"),
        "train_seconds": round(float(run.metrics.get("train_seconds", 0.0)), 2),
        "best_instances": run.best_indices(),
        "eval_loss": [float(run.eval_loss[k]) for k in run.best_indices()],
        "geometry": geometry,
        "checks": [c.to_dict() for c in checks],
        "rebuild": {"cli": f"tms zoo get {z.name} --out DIR", "python": f"tmslab.zoo.load({z.name!r})",
                    "key": z.key},
    }


def card_markdown(card: dict[str, Any]) -> str:
    """card.md: the same card for people."""
    lines = [f"# {card['name']}: {card['title']}", "", card["description"], "",
             f"Source: paper-spec {card['source']}. Seed {card['seed']}; trained by the {card['engine']} engine in "
             f"{card['train_seconds']} s; tmslab {card['versions']['tmslab']}, torch {card['versions']['torch']}.",
             "", "## Checks (all pass; verified when this model was built)", "",
             "| check | kind | measured | expected | source |", "|---|---|---|---|---|"]
    for c in card["checks"]:
        lines.append(f"| {c['name']} | {c['kind']} | {c['measured']} | {c['expected']} | {c['source']} |")
    lines += ["", "## Best model per configuration", "", "| " + " | ".join(card["geometry"][0]) + " |",
              "|" + "---|" * len(card["geometry"][0])]
    for row in card["geometry"]:
        lines.append("| " + " | ".join(_fmt(v) for v in row.values()) + " |")
    cfg = ", ".join(f"{k}={v}" for k, v in card["config"].items() if v not in (None, [], 0, 0.0, False))
    lines += ["", "## Configuration", "", f"`{cfg}`", "", "## Rebuild", "",
              f"`{card['rebuild']['cli']}` or `{card['rebuild']['python']}` (cache key {card['rebuild']['key']}); "
              "the same configuration and seed give the same weights on the same machine.", ""]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
