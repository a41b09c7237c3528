"""§5 (E15–E17): computation in superposition — the absolute-value model.

h = ReLU(W1 x), y' = ReLU(W2 h + b), target |x| with x_i ~ U[−1, 1] when active. |x| = ReLU(x) + ReLU(−x), so
without superposition each feature takes a pair of neurons (+x_i and −x_i). With n = 100 features in m = 40
neurons, sparser features are computed in superposition: polysemantic neurons appear for the least important
features first, and some neurons show the asymmetric-superposition motif.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tmslab import metrics
from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, at_least, at_most, figure

SRC_SMALL, SRC_SWEEP, SRC_MOTIF = "§5, E15", "§5, E16", "§5, E17"
SWEEP_DENSITIES = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
#: §3 operational threshold (relative to the neuron's largest |W1| weight, i.e. after the footnote-15 rescale).
REL = 0.1


def pair_neurons(W1: Tensor, tol: float = REL) -> list[dict[str, Any]]:
    """For each feature i of one rescaled W1 [m, n]: the neurons whose only weight above `tol` is +1 or −1 on i.

    Returns per feature {'plus': [neurons], 'minus': [neurons]}; the paper's solution has one of each (E15).
    """
    W1 = W1.double()
    out = []
    for i in range(W1.shape[1]):
        others = torch.cat([W1[:, :i], W1[:, i + 1 :]], dim=1).abs().amax(1) if W1.shape[1] > 1 else torch.zeros(
            W1.shape[0], dtype=torch.float64)
        clean = others < tol
        plus = [k for k in range(W1.shape[0]) if clean[k] and abs(W1[k, i] - 1) < tol]
        minus = [k for k in range(W1.shape[0]) if clean[k] and abs(W1[k, i] + 1) < tol]
        out.append({"plus": plus, "minus": minus})
    return out


def find_asymmetric_motifs(
    W1: Tensor, W2: Tensor, rel: float = REL, ratio: float = 2.0, reciprocity: float = 2.0, inhibition: float = 0.5
) -> list[dict[str, Any]]:
    """Asymmetric-superposition motifs (§5) in one abs model W1 [m, n], W2 [n, m] (rescaled here, footnote 15).

    A motif is a neuron k and features a, b with input weights of opposite sign, |W1[k,a]| ≥ ratio·|W1[k,b]|,
    |W1[k,b]| > rel (both above the §3 threshold), both output weights positive and roughly reciprocal:
    W2[b,k]/W2[a,k] within a factor `reciprocity` of |W1[k,a]/W1[k,b]| (the paper's [2, −1/2] in, [1/2, 2] out).
    Feature a then interferes heavily with output b (by W2[b,k]·|W1[k,a]| per unit of x_a). Inhibitors are the
    other neurons that fire on the same sign of x_a (W1[k',a] of the same sign, above rel) and push output b
    down by at least `inhibition` × that interference (W2[b,k']·|W1[k',a]| ≤ −inhibition · W2[b,k]·|W1[k,a]|).
    """
    V1, V2 = metrics.abs_rescale(W1[None], W2[None])
    V1, V2 = V1[0], V2[0]
    found = []
    m, n = V1.shape
    for k in range(m):
        row = V1[k]
        strong = [f for f in range(n) if abs(row[f]) > rel]
        for a in strong:
            for b in strong:
                if a == b or row[a] * row[b] >= 0 or abs(row[a]) < ratio * abs(row[b]):
                    continue
                if V2[a, k] <= 0 or V2[b, k] <= 0:
                    continue
                r_in = float(abs(row[a] / row[b]))
                r_out = float(V2[b, k] / V2[a, k])
                if not r_in / reciprocity <= r_out <= r_in * reciprocity:
                    continue
                interference = float(V2[b, k] * abs(row[a]))
                inhibitors = [
                    j for j in range(m) if j != k and float(V1[j, a] * row[a]) > 0 and abs(float(V1[j, a])) > rel
                    and float(V2[b, j] * abs(V1[j, a])) <= -inhibition * interference
                ]
                found.append({"neuron": k, "a": a, "b": b, "w_in": [round(float(row[a]), 3), round(float(row[b]), 3)],
                              "w_out": [round(float(V2[a, k]), 3), round(float(V2[b, k]), 3)],
                              "inhibitors": inhibitors})
    return found


def duplicate_neurons(W1: Tensor) -> list[int]:
    """Per model (W1 [K, m, n], rescaled): neurons whose largest weight is on the same feature, with the same sign,
    as an earlier neuron's — copies that split one ReLU(±x_i) between them."""
    out = []
    for W in W1:
        top = W.abs().argmax(-1)
        keys = [(int(f), bool(W[k, f] > 0)) for k, f in enumerate(top) if W[k].abs().max() > metrics.DEAD_NEURON]
        out.append(len(keys) - len(set(keys)))
    return out


def _rescaled(run, idx: list[int]) -> tuple[Tensor, Tensor]:
    return metrics.abs_rescale(run.params["W1"][idx], run.params["W2"][idx])


@register
class AbsSmall(Experiment):
    name = "abs-small"
    title = "Absolute value without superposition (n = 3, m = 6)"
    claim = "With enough neurons, the model computes |x_i| = ReLU(x_i) + ReLU(−x_i) with one neuron pair per feature."
    spec_ref = "§5, E15"
    notes = (
        "Dense features (density 1), uniform importance (the spec's proposal; the paper states neither), x_i ~ "
        "U[−1, 1], notebook recipe but 5000 steps (the loss is ≈ 1e-6 by then), best of 8 restarts (a neuron that "
        "starts dead for every input direction it needs leaves a feature half-computed, so single seeds fail "
        "often). W1 is rescaled per neuron so its largest |weight| is 1 (footnote 15) before any check. 'Test MSE' "
        "is the mean over samples and features of (|x| − y')² on 100,000 fresh samples (the paper's L / n)."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        return {"abs": TrainConfig(model="abs", n_features=3, n_hidden=6, density=[1.0], restarts=4 if quick else 8,
                                   steps=1_000 if quick else 5_000, eval_samples=10_000 if quick else 100_000)}

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["abs"]
        k = run.best_indices()[0]
        W1, W2 = _rescaled(run, [k])
        pairs = pair_neurons(W1[0])
        n = run.config.n_features
        mse = float(run.eval_loss[k]) / n
        ok = [len(p["plus"]) >= 1 and len(p["minus"]) >= 1 for p in pairs]
        all_mse = (run.eval_loss / n).tolist()
        reached = 0
        for r in range(run.config.restarts):
            V1, _ = _rescaled(run, [r])
            reached += all(len(p["plus"]) >= 1 and len(p["minus"]) >= 1 for p in pair_neurons(V1[0]))
        checks: list[Check] = [
            Check("features with a +x_i neuron and a −x_i neuron (weight ±1, others < 0.1)", f"{sum(ok)} of {n}",
                  f"{n} of {n}", all(ok), SRC_SMALL, "after the footnote-15 rescale; 'others' = the neuron's "
                  "weights on the other features"),
            at_most("test MSE of the best restart", mse, 1e-3, SRC_SMALL),
        ]
        figs = [
            figure("W1", "weight_matrix", W1, ["W1 (rescaled), neurons × features"],
                   caption="Encoder W1 after the footnote-15 rescale: each feature has a +1 and a −1 neuron."),
            figure("W2", "weight_matrix", W2.transpose(-1, -2), ["W2ᵀ (rescaled), neurons × outputs"],
                   caption="Decoder W2 (transposed to neurons × outputs): each pair of neurons feeds its feature."),
            figure("stack", "neuron_stack", W1, ["W1 neuron stack"], order="largest-feature",
                   caption="Neuron stack of the rescaled W1: six monosemantic neurons, two per feature."),
        ]
        return Analysis(checks, figs, {"pairs": pairs, "restart_mse": all_mse,
                                       "restarts_with_all_pairs": f"{reached}/{run.config.restarts}"})


@register
class AbsSweep(Experiment):
    name = "abs-sweep"
    title = "Computation in superposition: |x| with n = 100 features in m = 40 neurons"
    claim = (
        "As features get sparser, the absolute-value model computes more features than it has neuron pairs: "
        "polysemantic neurons appear (least important features first) until every neuron is polysemantic, and "
        "some neurons use asymmetric superposition with an inhibitory partner."
    )
    spec_ref = "§5, E16, E17"
    notes = (
        "n = 100, m = 40, I = 0.8^i, densities {1, .3, .1, .03, .01, .003, .001} as in the paper, x_i ~ U[−1, 1], "
        "best of 4 restarts per density by evaluation loss (the paper shows one model), notebook recipe (10,000 "
        "steps). Every measure is taken after the footnote-15 rescale (each neuron's largest |W1| weight = 1). "
        "Polysemantic neuron (paper-spec §3, threshold ours): ≥ 2 features with |W1_kf| > 0.1. A feature has a "
        "non-trivial weight if some neuron gives it |W1_kf| > 0.1. 'Non-decreasing with sparsity' allows a drop of "
        "up to 2 neurons (5% of 40) between neighbouring densities, as single models are noisy (the E2b convention). "
        "Motif search (E17) per `find_asymmetric_motifs`: opposite-sign inputs with ratio ≥ 2, both above 0.1, "
        "positive outputs with ratio within a factor 2 of the reciprocal, and an inhibitory neuron that fires on "
        "the same input sign and removes ≥ 50% of the interference. Finding at density 1: every neuron is "
        "monosemantic, but only 11–16 of the 20 features get a ± pair (4–6 restarts each at 10,000 and 30,000 steps, "
        "lr 1e-3 to 1e-2, both inits). The rest of the neurons are duplicates: several neurons share the same feature "
        "and sign and split its output weight (the 'duplicate neurons' in the table) — a degenerate set of solutions "
        "that gradient descent cannot leave, since any split of the output weight between copies has the same loss. "
        "The 20-pair solution would have loss Σ_{i≥20} 0.8^i/12 ≈ 0.005 against the best restart's ≈ 0.015–0.02; "
        "footnote 16 warns that this model is hard to train."
    )

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        if quick:
            return {"abs": TrainConfig(model="abs", n_features=20, n_hidden=8, importance_decay=0.8,
                                       density=[1.0, 0.03, 0.001], steps=400, eval_samples=5_000)}
        return {"abs": TrainConfig(model="abs", n_features=100, n_hidden=40, importance_decay=0.8,
                                   density=SWEEP_DENSITIES, steps=10_000, restarts=4, eval_samples=100_000)}

    def analyze(self, ctx: Context) -> Analysis:
        run = ctx.runs["abs"]
        dens = [float(d) for d in run.config.density]
        m = run.config.n_hidden
        best = run.best_indices()
        W1, W2 = _rescaled(run, best)
        counts = metrics.neuron_feature_counts(W1, REL)
        poly = (counts >= 2).sum(-1).tolist()
        mono = (counts == 1).sum(-1).tolist()
        nontrivial = (W1.abs() > REL).any(-2).sum(-1).tolist()
        checks: list[Check] = []
        # Density 1: every neuron monosemantic, m/2 features with a +/− pair each.
        pairs = pair_neurons(W1[0])
        paired = sum(len(p["plus"]) >= 1 and len(p["minus"]) >= 1 for p in pairs)
        duplicates = duplicate_neurons(W1)
        checks.append(Check("density 1: monosemantic neurons; features with a ± neuron pair", f"{mono[0]}; {paired}",
                            f"{m}; {m // 2}", mono[0] == m and paired == m // 2, SRC_SWEEP,
                            f"{duplicates[0]} neurons duplicate another neuron's feature and sign (see notes)"))
        drops = [a - b for a, b in zip(poly, poly[1:], strict=False)]
        checks.append(Check("polysemantic neurons from dense to sparse", poly,
                            "non-decreasing (drops ≤ 2)", all(d <= 2 for d in drops), SRC_SWEEP,
                            "§3 definition after rescale; tolerance chosen before measuring (5% of the neurons)"))
        checks.append(Check(f"polysemantic neurons at density {dens[-1]:g}", poly[-1], f"{m} (all)", poly[-1] == m,
                            SRC_SWEEP))
        sparse = [v for d, v in zip(dens, nontrivial, strict=True) if d <= 0.01]
        checks.append(Check("features with a non-trivial weight (> 0.1) at density ≤ 0.01", sparse,
                            f"all > {m // 2}", bool(sparse) and all(v > m // 2 for v in sparse), SRC_SWEEP,
                            "more features than neuron pairs ⇒ computation in superposition"))
        motifs = {}
        for c, d in enumerate(dens):
            found = find_asymmetric_motifs(run.params["W1"][best[c]], run.params["W2"][best[c]])
            motifs[f"{d:g}"] = found
        with_inh = sum(len(f["inhibitors"]) > 0 for fs in motifs.values() for f in fs)
        total = sum(len(fs) for fs in motifs.values())
        checks.append(at_least("asymmetric-superposition motifs with an inhibitory neuron (all densities)", with_inh, 1,
                               SRC_MOTIF, f"{total} motifs without requiring the inhibitor; per density in the table"))
        titles = [f"density {d:g}: {p} poly" for d, p in zip(dens, poly, strict=True)]
        figs = [
            figure("stacks", "neuron_stack", W1, titles, order="largest-feature", ncols=2,
                   caption="Neuron stack plots of the rescaled W1 (colour = feature importance rank, dark = most "
                           "important; neurons sorted by their largest feature)."),
            figure("polysemantic", "lines", dens, {"polysemantic neurons": poly, "monosemantic neurons": mono,
                                                   "features with a weight > 0.1": nontrivial},
                   xlabel="feature density 1−S", ylabel="count", log_x=True,
                   caption="Mono/polysemantic neurons and represented features against density."),
            figure("W1", "weight_matrix", W1[[0, len(dens) // 2, len(dens) - 1]],
                   [f"density {dens[i]:g}" for i in (0, len(dens) // 2, len(dens) - 1)], ncols=3,
                   caption="Rescaled W1 (neurons × features) at the densest, middle and sparsest density."),
        ]
        tables = {"per_density": [{"density": d, "polysemantic": p, "monosemantic": mo, "features_nontrivial": f,
                                   "duplicate_neurons": du, "motifs": len(motifs[f"{d:g}"]),
                                   "motifs_with_inhibitor": sum(len(x["inhibitors"]) > 0 for x in motifs[f"{d:g}"])}
                                  for d, p, mo, f, du in zip(dens, poly, mono, nontrivial, duplicates, strict=True)],
                  "motifs": {d: fs[:10] for d, fs in motifs.items()}}
        return Analysis(checks, figs, tables)
