"""§6.7 (F7, decision D19): compressed computation — Braun et al.'s residual MLP and the critique's ablations.

resid_mlp1 (100 features, d_mlp = 50, d_embed = 1000, frozen random embedding, labels x + ReLU(x)) appears to compute
100 ReLUs with 50 neurons: it beats the naive baseline (50 ReLUs exact, L/p = 1/12). Bhagat et al. show the gain
comes from the mixing matrix M = I − W_E W_Eᵀ the embedding adds to the MLP's target: an MLP-only model trained on
ReLU(x) + σ·x M reproduces it, and without M (σ = 0) it returns to the naive loss. Every number here is computed
from the saved weights (tmslab.cis) on fresh samples.
"""

from __future__ import annotations

import math

import torch

from tmslab import cis
from tmslab.config import TrainConfig
from tmslab.experiments import register
from tmslab.experiments.base import Analysis, Check, Context, Experiment, at_most, figure, within

SRC = "§6.7, D19"
N, D_MLP, D_EMBED, P = 100, 50, 1000, 0.01
SIGMAS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)
P_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
NAIVE = cis.naive_lp(N, D_MLP)
MLP_STEPS = 5_000

#: Rows only full fidelity judges (name, expected): quick mode lists them as not evaluated (D18).
FULL_ONLY = (
    ("MLP-only, labels ReLU(x) (σ = 0): L/p ÷ (1/12)", "[0.97, 1.03]"),
    ("resid_mlp1 L/p at p = 0.01", "≤ 0.08333"),
    ("one-hot probe: mean ŷ_i(x_i = 1)", "> 1.3"),
    ("p sweep: resid_mlp1 below 1/12 at p = 0.01 and above it at p = 1", "L/p(0.01) < 0.08333 < L/p(1)"),
    ("σ sweep: argmin σ, and L/p at σ = 0.08", "argmin in (0, 0.05] and L/p(0.08) > 0.08333"),
    ("eigen-concentration (σ = 0.03): mean c_i, i < 40 and i > 60", "head ≥ 0.8 and tail ≤ 0.4"),
    ("semi-NMF vs trained σ = 0.03 model: L/p", "semi-NMF > trained"),
)


def _recipe(quick: bool, steps: int) -> dict:
    """§6.7's recipe: AdamW lr 3e-3, weight decay 0.01, batch 2048, cosine to 0 without warm-up (param-decomp's
    half cosine, `cosine-floor` with floor 0), seed 0."""
    return dict(
        n_features=N,
        n_hidden=D_MLP,
        density=[P],
        batch_size=2048,
        steps=steps,
        lr=3e-3,
        weight_decay=0.01,
        schedule="cosine-floor",
        lr_floor=0.0,
        seed=0,
        eval_samples=20_000 if quick else 100_000,
    )


def _sigma_name(sigma: float) -> str:
    return f"mlp-sigma-{sigma:g}"


@register
class CompressedComputation(Experiment):
    name = "compressed-computation"
    title = "Compressed computation: the residual MLP of APD and its critique"
    claim = (
        "resid_mlp1 computes 100 ReLUs with 50 neurons better than the naive baseline (Braun et al. 2025); the gain "
        "comes from the mixing matrix I − W_E W_Eᵀ that the frozen embedding adds to the labels and vanishes without "
        "it (Bhagat et al., arXiv 2606.14673)."
    )
    spec_ref = "§6.7, D19 (F7)"
    notes = (
        "Models and data as §6.7: resid_mlp1 (n = 100, d_mlp = 50, d_embed = 1000, one block, no biases, W_E randn "
        "with unit rows, W_U = W_Eᵀ, both frozen, nn.Linear's default init), x_i = U(−1, 1)·Bernoulli(0.01), "
        "labels x + ReLU(x), mean squared error over batch × outputs, AdamW lr 3e-3, weight decay 0.01, batch 2048, "
        "1,000 steps, cosine to 0 (param-decomp's half cosine: tmslab's cosine-floor with floor 0), seed 0. "
        "Chosen where the spec is silent: the MLP-only models (act(x W_in) W_out, 100 → 50 → 100, same recipe) train "
        "5,000 steps (the critique's nb2 trains 10,000; at 1,000 steps the model without mixing stopped at 1.042 × "
        "naive, at 2,000 at 1.024; 10,000 would not fit the full budget on this shared machine); the embedding-mixing "
        "model uses the embedding drawn for the same seed as resid_mlp1 (so its M is resid_mlp1's); the σ sweep's "
        "M is a symmetric matrix of N(0, 1) entries (upper triangle mirrored, diagonal kept, the critique's "
        "symmetric noisy mixing), σ = 0 being the run without mixing. L is the squared error averaged over the 100 "
        "outputs (tmslab's eval_loss sums them: L = eval_loss/100); every L/p is measured on 10⁶ fresh samples "
        "(fixed seed, the same for every model) and shown with its standard error. The p sweep evaluates "
        "resid_mlp1 (trained at 0.01) at p = 0.001 … 1. c_i = cos(E_i, A E_i), E_i the eigenvectors of (M + Mᵀ)/2 "
        "in descending eigenvalue order, A = W_out W_in the MLP without its ReLU, on the σ = 0.03 model; i counts "
        "from 0. Semi-NMF: U ≥ 0 from a multiplicative-update NMF of |I + σM| (2,000 iterations, seed 0), then 500 "
        "rounds of V = pinv(U)(I + σM) and 5 projected gradient steps on U (the critique's nb3), used as W_in = Uᵀ, "
        "W_out = Vᵀ; it is a construction, not a training (sanity rows, D20), except its comparison with the "
        "trained σ = 0.03 model. D20 (null models): the rows the untrained weights would also meet on their own "
        "(ŷ_i(−1) ≈ −1: the residual stream carries x; L/p above 1/12 at σ = 0.08 or at p = 1: the untrained loss "
        "is ≈ 1/6 or more) are judged together with the part that training must produce, as D19 states them in one "
        "clause (σ sweep: minimum in (0, 0.05] and above 1/12 at 0.08; p sweep: below 1/12 at 0.01 and above at 1; "
        "c_i: ≥ 0.8 on the head and ≤ 0.4 on the tail), and ŷ_i(−1) is a sanity row. Quick fidelity trains only the "
        "MLP-only model with the embedding's mixing, for 1,000 steps (the other claims need full fidelity)."
    )
    quick_not_evaluated = (
        "resid_mlp1", "one-hot probe", "labels ReLU(x) (σ = 0)", "σ sweep", "p sweep", "eigen-concentration",
        "semi-NMF",
    )  # fmt: skip

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        if quick:  # one claim in seconds: the embedding's mixing at 1,000 steps (measured L/p ÷ (1/12) = 0.865)
            return {"mlp-embedding": TrainConfig(model="mlp", mixing="embedding", d_embed=D_EMBED,
                                                 **_recipe(quick, 1_000))}  # fmt: skip
        out = {
            "mlp-clean": TrainConfig(model="mlp", **_recipe(quick, MLP_STEPS)),
            "mlp-embedding": TrainConfig(model="mlp", mixing="embedding", d_embed=D_EMBED, **_recipe(quick, MLP_STEPS)),
            "resid-mlp1": TrainConfig(model="resid-mlp", d_embed=D_EMBED, **_recipe(quick, 1_000)),
        }
        for sigma in SIGMAS[1:]:
            out[_sigma_name(sigma)] = TrainConfig(model="mlp", mixing="gaussian", mixing_scale=sigma,
                                                  **_recipe(quick, MLP_STEPS))  # fmt: skip
        return out

    def analyze(self, ctx: Context) -> Analysis:
        samples = 300_000 if ctx.quick else 1_000_000
        checks: list[Check] = []
        tables: dict = {"naive": NAIVE, "n_samples": samples}
        figs = []

        def lp(name: str, p: float = P) -> cis.Evaluation:
            return cis.evaluate(ctx.runs[name].model, p, samples)

        # ---- the naive baseline (sanity: a closed form checked by Monte Carlo) --------------------------------
        naive = cis.evaluate(cis.mlp_model(cis.naive_params(N, D_MLP)), P, samples)
        tables["naive_mc"] = naive.to_dict()
        checks.append(
            within(
                "naive baseline: Monte-Carlo L/p ÷ (1/12)",
                float(naive.lp[0]) / NAIVE,
                0.98,
                1.02,
                SRC,
                f"50 ReLUs exact, 50 not computed, labels ReLU(x) at p = 0.01 on {samples:,} samples (L/p = "
                f"{float(naive.lp[0]):.5f} ± {float(naive.se[0]):.5f}); ±2% is ≥ 3.5 standard errors at 3·10⁵ samples",
                kind="sanity",
            )
        )

        # ---- the MLP-only models: with and without the embedding's mixing --------------------------------------
        embed = lp("mlp-embedding")
        tables["mlp_embedding"] = embed.to_dict()
        checks.append(
            at_most(
                "MLP-only, labels ReLU(x) + (I − W_E W_Eᵀ)x: L/p ÷ (1/12)",
                round(float(embed.lp[0]) / NAIVE, 5),
                0.95,
                SRC,
                f"L/p = {float(embed.lp[0]):.5f} ± {float(embed.se[0]):.5f}; the embedding's mixing reproduces the "
                "gain (critique claim 1): at least 5% below naive, as D19",
            )
        )
        if ctx.quick:
            figs.append(self._lp_bars({"naive (50 exact ReLUs)": naive, "embedding mixing": embed}))
            checks.append(self._frozen_embedding_sanity(None))
            checks += [Check(name, None, expected, False, SRC) for name, expected in FULL_ONLY]
            return Analysis(checks, figs, tables)
        clean = lp("mlp-clean")
        tables["mlp_clean"] = clean.to_dict()
        checks.append(
            within(
                "MLP-only, labels ReLU(x) (σ = 0): L/p ÷ (1/12)",
                float(clean.lp[0]) / NAIVE,
                0.97,
                1.03,
                SRC,
                f"L/p = {float(clean.lp[0]):.5f} ± {float(clean.se[0]):.5f}; without mixing the gain vanishes "
                "(critique claim 2); ±3% as D19",
            )
        )

        # ---- resid_mlp1 -------------------------------------------------------------------------------------------
        resid = ctx.runs["resid-mlp1"]
        model = resid.model
        r = lp("resid-mlp1")
        tables["resid_mlp1"] = r.to_dict()
        checks.append(
            at_most(
                "resid_mlp1 L/p at p = 0.01",
                round(float(r.lp[0]), 5),
                round(NAIVE, 5),
                SRC,
                f"± {float(r.se[0]):.5f} (standard error, {samples:,} samples); below the naive 1/12 = 0.08333 is the "
                "APD claim ('computes 100 ReLUs with 50 neurons')",
            )
        )
        probe = cis.one_hot_probe(model)
        tables["probe"] = {k: float(v[0]) for k, v in probe.items()}
        checks.append(
            Check(
                "one-hot probe: mean ŷ_i(x_i = 1)",
                round(float(probe["plus"][0]), 4),
                "> 1.3",
                float(probe["plus"][0]) > 1.3,
                SRC,
                "label 2; the untrained model gives ≈ 1 (the residual carries x)",
            )
        )
        checks.append(
            within(
                "one-hot probe: mean ŷ_i(x_i = −1)",
                float(probe["minus"][0]),
                -1.2,
                -0.8,
                SRC,
                "label −1; the residual stream carries x, so the untrained model meets this too (D20): a sanity row "
                "that training leaves the negative half alone",
                kind="sanity",
            )
        )
        checks.append(self._frozen_embedding_sanity(resid))
        with torch.no_grad():
            ref, folded = model.forward_reference(torch.eye(N)[None]), model(torch.eye(N)[None])
        checks.append(
            at_most(
                "resid_mlp1: folded forward − param-decomp's order (max |Δ| on one-hot inputs)",
                float((ref - folded).abs().max()),
                1e-5,
                "§6.7",
                "the same function computed in another order (float32 rounding of sums over 1,000 terms is ≈ 1e-7)",
                kind="sanity",
            )
        )

        # ---- p sweep (resid_mlp1 trained at 0.01) ------------------------------------------------------------------
        sweep = {p: cis.evaluate(model, p, samples) for p in P_GRID}
        tables["p_sweep"] = [e.to_dict() for e in sweep.values()]
        lo, hi = float(sweep[P].lp[0]), float(sweep[1.0].lp[0])
        checks.append(
            Check(
                "p sweep: resid_mlp1 below 1/12 at p = 0.01 and above it at p = 1",
                [round(lo, 5), round(hi, 5)],
                "L/p(0.01) < 0.08333 < L/p(1)",
                lo < NAIVE < hi,
                SRC,
                "the gain needs sparsity (critique claim 4); judged as one row because an untrained model is above "
                "1/12 at every p (D20)",
            )
        )
        figs.append(
            figure(
                "lp-vs-p",
                "lines",
                list(P_GRID),
                {"resid_mlp1 (trained at p = 0.01)": [float(e.lp[0]) for e in sweep.values()]},
                xlabel="evaluation feature probability p",
                ylabel="L / p",
                log_x=True,
                log_y=True,
                hlines={"naive 1/12": NAIVE},
                caption="Loss per feature probability of resid_mlp1 across evaluation densities (10⁶ samples each), "
                "against the naive baseline.",
            )
        )

        # ---- σ sweep --------------------------------------------------------------------------------------------
        sig = {0.0: clean, **{s: lp(_sigma_name(s)) for s in SIGMAS[1:]}}
        tables["sigma_sweep"] = [{"sigma": s, **e.to_dict()} for s, e in sig.items()]
        best = min(sig, key=lambda s: float(sig[s].lp[0]))
        top = float(sig[0.08].lp[0])
        checks.append(
            Check(
                "σ sweep: argmin σ, and L/p at σ = 0.08",
                [best, round(top, 5)],
                "argmin in (0, 0.05] and L/p(0.08) > 0.08333",
                0 < best <= 0.05 and top > NAIVE,
                SRC,
                "critique claim 3: best near the embedding's own scale (off-diagonal std 1/√1000 ≈ 0.032), worse than "
                "naive a few times larger; one row because an untrained model is above 1/12 at σ = 0.08 (D20)",
            )
        )
        figs.append(
            figure(
                "lp-vs-sigma",
                "lines",
                list(sig),
                {"trained MLP-only (symmetric Gaussian M)": [float(e.lp[0]) for e in sig.values()]},
                xlabel="mixing scale σ",
                ylabel="L / p",
                hlines={"naive 1/12": NAIVE},
                vlines={"embedding scale 1/√1000": 1 / math.sqrt(D_EMBED)},
                caption="L/p at p = 0.01 of MLP-only models trained on ReLU(x) + σ·x M against σ.",
            )
        )

        # ---- eigen-concentration (σ = 0.03) ----------------------------------------------------------------------
        run = ctx.runs[_sigma_name(0.03)]
        M = cis.mixing_matrices(run.config)[0]
        c = cis.eigen_concentration(run.params["W_in"][0], run.params["W_out"][0], M)
        head, tail = float(c[: int(0.8 * D_MLP)].mean()), float(c[int(1.2 * D_MLP) + 1 :].mean())
        tables["eigen_concentration"] = [round(float(v), 5) for v in c]
        checks.append(
            Check(
                "eigen-concentration (σ = 0.03): mean c_i, i < 40 and i > 60",
                [round(head, 4), round(tail, 4)],
                "head ≥ 0.8 and tail ≤ 0.4",
                head >= 0.8 and tail <= 0.4,
                SRC,
                "critique claim 5: the MLP keeps the top d_mlp eigen-directions of the mixing; one row because random "
                "weights give c_i ≈ 0 everywhere, meeting the tail bound (D20)",
            )
        )
        figs.append(
            figure(
                "eigen-concentration",
                "lines",
                list(range(N)),
                {"c_i = cos(E_i, W_out W_in E_i)": c.tolist()},
                xlabel="eigenvector index i (descending eigenvalue)",
                ylabel="c_i",
                vlines={"d_mlp": D_MLP},
                caption="How well the σ = 0.03 MLP maps each eigenvector of the symmetrised mixing onto itself.",
            )
        )

        # ---- semi-NMF ----------------------------------------------------------------------------------------------
        nmf = {}
        for s in (0.01, 0.03):
            Ms = cis.mixing_matrices(ctx.runs[_sigma_name(s)].config)[0]
            nmf[s] = cis.evaluate(cis.mlp_model(cis.semi_nmf_params(Ms, D_MLP), Ms), P, samples)
        tables["semi_nmf"] = {str(s): e.to_dict() for s, e in nmf.items()}
        checks.append(
            at_most(
                "semi-NMF of I + 0.01·M: L/p",
                round(float(nmf[0.01].lp[0]), 5),
                round(NAIVE, 5),
                SRC,
                f"± {float(nmf[0.01].se[0]):.5f}; a construction from M, no training: a sanity row (D20), "
                "critique claim 6",
                kind="sanity",
            )
        )
        trained = float(sig[0.03].lp[0])
        checks.append(
            Check(
                "semi-NMF vs trained σ = 0.03 model: L/p",
                [round(float(nmf[0.03].lp[0]), 5), round(trained, 5)],
                "semi-NMF > trained",
                float(nmf[0.03].lp[0]) > trained,
                SRC,
                "critique claim 6: the factorisation beats naive at small σ but not the trained model",
            )
        )

        figs.append(self._probe_figure(model))
        figs.append(
            self._lp_bars(
                {"resid_mlp1": r, "no mixing": clean, "embedding mixing": embed, "semi-NMF σ = 0.01": nmf[0.01]}
            )
        )
        return Analysis(checks, figs, tables)

    def _frozen_embedding_sanity(self, run) -> Check:  # noqa: ANN001 - a Run or None
        """W_E has unit rows and W_U = W_Eᵀ exactly; on a run, W_E is also still the seed's draw (frozen)."""
        if run is None:
            W_E = cis.embedding(N, D_EMBED, 0)
            moved = 0.0
        else:
            W_E = run.params["W_E"][0]
            moved = float((W_E - cis.embedding(N, D_EMBED, run.config.seed)).abs().max())
        model_WU = W_E.T  # what CISModel.W_U returns, and what the param-decomp export writes
        worst = max(float((W_E.double().norm(dim=1) - 1).abs().max()), moved, float((model_WU - W_E.T).abs().max()))
        return at_most(
            "embedding: max(|‖W_E,i‖ − 1|, |W_U − W_Eᵀ|, change in training)",
            worst,
            1e-6,
            "§6.7",
            "unit rows up to float32 rounding; W_U = W_Eᵀ and W_E frozen exactly",
            kind="sanity",
        )

    @staticmethod
    def _probe_figure(model):  # noqa: ANN001, ANN205
        values = torch.linspace(-1, 1, 41)
        y = cis.response(model, values)[0]  # [V, i, j]
        diag = torch.diagonal(y, dim1=1, dim2=2)  # [V, n]
        return figure(
            "probe",
            "lines",
            values.tolist(),
            {
                "mean ŷ_i (feature i active)": diag.mean(-1).tolist(),
                "label x + ReLU(x)": (values + values.clamp_min(0)).tolist(),
                "max |ŷ_j|, j ≠ i": (y.abs() * (1 - torch.eye(N))).flatten(1).max(-1).values.tolist(),
            },
            xlabel="value of the one active feature x_i",
            ylabel="output",
            dash={"label x + ReLU(x)": "dash"},
            caption="One-hot probe of resid_mlp1: the output of the active feature (mean over features) and the "
            "largest off-target output.",
        )

    @staticmethod
    def _lp_bars(evals: dict):  # noqa: ANN205
        names = list(evals)
        return figure(
            "lp-models",
            "lines",
            list(range(len(names))),
            {"L/p": [float(evals[k].lp[0]) for k in names]},
            xlabel=" | ".join(f"{i}: {k}" for i, k in enumerate(names)),
            ylabel="L / p at p = 0.01",
            hlines={"naive 1/12": NAIVE},
            caption="L/p at p = 0.01 of each model (10⁶ samples at full fidelity) against the naive baseline.",
        )
