"""A batched SAE trainer: many standard (L1) or TopK SAEs trained at once as instances, with SAELens's
exact training semantics, so that a sweep of SAEs costs one training loop per dictionary size.

SAELens's SAETrainer trains one SAE at a time; on toy-model activations (d_in ≤ 100) its per-step
Python overhead dominates and a 6 × 6 sweep misses issue 16's 10-minute target. Here the SAEs that
share everything but the sparsity (l1 for standard, k for topk) — same architecture, dictionary size,
samples, batch, lr and seed — are stacked on a leading instance dimension and see the same activation
stream, exactly as each would in its own SAELens run (`tmslab.sae.train_saelens` feeds
`source.batches(batch_size, seed)`). What is reproduced, from sae_lens 6.x (saes/sae.py,
saes/standard_sae.py, saes/topk_sae.py, training/sae_trainer.py):

- init: each instance starts from the weights of a fresh SAELens TrainingSAE built by
  `tmslab.sae.training_sae` (kaiming-uniform W_dec rescaled to row norm 0.1, W_enc = W_dec.T, zero biases);
- forward: b_dec subtracted from the input; standard: ReLU, loss = Σ_d MSE + l1 · Σ_j a_j ‖W_dec,j‖;
  topk: pre-activations times ‖W_dec,j‖ (rescale_acts_by_decoder_norm), top-k then ReLU, decoded as
  (a / ‖W_dec‖) W_dec, plus the auxiliary dead-latent loss (k_aux = d_in // 2 of the dead latents
  reconstruct the detached residual, scaled by min(n_dead / k_aux, 1), coefficient 1), dead = not fired
  for more than 1000 steps (dead_feature_window);
- optimiser: Adam (0.9, 0.999), constant lr, no l1 warm-up (SAELens's defaults, as train_saelens uses),
  gradients clipped to global norm 1 per SAE (clip_grad_norm_ over that SAE's parameters).

Adam is elementwise, so stacking instances changes nothing but floating-point summation order. Each
trained instance is handed back as a SAELens TrainingSAE, so saving and loading (`SAE.load_from_disk`)
go through SAELens itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from tmslab.config import ConfigError
from tmslab.sae import SAEResult, SAESettings, Source, require_saelens, save, score, training_sae

BATCHED_ARCHS = ("standard", "topk")
#: SAELens's SAETrainerConfig.dead_feature_window (steps without firing before a latent counts as dead).
DEAD_WINDOW = 1000


def group_key(s: SAESettings, n_true: int) -> tuple[Any, ...]:
    """SAEs with equal keys train together: everything but the sparsity (l1 / k) and evaluation size."""
    return (s.arch, s.d_sae(n_true), s.samples, s.batch_size, s.lr, s.seed)


def _k(s: SAESettings, d_sae: int) -> int:
    return int(round(min(s.k, d_sae)))  # as tmslab.sae.training_sae


class BatchedSAE(torch.nn.Module):
    """K SAEs of one architecture and size: W_enc [K, d_in, d_sae], W_dec [K, d_sae, d_in], biases."""

    def __init__(self, arch: str, inits: Sequence[Any], l1: Sequence[float], k: Sequence[int]) -> None:
        super().__init__()
        if arch not in BATCHED_ARCHS:
            raise ConfigError(f"the batched trainer handles {', '.join(BATCHED_ARCHS)}; got {arch!r}.")
        self.arch = arch
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            stacked = torch.stack([getattr(sae, name).detach().float() for sae in inits])
            setattr(self, name, torch.nn.Parameter(stacked.clone()))
        self.register_buffer("l1", torch.tensor(list(l1), dtype=torch.float32))
        self.register_buffer("k", torch.tensor(list(k)))
        self.d_in, self.d_sae = self.W_dec.shape[2], self.W_dec.shape[1]

    def losses(
        self, x: Float[Tensor, "batch d_in"], dead: torch.Tensor | None
    ) -> tuple[Float[Tensor, " instances"], torch.Tensor]:
        """(per-SAE training loss, [instances, d_sae] mask of latents that fired on this batch)."""
        sae_in = x[None] - self.b_dec[:, None]  # [K, batch, d_in]
        pre = einsum(sae_in, self.W_enc, "k b d, k d s -> k b s") + self.b_enc[:, None]
        if self.arch == "standard":
            acts = torch.relu(pre)
            out = einsum(acts, self.W_dec, "k b s, k s d -> k b d") + self.b_dec[:, None]
            # lp_norm 1 of the decoder-norm-weighted activations (non-negative after the ReLU).
            sparsity = (acts * self.W_dec.norm(dim=-1)[:, None]).sum(-1).mean(-1)
            aux = self.l1 * sparsity
        else:
            norm = self.W_dec.norm(dim=-1)[:, None]  # [K, 1, d_sae]
            pre = pre * norm
            acts = _topk(pre, self.k)
            out = einsum(acts / norm, self.W_dec, "k b s, k s d -> k b d") + self.b_dec[:, None]
            aux = self._aux_loss(x, out, pre, norm, dead)
        mse = ((out - x[None]) ** 2).sum(-1).mean(-1)
        return mse + aux, (acts != 0).any(dim=1)

    def _aux_loss(self, x: Tensor, out: Tensor, pre: Tensor, norm: Tensor, dead: Tensor | None) -> Tensor:
        """TopK's auxiliary loss (SAELens calculate_topk_aux_loss), per instance."""
        zero = out.new_zeros(out.shape[0])
        if dead is None or not bool(dead.any()):
            return zero
        n_dead = dead.sum(-1)  # [K]
        k_aux = self.d_in // 2
        scale = (n_dead.float() / k_aux).clamp(max=1.0)
        ks = n_dead.clamp(max=k_aux)
        masked = torch.where(dead[:, None], pre, -torch.inf)
        vals, idx = masked.topk(int(ks.max()), dim=-1, sorted=True)
        keep = torch.arange(vals.shape[-1]) < ks[:, None, None]
        auxk = torch.zeros_like(pre).scatter(-1, idx, torch.where(keep, vals, torch.zeros((), dtype=vals.dtype)))
        recons = einsum(auxk / norm, self.W_dec, "k b s, k s d -> k b d")
        residual = (x[None] - out).detach()
        loss = ((recons - residual) ** 2).sum(-1).mean(-1)
        return torch.where(n_dead > 0, scale * loss, zero)


def _topk(pre: Tensor, k: Tensor) -> Tensor:
    """Keep each instance's top k_i pre-activations (then ReLU), zero the rest."""
    vals, idx = pre.topk(int(k.max()), dim=-1, sorted=True)
    keep = torch.arange(vals.shape[-1]) < k[:, None, None]
    vals = torch.where(keep, vals.relu(), torch.zeros((), dtype=vals.dtype))
    return torch.zeros_like(pre).scatter(-1, idx, vals)


#: Elements of one [instances, chunk, d_sae] activation tensor in the standard fast path: the batch is cut into
#: chunks that keep it in cache (whole-batch tensors of 20M floats made one step 10× slower than six SAEs apart).
CHUNK_ELEMENTS = 2**20


@torch.no_grad()
def standard_grads(model: BatchedSAE, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, " instances"]:
    """The standard SAE's loss, with its gradients written into the parameters' .grad — the same numbers as
    `model.losses(x, None).sum().backward()` (tested), derived by hand so that the batch can be processed
    in cache-sized chunks and no autograd graph of [instances, batch, d_sae] tensors is kept."""
    W_enc, b_enc, W_dec, b_dec = model.W_enc, model.b_enc, model.W_dec, model.b_dec
    n_inst, d_sae, d_in = W_dec.shape
    batch = x.shape[0]
    norm = W_dec.norm(dim=-1)  # [K, d_sae]
    l1_grad = (model.l1[:, None] * norm / batch)[:, None]  # ∂(l1 term)/∂acts, [K, 1, d_sae]
    g_enc, g_dec = torch.zeros_like(W_enc), torch.zeros_like(W_dec)
    pre_sum, out_sum, act_sum = (
        W_dec.new_zeros(n_inst, d_sae),
        W_dec.new_zeros(n_inst, d_in),
        W_dec.new_zeros(n_inst, d_sae),
    )
    sq = W_dec.new_zeros(n_inst)
    chunk = max(16, min(batch, CHUNK_ELEMENTS // (n_inst * d_sae)))
    for xc in x.split(chunk):
        sae_in = xc[None] - b_dec[:, None]  # [K, c, d_in]
        acts = torch.baddbmm(b_enc[:, None], sae_in, W_enc).relu_()  # [K, c, d_sae]
        err = torch.baddbmm((b_dec[:, None] - xc[None]), acts, W_dec)  # reconstruction − input
        sq += err.pow(2).sum((1, 2))
        g_out = err.mul_(2 / batch)
        act_sum += acts.sum(1)
        out_sum += g_out.sum(1)
        g_pre = torch.baddbmm(l1_grad, g_out, W_dec.transpose(1, 2)).mul_(acts > 0)  # ReLU's mask
        g_dec.baddbmm_(acts.transpose(1, 2), g_out)
        g_enc.baddbmm_(sae_in.transpose(1, 2), g_pre)
        pre_sum += g_pre.sum(1)
    # The L1 term's decoder-norm factor: ∂‖W_dec,j‖/∂W_dec,j = W_dec,j / ‖W_dec,j‖.
    g_dec += (model.l1[:, None] / batch * act_sum / norm)[..., None] * W_dec
    # b_dec enters twice: added to the output, subtracted from the encoder's input.
    g_b_dec = out_sum - einsum(pre_sum, W_enc, "k s, k d s -> k d")
    for p, g in ((W_enc, g_enc), (b_enc, pre_sum), (W_dec, g_dec), (b_dec, g_b_dec)):
        p.grad = g
    return sq / batch + model.l1 * (act_sum * norm).sum(-1) / batch


def _clip_per_instance(params: Sequence[torch.nn.Parameter], max_norm: float = 1.0) -> None:
    """torch.nn.utils.clip_grad_norm_(one SAE's parameters, 1.0), for every instance at once."""
    sq = sum(p.grad.flatten(1).pow(2).sum(1) for p in params)  # [K]
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.view(-1, *([1] * (p.grad.dim() - 1))))


class _Group:
    """One batched model and its optimiser state: the SAEs of one `group_key`."""

    def __init__(self, source: Source, settings: Sequence[SAESettings]) -> None:
        first = settings[0]
        self.settings, self.arch = list(settings), first.arch
        d_sae = first.d_sae(source.n_true)
        init = training_sae(first, source.d_in, source.n_true)  # SAELens's init; the same for every instance
        self.model = BatchedSAE(
            first.arch, [init] * len(settings), [s.l1 for s in settings], [_k(s, d_sae) for s in settings]
        )
        m = self.model
        self.params = [m.W_enc, m.b_enc, m.W_dec, m.b_dec]
        self.opt = torch.optim.Adam(self.params, lr=first.lr, betas=(0.9, 0.999))
        self.since_fired = torch.zeros(len(settings), d_sae)

    def step(self, x: Tensor) -> None:
        if self.arch == "standard":
            standard_grads(self.model, x)
        else:
            loss, fired = self.model.losses(x, self.since_fired > DEAD_WINDOW)
            self.since_fired += 1
            self.since_fired[fired] = 0
            loss.sum().backward()  # instances share no parameter: each gets its own loss's gradient
        _clip_per_instance(self.params)
        self.opt.step()
        self.opt.zero_grad()

    def saes(self, source: Source) -> list[Any]:
        out = []
        for i, s in enumerate(self.settings):
            sae = training_sae(s, source.d_in, source.n_true)
            sae.load_state_dict(
                {name: getattr(self.model, name)[i].detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
            )
            out.append(sae)
        return out


def train_batched(source: Source, settings: Sequence[SAESettings], progress: bool = False) -> list[Any]:
    """Train standard / TopK SAEs (any mix); SAELens TrainingSAEs in input order.

    SAEs are grouped by `group_key` into batched models; groups that read the same activation stream
    (same samples, batch size and seed) step in lockstep on one sampled batch per step, as each SAE
    would see that batch in its own SAELens run."""
    from tqdm.auto import tqdm

    require_saelens()
    bad = [s.arch for s in settings if s.arch not in BATCHED_ARCHS]
    if bad:
        raise ConfigError(f"the batched trainer handles {', '.join(BATCHED_ARCHS)}; got {bad[0]!r}.")
    keyed: dict[tuple[Any, ...], list[int]] = {}
    for i, s in enumerate(settings):
        keyed.setdefault(group_key(s, source.n_true), []).append(i)
    streams: dict[tuple[int, int, int], list[list[int]]] = {}
    for idx in keyed.values():
        s = settings[idx[0]]
        streams.setdefault((s.samples, s.batch_size, s.seed), []).append(idx)
    out: list[Any] = [None] * len(settings)
    for (samples, batch, seed), members in streams.items():
        groups = [_Group(source, [settings[i] for i in idx]) for idx in members]
        batches = source.batches(batch, seed)
        steps = -(-samples // batch)  # SAETrainer steps until the samples seen reach the total
        for _ in tqdm(range(steps), desc=f"{sum(map(len, members))} SAEs", disable=not progress, leave=False):
            x = next(batches)
            for g in groups:
                g.step(x)
        for idx, g in zip(members, groups, strict=True):
            for i, sae in zip(idx, g.saes(source), strict=True):
                out[i] = sae
    return out


def train_many(
    source: Source,
    settings: Sequence[SAESettings],
    outs: Sequence[str | Path | None] | None = None,
    *,
    progress: bool = False,
    force: bool = False,
) -> list[SAEResult]:
    """Train, score and (with `outs`) save many SAEs on one source: standard and TopK SAEs through the
    batched trainer (all in lockstep), every other architecture one at a time through SAELens
    (tmslab.sae.train), each saved as soon as it is trained (an interruption loses the batched run
    in progress and nothing saved). Every output folder is checked before any training."""
    from tmslab.io import check_output_dir
    from tmslab.sae import train

    outs = list(outs) if outs is not None else [None] * len(settings)
    if len(outs) != len(settings):
        raise ConfigError(f"train_many needs one output per SAE: {len(settings)} settings, {len(outs)} outputs.")
    for out in outs:  # refuse before any training
        if out is not None:
            check_output_dir(Path(out), "sae", force=force)
    results: list[SAEResult | None] = [None] * len(settings)
    for i, s in enumerate(settings):
        if s.arch not in BATCHED_ARCHS:
            results[i] = train(source, s, outs[i], progress=progress, force=force)
    batched = [i for i, s in enumerate(settings) if s.arch in BATCHED_ARCHS]
    if batched:
        start = time.perf_counter()
        saes = train_batched(source, [settings[i] for i in batched], progress)
        seconds = (time.perf_counter() - start) / len(batched)  # the lockstep run's time, shared equally
        for i, sae in zip(batched, saes, strict=True):
            inference, metrics = score(sae, source, settings[i].eval_samples)  # what is saved is what is scored
            result = SAEResult(inference, settings[i], metrics, source.describe(), seconds, trainer="tmslab-batched")
            if outs[i] is not None:
                save(result, Path(outs[i]), force=force)
            results[i] = result
    return [r for r in results if r is not None]
