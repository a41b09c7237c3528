"""Sparse autoencoders on toy models, with SAELens: dictionary learning against a known ground truth.

In a tmslab model the hidden activations are h = W x, so the columns W_i are the true feature
directions (paper-spec §6.2, §6.6). This module streams hidden activations sampled from a run's own
input distribution (no stored dataset) into SAELens's trainer, saves each SAE in SAELens's format
(safetensors + cfg.json, `SAE.load_from_disk`) and scores it against the ground truth.

    source = tmslab.sae.RunSource.from_dir("runs/tms", instance=0)
    result = tmslab.sae.train(source, arch="topk", k=3, ratio=4, samples=2_000_000, out="saes/topk")
    result.metrics["mmcs"]

Ground truth of a run: the directions W_i / ‖W_i‖ of its *learned* features (‖W_i‖ > 0.5, paper
§2.3). Synthetic sources (Sharkey et al.'s toy data, §6.2) carry their own feature vectors.
SAELens is imported only inside the functions that need it; without the extra they raise
`SAEExtraMissing` (a ConfigError: the CLI prints one line and exits 2).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor

from tmslab.config import CIS_KINDS, ConfigError, versions

Arch = Literal["standard", "topk", "batchtopk", "jumprelu", "matryoshka"]
INSTALL_HINT = "SAELens is not installed; pip install 'tmslab[sae]'"
#: A true feature counts as recovered when some decoder atom has at least this cosine with it (issue 16).
RECOVERED_COS = 0.9
#: A run's feature is ground truth when the model learned it: ‖W_i‖ > 0.5 (paper §2.3, as in tmslab.metrics).
LEARNED_NORM = 0.5
METRICS_FILE = "tmslab_sae.json"
#: SAELens's weights file in a saved SAE (sae_lens.constants.SAE_WEIGHTS_FILENAME).
WEIGHTS_FILE = "sae_weights.safetensors"
#: Seed of the fresh activations every SAE is scored on.
EVAL_SEED = 12345


class SAEExtraMissing(ConfigError):
    """SAELens (the `sae` extra) is not installed."""


def require_saelens() -> Any:
    """The sae_lens module, or SAEExtraMissing with the install line."""
    try:
        import sae_lens
    except ImportError:
        raise SAEExtraMissing(INSTALL_HINT) from None
    return sae_lens


# ---- activation sources ---------------------------------------------------------------------------


class Source:
    """Streams (hidden activations, true feature coefficients) and knows the true feature directions."""

    features: Float[Tensor, "gt d_in"]
    """Ground-truth directions, unit norm, one row per true feature."""
    parents: dict[int, int] = {}
    """Hierarchy: child index → parent index (indices into the rows of `features`); the child is
    active only when its parent is (the setting of feature-absorption studies)."""

    @property
    def d_in(self) -> int:
        return self.features.shape[1]

    @property
    def n_true(self) -> int:
        return self.features.shape[0]

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """([batch, d_in] activations, [batch, n_true] coefficients of the true features)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def batches(self, batch: int, seed: int) -> Iterator[Tensor]:
        """An endless stream of activation batches (fresh samples every step)."""
        g = torch.Generator().manual_seed(seed)
        while True:
            yield self.sample(batch, g)[0]


def _apply_hierarchy(x: Tensor, parents: dict[int, int]) -> Tensor:
    """Zero every child where its parent is zero (parents before children, so chains resolve)."""
    if not parents:
        return x
    x = x.clone()
    for child, parent in sorted(parents.items(), key=lambda cp: _depth(cp[0], parents)):
        x[:, child] = torch.where(x[:, parent] > 0, x[:, child], torch.zeros((), dtype=x.dtype))
    return x


def _depth(i: int, parents: dict[int, int]) -> int:
    d = 0
    while i in parents:
        i, d = parents[i], d + 1
        if d > len(parents):
            raise ConfigError("the feature hierarchy has a cycle; each child needs a chain of parents to a root.")
    return d


def check_parents(parents: dict[int, int], n: int) -> dict[int, int]:
    """Validate a child → parent map over n features (ints, in range, no self-parent, no cycle)."""
    out = {}
    for c, p in parents.items():
        for v in (c, p):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
                raise ConfigError(f"hierarchy indices must be feature indices 0..{n - 1}, got {v!r}.")
        if c == p:
            raise ConfigError(f"feature {c} cannot be its own parent.")
        out[int(c)] = int(p)
    for c in out:
        _depth(c, out)
    return out


class RunSource(Source):
    """Hidden activations of one instance of a tmslab run, on fresh samples of the run's own distribution.

    Ground truth: the learned features (‖W_i‖ > 0.5). The activations still contain every feature's
    contribution (unlearned ones have small W_i), exactly as the model computes them.
    """

    def __init__(self, run: Any, instance: int = 0, parents: dict[int, int] | None = None) -> None:
        from tmslab.data import make_distribution

        n_inst = run.config.n_instances
        if isinstance(instance, bool) or not isinstance(instance, int) or not 0 <= instance < n_inst:
            raise ConfigError(f"--instance must be in 0..{n_inst - 1} for {run.path}, got {instance!r}.")
        self.run, self.instance = run, instance
        W = run.W[instance].float()  # [hidden, features]
        self.W = W
        # The model's hidden layer (tmslab.models.ToyModel.hidden) for this one instance.
        self.relu = run.config.model in ("hidden-relu", "abs")
        norms = W.norm(dim=0)
        self.learned = torch.nonzero(norms > LEARNED_NORM).flatten()
        if len(self.learned) == 0:
            raise ConfigError(f"instance {instance} of {run.path} has no learned feature (‖W_i‖ > 0.5).")
        self.features = (W[:, self.learned] / norms[self.learned]).T.contiguous()
        self.scale = norms[self.learned]
        c = run.config
        self.density = c.config_density(instance // c.restarts)  # per feature: a density law is a list
        density = torch.tensor(self.density, dtype=torch.float32)[None]
        # The run's own training distribution (tmslab.training.initial): signed values for the absolute-value
        # and §6.7 models, active values U(0, value_max).
        self.signed = c.model == "abs" or c.model in CIS_KINDS
        self.distribution = make_distribution(
            c.distribution, density, signed=self.signed, set_size=c.set_size, value_max=c.value_max
        )
        # Hierarchy over input features (applied when sampling x); both ends must be learned features, and
        # `parents` (what absorption reads) is the same map in ground-truth row indices.
        self.input_parents = check_parents(parents or {}, c.n_features)
        row = {int(f): r for r, f in enumerate(self.learned)}
        for f in (f for pair in self.input_parents.items() for f in pair):
            if f not in row:
                raise ConfigError(f"hierarchy feature {f} is not a learned feature of instance {instance}.")
        self.parents = {row[ch]: row[pa] for ch, pa in self.input_parents.items()}

    @classmethod
    def from_dir(cls, path: str | Path, instance: int = 0, parents: dict[int, int] | None = None) -> RunSource:
        from tmslab.io import load_run

        return cls(load_run(path), instance, parents)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = self.distribution.sample(batch, generator)[0]
        x = _apply_hierarchy(x, self.input_parents)
        h = x @ self.W.T
        h = torch.relu(h) if self.relu else h
        # Coefficient of true feature i along its unit direction: x_i ‖W_i‖.
        return h, x[:, self.learned] * self.scale

    def describe(self) -> dict[str, Any]:
        c = self.run.config
        # Everything the activation stream depends on, so that a saved SAE is reused only for the same stream:
        # every feature's density (a density law differs from a constant beyond its first value), the value
        # range and sign, and a fingerprint of the weights (a retrained or re-initialised model at the same
        # path is a different source).
        return {
            "kind": "run",
            "run": str(self.run.path),
            "instance": self.instance,
            "model": c.model,
            "n_features": c.n_features,
            "n_hidden": c.n_hidden,
            "distribution": c.distribution,
            "density": self.density,
            "value_max": c.value_max,
            "signed": self.signed,
            "set_size": c.set_size,
            "weights": weights_fingerprint(self.W),
            "n_true": self.n_true,
            "learned": self.learned.tolist(),
            "parents": {str(k): v for k, v in self.input_parents.items()},
        }


def weights_fingerprint(W: Tensor) -> str:
    """sha256 (first 16 hex digits) of a weight matrix's float32 bytes: the identity of a model in a cache key."""
    import hashlib

    return hashlib.sha256(W.detach().float().contiguous().numpy().tobytes()).hexdigest()[:16]


class SharkeySource(Source):
    """Sharkey et al.'s toy data (paper-spec §6.2): G unit Gaussian features in d dims; per sample a
    correlated Gaussian (random covariance) through the normal CDF gives each feature's probability,
    decayed by decay**i and rescaled so that `mean_active` features are active on average; active
    coefficients ~ U[0, 1]. The decay form (multiplication by decay**i) is Cunningham's; the post's is
    unverified."""

    def __init__(
        self,
        n_true: int = 128,
        d_in: int = 64,
        mean_active: float = 5.0,
        decay: float = 0.99,
        seed: int = 0,
        parents: dict[int, int] | None = None,
    ) -> None:
        if n_true < 1 or d_in < 1:
            raise ConfigError(f"toy data needs n_true >= 1 and d_in >= 1, got {n_true}, {d_in}.")
        if not 0 < mean_active <= n_true:
            raise ConfigError(f"mean_active must be in (0, {n_true}], got {mean_active}.")
        g = torch.Generator().manual_seed(seed)
        feats = torch.randn(n_true, d_in, generator=g)
        self.features = feats / feats.norm(dim=1, keepdim=True)
        a = torch.randn(n_true, n_true, generator=g)
        cov = a @ a.T / n_true + 1e-3 * torch.eye(n_true)
        sd = cov.diagonal().sqrt()
        self.chol = torch.linalg.cholesky(cov / sd[:, None] / sd[None, :])  # a correlation matrix
        weights = decay ** torch.arange(n_true, dtype=torch.float32)
        # E[Φ(z)] = 1/2 for a standard normal z, so this scale gives `mean_active` expected actives.
        self.prob_scale = weights * (mean_active / (0.5 * weights.sum()))
        if self.prob_scale.max() > 1:
            raise ConfigError(f"mean_active {mean_active} is too large for {n_true} features with decay {decay}.")
        self.n, self.d, self.mean_active, self.decay, self.seed = n_true, d_in, mean_active, decay, seed
        self.parents = check_parents(parents or {}, n_true)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        z = torch.randn(batch, self.n, generator=generator) @ self.chol.T
        p = 0.5 * (1 + torch.erf(z / math.sqrt(2))) * self.prob_scale
        active = torch.rand(batch, self.n, generator=generator) < p
        coef = torch.where(active, torch.rand(batch, self.n, generator=generator), torch.zeros(()))
        coef = _apply_hierarchy(coef, self.parents)
        return coef @ self.features, coef

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "sharkey",
            "n_true": self.n,
            "d_in": self.d,
            "mean_active": self.mean_active,
            "decay": self.decay,
            "seed": self.seed,
            "parents": {str(k): v for k, v in self.parents.items()},
        }


# ---- metrics against the ground truth --------------------------------------------------------------


def cosines(features: Float[Tensor, "gt d_in"], W_dec: Float[Tensor, "latents d_in"]) -> Float[Tensor, "gt latents"]:
    """Cosine of every true feature with every decoder atom (zero-norm atoms count as cosine 0)."""
    f = features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return f @ d.T


def mean_correlation(features: Float[Tensor, "gt d_in"], W_dec: Float[Tensor, "latents d_in"]) -> float:
    """Mean correlation coefficient: mean |cosine| over the best one-to-one (Hungarian) matching of true
    features to atoms, averaged over the min(G, latents) matched pairs — SAELens's own
    `sae_lens.synthetic.evals.mean_correlation_coefficient`."""
    require_saelens()
    from sae_lens.synthetic.evals import mean_correlation_coefficient

    return float(mean_correlation_coefficient(features.float(), W_dec.float()))


Encode = Callable[[Tensor], Tensor]


@torch.no_grad()
def ground_truth_metrics(
    source: Source,
    W_dec: Float[Tensor, "latents d_in"],
    encode: Encode,
    decode: Encode,
    n_samples: int = 65_536,
    seed: int | None = None,
) -> dict[str, float]:
    """MMCS, mean correlation coefficient, fraction recovered (cos ≥ 0.9), dead latents, L0,
    normalised MSE and shrinkage of one SAE, on `n_samples` fresh activations of `source`.

    normalised MSE = Σ‖x − x̂‖² / Σ‖x − x̄‖² (fraction of variance unexplained); shrinkage = mean
    ‖x̂‖ / ‖x‖ over non-zero samples (1: no shrinkage); a latent is dead if it is zero on every sample.
    """
    cos = cosines(source.features, W_dec.float())
    best = cos.max(dim=1).values
    x, _ = source.sample(n_samples, torch.Generator().manual_seed(EVAL_SEED if seed is None else seed))
    acts = torch.cat([encode(chunk) for chunk in x.split(8192)])
    recon = torch.cat([decode(chunk) for chunk in acts.split(8192)])
    on = acts > 0
    norm = x.norm(dim=1)
    nz = norm > 1e-8
    return {
        "mmcs": float(best.mean()),
        "mcc": mean_correlation(source.features, W_dec.float()),
        "recovered": float((best >= RECOVERED_COS).float().mean()),
        "dead": int((~on.any(dim=0)).sum()),
        "dead_fraction": float((~on.any(dim=0)).float().mean()),
        "l0": float(on.sum(dim=1).float().mean()),
        "nmse": float(((recon - x) ** 2).sum() / ((x - x.mean(dim=0)) ** 2).sum().clamp_min(1e-12)),
        "shrinkage": float((recon.norm(dim=1)[nz] / norm[nz]).mean()),
        "n_true": source.n_true,
        "n_latents": int(W_dec.shape[0]),
    }


@torch.no_grad()
def absorption(
    source: Source, W_dec: Float[Tensor, "latents d_in"], encode: Encode, n_samples: int = 65_536, seed: int = 54321
) -> dict[str, Any]:
    """Feature absorption over the source's parent → child pairs (Chanin et al.'s notion, measured
    with the known ground truth).

    The parent's latent is the decoder atom closest (cosine) to the parent's direction. Per pair,
    `absorbed` = P(parent latent off | parent on, child on) and `missed` = P(parent latent off |
    parent on, child off): absorption is the first exceeding the second — the child's latent has
    taken over the parent's direction when both fire. Reported per pair and as the mean excess.
    """
    if not source.parents:
        raise ConfigError("absorption needs a source with a feature hierarchy (parents).")
    cos = cosines(source.features, W_dec.float())
    x, coef = source.sample(n_samples, torch.Generator().manual_seed(seed))
    acts = torch.cat([encode(chunk) for chunk in x.split(8192)])
    pairs = []
    for child, parent in sorted(source.parents.items()):
        latent = int(cos[parent].argmax())
        off = acts[:, latent] <= 0
        p_on, c_on = coef[:, parent] > 0, coef[:, child] > 0
        both, alone = p_on & c_on, p_on & ~c_on
        absorbed = float(off[both].float().mean()) if both.any() else float("nan")
        missed = float(off[alone].float().mean()) if alone.any() else float("nan")
        pairs.append(
            {
                "parent": parent,
                "child": child,
                "parent_latent": latent,
                "parent_cos": float(cos[parent, latent]),
                "absorbed": absorbed,
                "missed": missed,
            }
        )
    excess = [max(0.0, p["absorbed"] - p["missed"]) for p in pairs if math.isfinite(p["absorbed"] - p["missed"])]
    return {"absorption": float(sum(excess) / len(excess)) if excess else float("nan"), "pairs": pairs}


# ---- training through SAELens ----------------------------------------------------------------------


@dataclass
class SAESettings:
    """One SAE's architecture and training; validated on construction, recorded in tmslab_sae.json."""

    arch: Arch = "topk"
    """standard (L1 penalty) | topk | batchtopk | jumprelu | matryoshka (batch-TopK with nested prefixes)."""
    ratio: float = 4.0
    """Dictionary size as a multiple of the number of true features (d_sae = round(ratio · n_true))."""
    k: float = 3.0
    """Active latents per sample for topk / batchtopk / matryoshka (the true L0 is a natural choice)."""
    l1: float = 1.0
    """Sparsity coefficient: SAELens's l1_coefficient (standard) or l0_coefficient (jumprelu)."""
    samples: int = 2_000_000
    """Training activations streamed from the source (fresh samples, no stored dataset)."""
    batch_size: int = 1024
    """Activations per optimiser step."""
    lr: float = 3e-4
    """Adam learning rate (SAELens's default; constant)."""
    seed: int = 0
    """Seed of the SAE's initialisation and of its activation stream."""
    eval_samples: int = 65_536
    """Fresh activations the metrics are computed on (a fixed evaluation seed)."""

    def __post_init__(self) -> None:
        if self.arch not in get_args(Arch):
            raise ConfigError(f"--arch must be one of {', '.join(get_args(Arch))}; got {self.arch!r}.")
        for name in ("ratio", "k", "l1", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"--{name} must be a finite number, got {v!r}.")
        if self.ratio <= 0:
            raise ConfigError(f"--ratio must be > 0, got {self.ratio}.")
        if self.k < 1:
            raise ConfigError(f"--k must be >= 1, got {self.k}.")
        if self.l1 < 0:
            raise ConfigError(f"--l1 must be >= 0, got {self.l1}.")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}.")
        for name in ("samples", "batch_size", "eval_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= 1, got {v!r}.")
        if self.samples < self.batch_size:
            raise ConfigError(f"--samples ({self.samples}) must be at least one batch ({self.batch_size}).")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}.")

    def d_sae(self, n_true: int) -> int:
        return max(1, round(self.ratio * n_true))


def training_sae(settings: SAESettings, d_in: int, n_true: int) -> Any:
    """A fresh SAELens TrainingSAE for `settings` (initialised with torch's global RNG seeded by settings.seed)."""
    sl = require_saelens()
    d_sae = settings.d_sae(n_true)
    k = min(settings.k, d_sae)
    common = {"d_in": d_in, "d_sae": d_sae}
    if settings.arch == "standard":
        cfg = sl.StandardTrainingSAEConfig(**common, l1_coefficient=settings.l1)
    elif settings.arch == "topk":
        cfg = sl.TopKTrainingSAEConfig(**common, k=int(round(k)))
    elif settings.arch == "batchtopk":
        cfg = sl.BatchTopKTrainingSAEConfig(**common, k=float(k))
    elif settings.arch == "jumprelu":
        cfg = sl.JumpReLUTrainingSAEConfig(**common, l0_coefficient=settings.l1)
    else:
        # Nested prefixes at 1/4, 1/2 of the dictionary and the whole (Bussmann et al.'s matryoshka).
        widths = sorted({max(1, d_sae // 4), max(1, d_sae // 2), d_sae})
        cfg = sl.MatryoshkaBatchTopKTrainingSAEConfig(**common, k=float(k), matryoshka_widths=widths)
    torch.manual_seed(settings.seed)
    return sl.TrainingSAE.from_dict(cfg.to_dict())


def train_saelens(source: Source, settings: SAESettings, progress: bool = False) -> Any:
    """Train one SAE with SAELens's SAETrainer on activations streamed from `source`; returns the TrainingSAE."""
    require_saelens()
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    sae = training_sae(settings, source.d_in, source.n_true)
    cfg = SAETrainerConfig(
        total_training_samples=settings.samples,
        train_batch_size_samples=settings.batch_size,
        lr=settings.lr,
        lr_end=settings.lr,
        device="cpu",
        # Evaluations and wandb off: the metrics against the ground truth are computed afterwards.
        logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1),
    )
    trainer = SAETrainer(
        cfg=cfg,
        sae=sae,
        data_provider=source.batches(settings.batch_size, settings.seed),
        save_checkpoint_fn=lambda path: None,
    )
    module = sys.modules[SAETrainer.__module__]
    bar = module.tqdm
    # SAETrainer.fit always opens a tqdm bar; silence it unless asked for progress.
    module.tqdm = bar if progress else functools.partial(bar, disable=True)
    try:
        trainer.fit()
    finally:
        module.tqdm = bar
    return sae


@dataclass
class SAEResult:
    """A trained SAE (SAELens's inference SAE: what is saved), its settings and its metrics against the ground truth
    (measured on that inference SAE)."""

    sae: Any
    settings: SAESettings
    metrics: dict[str, Any]
    source: dict[str, Any]
    train_seconds: float
    path: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)
    trainer: str = "saelens"
    """saelens (SAELens's SAETrainer) | tmslab-batched (tmslab.sae_batched, SAELens's semantics)."""


def evaluate(sae: Any, source: Source, eval_samples: int = 65_536) -> dict[str, Any]:
    """Ground-truth metrics of a SAELens SAE (training or inference), plus absorption if the source has a hierarchy."""
    with torch.no_grad():
        W_dec = sae.W_dec.detach().float()  # only the atoms' directions enter the cosine metrics
        metrics: dict[str, Any] = ground_truth_metrics(source, W_dec, sae.encode, sae.decode, eval_samples)
        if source.parents:
            metrics["absorption"] = absorption(source, W_dec, sae.encode, eval_samples)
    return metrics


def inference_sae(training: Any) -> Any:
    """The SAELens inference SAE that `save` writes for a TrainingSAE: `save_inference_model` then
    `SAE.load_from_disk`, through a temporary folder — so what is scored is exactly what is saved. BatchTopK and
    matryoshka SAEs differ from their training form: the saved SAE is a JumpReLU whose threshold is the training
    run's running estimate, whereas the training SAE keeps the top k·batch activations of whatever batch it sees."""
    import tempfile

    sl = require_saelens()
    if not hasattr(training, "save_inference_model"):
        return training  # already an inference SAE
    with tempfile.TemporaryDirectory(prefix="tmslab-sae-") as tmp:
        training.save_inference_model(tmp)
        return sl.SAE.load_from_disk(tmp)


def score(training: Any, source: Source, eval_samples: int = 65_536) -> tuple[Any, dict[str, Any]]:
    """(inference SAE, its metrics) for a trained TrainingSAE. Where the inference architecture differs from the
    training one (batchtopk, matryoshka → jumprelu) the training SAE's L0 on the same samples is recorded beside
    it as `l0_training` (the two need not agree: the threshold is an estimate)."""
    inference = inference_sae(training)
    metrics = evaluate(inference, source, eval_samples)
    if inference.cfg.architecture() != training.cfg.architecture():
        with torch.no_grad():
            x, _ = source.sample(eval_samples, torch.Generator().manual_seed(EVAL_SEED))
            on = torch.cat([training.encode(chunk) > 0 for chunk in x.split(8192)])
        metrics["l0_training"] = float(on.sum(dim=1).float().mean())
    return inference, metrics


def train(
    source: Source,
    settings: SAESettings | None = None,
    out: str | Path | None = None,
    *,
    progress: bool = False,
    force: bool = False,
    **kwargs: Any,
) -> SAEResult:
    """Train one SAE through SAELens on `source`, score it, and (with `out`) save it in SAELens's format.

    `settings` or SAESettings keyword arguments (arch, ratio, k, l1, samples, batch_size, lr, seed).
    """
    settings = settings or SAESettings(**kwargs)
    if out is not None:
        from tmslab.io import check_output_dir

        check_output_dir(Path(out), "sae", force=force)
    start = time.perf_counter()
    training = train_saelens(source, settings, progress=progress)
    seconds = time.perf_counter() - start
    inference, metrics = score(training, source, settings.eval_samples)
    result = SAEResult(inference, settings, metrics, source.describe(), seconds)
    if out is not None:
        save(result, Path(out), force=force)
    return result


def save(result: SAEResult, out: Path, force: bool = False) -> Path:
    """OUT/{sae_weights.safetensors, cfg.json} (SAELens's inference format, `SAE.load_from_disk(OUT)`) plus
    OUT/tmslab_sae.json (source, settings, metrics, versions); assembled beside OUT and renamed into place."""
    import shutil
    import tempfile

    from tmslab.io import atomic_write_json, check_output_dir, finite_json, make_dir, replace_dir

    out = check_output_dir(out, "sae", force=force)
    make_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        if hasattr(result.sae, "save_inference_model"):
            result.sae.save_inference_model(tmp)
        else:
            result.sae.save_model(tmp)
        record = {
            "format": "tmslab-sae-1",
            "source": result.source,
            "settings": asdict(result.settings),
            "metrics": result.metrics,
            "weights_sha256": _file_sha256(tmp / WEIGHTS_FILE),
            "train_seconds": result.train_seconds,
            "trainer": result.trainer,
            "versions": {**versions(), "sae_lens": require_saelens().__version__},
        }
        atomic_write_json(tmp / METRICS_FILE, finite_json(record))
        replace_dir(tmp, out, "sae")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.path, result.record = out, record
    return out


def _file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def saved_metrics(path: str | Path, source: Source) -> dict[str, Any]:
    """The metrics of the SAE saved at `path`, of the weights on disk: the recorded ones when the weights file
    is the one they were measured on (its sha256 is in the record), else scored again from the saved weights
    (`evaluate`, the record's eval_samples) — so a replaced weights file (the null-model pass, D20) is never
    reported with the metrics of the weights it replaced."""
    path = Path(path)
    sae, record = load(path)
    if record.get("weights_sha256") == _file_sha256(path / WEIGHTS_FILE):
        return record["metrics"]
    return evaluate(sae, source, record["settings"]["eval_samples"])


def load(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(SAELens SAE loaded with `SAE.load_from_disk`, tmslab record) of a directory written by `save`."""
    sl = require_saelens()
    path = Path(path)
    if not (path / METRICS_FILE).exists():
        raise ConfigError(f"{path} holds no tmslab SAE ({METRICS_FILE} is missing).")
    return sl.SAE.load_from_disk(path), json.loads((path / METRICS_FILE).read_text())


def reset_to_init(path: str | Path) -> None:
    """Replace the weights of the SAE saved at `path` by its initialisation — the same settings and seed,
    `training_sae`, in the saved (inference) form — keeping its record (paper-spec §7.2 D20: the null model of a
    claim about SAE training is the untrained SAE). The record's metrics are left as written: an analysis that
    reads them instead of scoring the saved weights is what the null-model pass is meant to expose."""
    import shutil
    import tempfile

    path = Path(path)
    record = json.loads((path / METRICS_FILE).read_text())
    d_in = json.loads((path / "cfg.json").read_text())["d_in"]
    init = training_sae(SAESettings(**record["settings"]), d_in, record["metrics"]["n_true"])
    with tempfile.TemporaryDirectory(prefix="tmslab-sae-") as tmp:
        init.save_inference_model(tmp)
        shutil.copyfile(Path(tmp) / WEIGHTS_FILE, path / WEIGHTS_FILE)


def reset_all_to_init(folder: str | Path) -> int:
    """`reset_to_init` for every SAE saved under `folder` (at any depth); the number reset. SAELens is imported
    only when there is one (without it, none could have been written)."""
    paths = sorted(p.parent for p in Path(folder).rglob(METRICS_FILE) if (p.parent / "cfg.json").exists())
    if not paths:
        return 0
    for path in paths:
        reset_to_init(path)
    return len(paths)
