"""Computation in superposition: the compressed-computation models of Braun et al. 2025 (APD) and the critique's
measurements (Bhagat, Molas-Medina, Giglemiani, Heimersheim; paper-spec §6.7, decision D19).

The models themselves (`resid-mlp`, `mlp`) are ordinary TrainConfig kinds (tmslab.models.CISModel); this module
holds what the paper-spec measures on them:

* the frozen embedding (`embedding`) and the labels' mixing matrix M (`mixing_matrices`, `labels`);
* the naive baseline: d_mlp of the n ReLUs computed exactly, the rest not at all, L/p = (n − d_mlp)/n · 1/6
  (`naive_lp`, `naive_params` for its weights);
* `evaluate`: L/p on ≥ 10⁶ fresh samples with its standard error, where L is the squared error averaged over the
  n outputs (§6.7's loss; tmslab's eval_loss sums over outputs, i.e. is n·L);
* the one-hot probe (`one_hot_probe`), the eigen-concentration c_i (`eigen_concentration`) and the semi-non-negative
  factorisation baseline (`semi_nmf`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tmslab.config import ConfigError, TrainConfig
from tmslab.models import CISModel

#: Seed of the evaluation samples (as tmslab.config.EVAL_SEED: every model scored on the same samples).
EVAL_SEED = 2025

#: E[ReLU(x)²] for x ~ U(−1, 1): ½ · ∫₀¹ x² dx.
RELU_SQ = 1.0 / 6.0


def embedding(n_features: int, d_embed: int, seed: int) -> Tensor:
    """W_E [n, d_embed]: standard normal entries, each row scaled to unit length (paper-spec §6.7), drawn from
    its own generator seeded with `seed`, so that resid-mlp and mlp runs of one seed share it."""
    g = torch.Generator().manual_seed(seed * 7)
    w = torch.randn(n_features, d_embed, generator=g, dtype=torch.float64)
    return (w / w.norm(dim=1, keepdim=True)).float()


def embedding_mixing(W_E: Tensor) -> Tensor:
    """M = I − W_E W_Eᵀ [n, n]: what the frozen embedding adds to the MLP's target (paper-spec §6.7, equivalence:
    the MLP must fit ReLU(x) + x(I − G))."""
    W = W_E.double()
    return (torch.eye(W.shape[0], dtype=torch.float64) - W @ W.T).float()


def gaussian_mixing(n_features: int, seed: int) -> Tensor:
    """A symmetric matrix of N(0, 1) entries [n, n] (upper triangle mirrored, diagonal kept), as the critique's
    symmetric noisy mixing; σ is applied by the caller."""
    g = torch.Generator().manual_seed(seed * 7 + 3)
    m = torch.randn(n_features, n_features, generator=g)
    return torch.triu(m) + torch.triu(m, diagonal=1).T


def mixing_matrices(config: TrainConfig) -> Tensor:
    """σ·M per instance [K, n, n] of an mlp run (zeros for resid-mlp and mixing "none"); instance k's matrix comes
    from its own seed, config.instance_seed(k)."""
    k, n = config.n_instances, config.n_features
    out = torch.zeros(k, n, n)
    if config.model != "mlp" or config.mixing == "none":
        return out
    for i in range(k):
        seed = config.instance_seed(i)
        if config.mixing == "embedding":
            out[i] = embedding_mixing(embedding(n, config.d_embed, seed))
        else:
            out[i] = gaussian_mixing(n, seed)
    return out * config.mixing_scale


def labels(x: Tensor, kind: str = "resid-mlp", act: str = "relu", M: Tensor | None = None) -> Tensor:
    """The targets of paper-spec §6.7 for x [..., batch, n]: resid-mlp x + act(x) (param-decomp's act_plus_resid
    with unit coefficients); mlp act(x) + x M (M already scaled by σ; None: no mixing)."""
    a = torch.nn.functional.gelu(x) if act == "gelu" else torch.relu(x)
    if kind == "resid-mlp":
        return x + a
    if kind != "mlp":
        raise ConfigError(f"labels are defined for the resid-mlp and mlp models, got {kind!r}.")
    return a if M is None else a + torch.matmul(x, M)


def sample(batch: int, n_features: int, p: float, generator: torch.Generator) -> Tensor:
    """x_i = U(−1, 1) · Bernoulli(p), independently [batch, n] (all-zero rows kept, §6.7)."""
    values = torch.rand(batch, n_features, generator=generator) * 2 - 1
    return values * (torch.rand(batch, n_features, generator=generator) < p)


# ---- the naive baseline ------------------------------------------------------------------------------------


def naive_lp(n_features: int, d_mlp: int) -> float:
    """L/p of the naive solution: d_mlp ReLUs computed exactly, the other n − d_mlp not at all, each missed one
    costing p·E[ReLU(x)²] = p/6 of the n-output mean: (n − d_mlp)/n · 1/6 (1/12 for 100 features, 50 neurons)."""
    if not 0 < d_mlp <= n_features:
        raise ConfigError(f"d_mlp must be in [1, n_features = {n_features}], got {d_mlp}.")
    return (n_features - d_mlp) / n_features * RELU_SQ


def naive_params(n_features: int, d_mlp: int) -> dict[str, Tensor]:
    """mlp weights (one instance) of the naive solution: neuron j reads and writes feature j, j < d_mlp."""
    W_in = torch.zeros(1, d_mlp, n_features)
    W_in[0, torch.arange(d_mlp), torch.arange(d_mlp)] = 1.0
    return {"W_in": W_in, "W_out": W_in.transpose(1, 2).contiguous()}


# ---- evaluation ---------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """L/p per instance with its standard error (over samples), at density p."""

    p: float
    n_samples: int
    lp: Tensor
    """[instances] L/p, L the squared error averaged over samples and the n outputs."""
    se: Tensor
    """[instances] standard error of L/p: the per-sample losses' standard deviation / √n_samples / p."""

    def to_dict(self, k: int = 0) -> dict[str, float]:
        return {"p": self.p, "n_samples": self.n_samples, "L/p": float(self.lp[k]), "se": float(self.se[k])}


@torch.no_grad()
def evaluate(
    model: CISModel, p: float, n_samples: int = 1_000_000, seed: int = EVAL_SEED, chunk: int = 65_536
) -> Evaluation:
    """L/p of every instance on n_samples fresh samples at density p (the same samples for every instance and every
    call with this seed), with the standard error of the mean over samples."""
    if not 0 < p <= 1:
        raise ConfigError(f"p must be in (0, 1], got {p}.")
    if n_samples < 2:
        raise ConfigError(f"n_samples must be >= 2, got {n_samples}.")
    g = torch.Generator().manual_seed(seed)
    k, n = model.n_instances, model.n_features
    total = torch.zeros(k, dtype=torch.float64)
    total_sq = torch.zeros(k, dtype=torch.float64)
    for done in range(0, n_samples, chunk):
        x = sample(min(chunk, n_samples - done), n, p, g).expand(k, -1, -1)
        per_sample = ((model(x) - model.target(x)) ** 2).mean(-1).double()  # [K, B]
        total += per_sample.sum(-1)
        total_sq += (per_sample**2).sum(-1)
    mean = total / n_samples
    var = (total_sq / n_samples - mean**2).clamp_min(0) * n_samples / (n_samples - 1)
    return Evaluation(p, n_samples, (mean / p).float(), (var.sqrt() / math.sqrt(n_samples) / p).float())


# ---- the one-hot probe --------------------------------------------------------------------------------------


@torch.no_grad()
def response(model: CISModel, values: Tensor) -> Tensor:
    """ŷ[k, v, i, j]: output j of instance k for the input v·e_i (one feature active), values [V]."""
    k, n = model.n_instances, model.n_features
    eye = torch.eye(n)
    x = (values[:, None, None] * eye).reshape(1, -1, n).expand(k, -1, -1)
    return model(x).reshape(k, len(values), n, n)


@torch.no_grad()
def one_hot_probe(model: CISModel) -> dict[str, Tensor]:
    """The APD paper's probe (§6.7): for every feature i, x = ±e_i. Per instance: mean over i of ŷ_i(1) (label 2
    for resid-mlp) and ŷ_i(−1) (label −1), and the largest and the mean |off-target output| |ŷ_j|, j ≠ i."""
    y = response(model, torch.tensor([1.0, -1.0]))
    n = model.n_features
    diag = torch.diagonal(y, dim1=2, dim2=3)  # [K, 2, n]
    off = y.abs() * (1 - torch.eye(n))
    return {
        "plus": diag[:, 0].mean(-1),
        "minus": diag[:, 1].mean(-1),
        "off_max": off.flatten(1).max(-1).values,
        "off_mean": off.flatten(1).sum(-1) / (2 * n * (n - 1)),
    }


# ---- eigen-concentration ------------------------------------------------------------------------------------


def eigen_concentration(W_in: Tensor, W_out: Tensor, M: Tensor) -> Tensor:
    """c_i = cos(E_i, A E_i) for one mlp model (paper-spec §6.7, the critique's nb3): E_i the eigenvectors of the
    symmetrised mixing matrix (M + Mᵀ)/2 in descending order of eigenvalue, A the linearised MLP. With
    nn.Linear layouts W_in [d_mlp, n], W_out [n, d_mlp] (h = x W_inᵀ, y = h W_outᵀ) the map is y = A x with
    A = W_out W_in, which is (w_in w_out)ᵀ in the critique's x·w_in·w_out convention. Returns c [n]."""
    M = M.double()
    vals, vecs = torch.linalg.eigh((M + M.T) / 2)
    E = vecs[:, torch.argsort(vals, descending=True)]  # columns E_i
    AE = W_out.double() @ W_in.double() @ E
    return torch.nn.functional.cosine_similarity(E, AE, dim=0).float()


# ---- the semi-non-negative factorisation baseline -------------------------------------------------------------


def _nmf(X: np.ndarray, rank: int, rng: np.random.Generator, iters: int) -> np.ndarray:
    """Non-negative factor W of X ≈ W H (X ≥ 0) by Lee & Seung's multiplicative updates from a random start
    scaled as scikit-learn's init="random" (√(mean X / rank))."""
    scale = math.sqrt(X.mean() / rank)
    W = np.abs(rng.standard_normal((X.shape[0], rank))) * scale
    H = np.abs(rng.standard_normal((rank, X.shape[1]))) * scale
    eps = 1e-12
    for _ in range(iters):
        H *= (W.T @ X) / (W.T @ W @ H + eps)
        W *= (X @ H.T) / (W @ H @ H.T + eps)
    return W


def semi_nmf(
    target: Tensor, rank: int, seed: int = 0, nmf_iters: int = 2000, iters: int = 500, inner: int = 5
) -> tuple[Tensor, Tensor]:
    """U ≥ 0 [n, rank] and V = pinv(U)·T [rank, n] with U V ≈ T (the critique's semi-NMF of T = I + σM, nb3):
    U starts as an NMF of |T|; then, `iters` times, V ← pinv(U) T and `inner` projected gradient steps on
    ½‖U V − T‖² keep U ≥ 1e-8, the step size on a cosine from 0.1 to 0.001. As an mlp: W_in = Uᵀ, W_out = Vᵀ."""
    T = target.double().numpy()
    U = _nmf(np.abs(T), rank, np.random.default_rng(seed), nmf_iters)
    V = np.linalg.pinv(U) @ T
    for it in range(iters):
        step = 0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos(math.pi * it / iters))
        if np.linalg.cond(U) < 1e12:
            V = np.linalg.pinv(U) @ T
        for _ in range(inner):
            U = np.maximum(U - step * (U @ V - T) @ V.T, 1e-8)
    return torch.from_numpy(U).float(), torch.from_numpy(V).float()


def semi_nmf_params(M: Tensor, d_mlp: int, seed: int = 0) -> dict[str, Tensor]:
    """mlp weights (one instance) of the semi-NMF of I + M (M already scaled by σ): W_in = Uᵀ, W_out = Vᵀ."""
    U, V = semi_nmf(torch.eye(M.shape[0]) + M, d_mlp, seed)
    return {"W_in": U.T.contiguous()[None], "W_out": V.T.contiguous()[None]}


def mlp_model(params: dict[str, Tensor], M: Tensor | None = None, act: str = "relu") -> CISModel:
    """A one-instance mlp model holding W_in [1, d_mlp, n], W_out [1, n, d_mlp] with label mixing M [n, n] (σ
    included)."""
    _, m, n = params["W_in"].shape
    model = CISModel("mlp", 1, n, m, act=act)
    model.load_state_dict({"W_in": params["W_in"], "W_out": params["W_out"]})
    if M is not None:
        model.M.copy_(M[None])
    return model
