"""The paper's toy models (paper-spec §1.2), each with an explicit instances dimension.

Weights are stored as on disk (docs/format.md): `W` [instances, hidden, features], so column
W[k, :, i] is feature i's direction in instance k's hidden space, and `b` [instances, features].
The absolute-value model is untied: `W1` [instances, hidden, features], `W2` [instances, features, hidden].
The identity-layer model ("relu-output-id", param-decomp's "-id" targets, paper-spec §6.6) has the same
parameters as relu-output plus a frozen m × m identity between encoder and decoder, held as a buffer that is
not saved: it is the identity by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from tmslab.config import Init, ModelKind

MODEL_KINDS: tuple[str, ...] = ("relu-output", "linear", "hidden-relu", "abs", "relu-output-id")


class ToyModel(nn.Module):
    """K independent toy models trained in one step."""

    def __init__(self, kind: ModelKind, n_instances: int, n_features: int, n_hidden: int) -> None:
        super().__init__()
        if kind not in MODEL_KINDS:
            raise ValueError(f"model must be one of {', '.join(MODEL_KINDS)}; got {kind!r}.")
        self.kind = kind
        self.n_instances, self.n_features, self.n_hidden = n_instances, n_features, n_hidden
        shape = (n_instances, n_hidden, n_features)
        if kind == "abs":
            self.W1 = nn.Parameter(torch.zeros(shape))
            self.W2 = nn.Parameter(torch.zeros(n_instances, n_features, n_hidden))
        else:
            self.W = nn.Parameter(torch.zeros(shape))
        self.b = nn.Parameter(torch.zeros(n_instances, n_features))
        if kind == "relu-output-id":
            # Frozen: a buffer, so the optimiser never sees it; not persistent, so state dicts stay W and b.
            eye = torch.eye(n_hidden).expand(n_instances, n_hidden, n_hidden).clone()
            self.register_buffer("identity", eye, persistent=False)

    # ---- initialisation -------------------------------------------------------------------------

    def reset_parameters(self, seeds: list[int], init: Init = "xavier") -> None:
        """Xavier-normal weights, zero bias; instance k drawn from its own generator seeded seeds[k],
        so an instance's initial weights do not depend on the other instances of the batch."""
        n, m, k = self.n_features, self.n_hidden, self.n_instances
        if init == "paper":
            self._reset_paper(seeds)
            return
        # PyTorch's xavier_normal_ on the notebook's [instances, features, hidden] tensor uses
        # fan_in = n·m and fan_out = instances·m (paper-spec §1.4); per instance it is n and m.
        std = math.sqrt(2.0 / ((n + k) * m)) if init == "xavier-notebook" else math.sqrt(2.0 / (n + m))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name == "b":
                    p.zero_()
                    continue
                for i, seed in enumerate(seeds):
                    g = torch.Generator().manual_seed(seed * 7 + (1 if name == "W2" else 0))
                    p[i].copy_(torch.randn(p.shape[1:], generator=g) * std)

    def _reset_paper(self, seeds: list[int]) -> None:
        """paper-spec §6.5 (the authors' FeatureRecovery): W ~ N(0, 1)/√m, b ~ N(0, 1), per instance."""
        with torch.no_grad():
            for i, seed in enumerate(seeds):
                g = torch.Generator().manual_seed(seed * 7)
                self.encoder[i].copy_(torch.randn(self.encoder.shape[1:], generator=g) / math.sqrt(self.n_hidden))
                if self.kind == "abs":
                    self.W2[i].copy_(torch.randn(self.W2.shape[1:], generator=g) / math.sqrt(self.n_hidden))
                self.b[i].copy_(torch.randn(self.n_features, generator=g))

    # ---- forward --------------------------------------------------------------------------------

    @property
    def encoder(self) -> Float[Tensor, "instances hidden features"]:
        return self.W1 if self.kind == "abs" else self.W

    def hidden(self, x: Float[Tensor, "instances batch features"]) -> Float[Tensor, "instances batch hidden"]:
        h = torch.einsum("ibf,ihf->ibh", x, self.encoder)
        return torch.relu(h) if self.kind in ("hidden-relu", "abs") else h

    def readout(
        self, x: Float[Tensor, "instances batch features"], out: Tensor | None = None
    ) -> Float[Tensor, "instances batch features"]:
        """The output layer's pre-activation without its bias, into `out` if given (`training.evaluate` reuses one
        buffer: a fresh result of ≥ 32 MiB is new memory, page-faulted in at every call)."""
        h = self.hidden(x)
        if self.kind == "relu-output-id":
            h = torch.einsum("ibh,igh->ibg", h, self.identity)  # nn.Linear convention: out = h @ weightᵀ
        decoder = self.W2.transpose(1, 2) if self.kind == "abs" else self.W  # [instances, hidden, features]
        return torch.bmm(h, decoder, out=out)  # the very call einsum("ibh,ihf->ibf") makes

    def forward(self, x: Float[Tensor, "instances batch features"]) -> Float[Tensor, "instances batch features"]:
        pre = self.readout(x) + self.b[:, None, :]
        return pre if self.kind == "linear" else torch.relu(pre)

    def target(self, x: Tensor) -> Tensor:
        """What the model should output: x itself, or |x| for the absolute-value task (§5)."""
        return x.abs() if self.kind == "abs" else x

    def params(self) -> dict[str, Tensor]:
        """Detached float32 copies, keyed as on disk."""
        return {k: v.detach().float().contiguous().clone() for k, v in self.named_parameters()}

    @classmethod
    def from_params(cls, kind: ModelKind, params: dict[str, Tensor]) -> ToyModel:
        enc = params["W1"] if kind == "abs" else params["W"]
        k, m, n = enc.shape
        model = cls(kind, k, n, m)
        model.load_state_dict({name: params[name] for name, _ in model.named_parameters()})
        return model


def per_instance_loss(
    out: Float[Tensor, "instances batch features"],
    target: Float[Tensor, "instances batch features"],
    importance: Float[Tensor, "instances features"],
) -> Float[Tensor, " instances"]:
    """The paper's L = E_x Σ_i I_i (x_i − x'_i)² per instance (summed over features, mean over batch)."""
    return (importance[:, None, :] * (target - out) ** 2).sum(-1).mean(-1)


# ---- computation in superposition (paper-spec §6.7) ------------------------------------------------------

CIS_KINDS: tuple[str, ...] = ("resid-mlp", "mlp")


def _act(name: str) -> Callable[[Tensor], Tensor]:
    return torch.nn.functional.gelu if name == "gelu" else torch.relu


class CISModel(nn.Module):
    """K independent residual-MLP or MLP-only models (paper-spec §6.7), with ToyModel's interface for training
    and evaluation: forward(x) and target(x) on [instances, batch, features].

    Parameters (on-disk names; each layer's matrices in nn.Linear's [out, in] layout, as param-decomp saves them):
    resid-mlp: `W_E` [K, n, d_embed] (frozen: requires_grad False, saved), `W_in` [K, layers, d_mlp, d_embed],
    `W_out` [K, layers, d_embed, d_mlp]; the unembedding is W_Eᵀ by construction. mlp: `W_in` [K, d_mlp, n],
    `W_out` [K, n, d_mlp]. The mlp model's mixing matrix `M` [K, n, n] (σ included) is a buffer rebuilt from the
    configuration, not saved.
    """

    def __init__(
        self,
        kind: str,
        n_instances: int,
        n_features: int,
        n_hidden: int,
        d_embed: int = 1000,
        n_layers: int = 1,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if kind not in CIS_KINDS:
            raise ValueError(f"model must be one of {', '.join(CIS_KINDS)}; got {kind!r}.")
        self.kind, self.act = kind, act
        self.n_instances, self.n_features, self.n_hidden = n_instances, n_features, n_hidden
        self.d_embed, self.n_layers = d_embed, n_layers
        k, n, m, d, layers = n_instances, n_features, n_hidden, d_embed, n_layers
        if kind == "resid-mlp":
            self.W_E = nn.Parameter(torch.zeros(k, n, d), requires_grad=False)
            self.W_in = nn.Parameter(torch.zeros(k, layers, m, d))
            self.W_out = nn.Parameter(torch.zeros(k, layers, d, m))
        else:
            self.W_in = nn.Parameter(torch.zeros(k, m, n))
            self.W_out = nn.Parameter(torch.zeros(k, n, m))
        self.register_buffer("M", torch.zeros(k, n, n), persistent=False)

    @classmethod
    def for_config(cls, config: Any) -> CISModel:
        """An uninitialised model of `config`'s shape (a TrainConfig of kind resid-mlp or mlp)."""
        return cls(config.model, config.n_instances, config.n_features, config.n_hidden, config.d_embed,
                   config.n_layers, config.act)  # fmt: skip

    def reset_parameters(self, seeds: list[int], init: Init = "xavier") -> None:
        """nn.Linear's default init (kaiming-uniform, a = √5: U(±1/√fan_in)) per instance from its own generator,
        whatever `init` says; resid-mlp's W_E = randn with unit rows (paper-spec §6.7) from the same generator."""
        from tmslab import cis

        with torch.no_grad():
            for i, seed in enumerate(seeds):
                if self.kind == "resid-mlp":
                    self.W_E[i].copy_(cis.embedding(self.n_features, self.d_embed, seed))
                g = torch.Generator().manual_seed(seed * 7 + 1)
                for p in (self.W_in, self.W_out):
                    bound = 1.0 / math.sqrt(p.shape[-1])
                    p[i].copy_((torch.rand(p.shape[1:], generator=g) * 2 - 1) * bound)

    @property
    def W_U(self) -> Tensor:
        """resid-mlp's unembedding [K, d_embed, n] = W_Eᵀ, exactly (frozen and tied by construction)."""
        return self.W_E.transpose(1, 2)

    def forward(self, x: Float[Tensor, "instances batch features"]) -> Float[Tensor, "instances batch features"]:
        """The model's output. resid-mlp is computed folded: everything between activations is linear in the
        residual stream, so with h_l = act(pre_l),
        pre_l = x (W_E W_in_lᵀ) + Σ_{j<l} h_j (W_out_jᵀ W_in_lᵀ) and out = x (W_E W_Eᵀ) + Σ_l h_l (W_out_lᵀ W_Eᵀ):
        the same function as `forward_reference` (param-decomp's order of operations) up to float rounding, with
        n- and d_mlp-wide products per sample instead of d_embed-wide ones (tested equal; ≈ 20× less work at
        §6.7's sizes)."""
        act = _act(self.act)
        if self.kind == "mlp":
            return torch.bmm(act(torch.bmm(x, self.W_in.transpose(1, 2))), self.W_out.transpose(1, 2))
        W_E, W_in, W_out = self.W_E, self.W_in, self.W_out
        out = torch.bmm(x, torch.bmm(W_E, W_E.transpose(1, 2)))
        hs: list[Tensor] = []
        for layer in range(self.n_layers):
            pre = torch.bmm(x, torch.bmm(W_E, W_in[:, layer].transpose(1, 2)))
            for j, h in enumerate(hs):
                pre = pre + torch.bmm(h, torch.bmm(W_out[:, j].transpose(1, 2), W_in[:, layer].transpose(1, 2)))
            hs.append(act(pre))
            out = out + torch.bmm(hs[-1], torch.bmm(W_out[:, layer].transpose(1, 2), W_E.transpose(1, 2)))
        return out

    def forward_reference(self, x: Float[Tensor, "instances batch features"]) -> Tensor:
        """param-decomp's ResidMLP.forward, operation by operation: r = x W_E; r ← r + mlp_out(act(mlp_in(r)));
        out = r W_U (mlp: the same as forward)."""
        act = _act(self.act)
        if self.kind == "mlp":
            return self(x)
        r = torch.bmm(x, self.W_E)
        for layer in range(self.n_layers):
            h = act(torch.bmm(r, self.W_in[:, layer].transpose(1, 2)))
            r = r + torch.bmm(h, self.W_out[:, layer].transpose(1, 2))
        return torch.bmm(r, self.W_U)

    def target(self, x: Tensor) -> Tensor:
        """The labels (paper-spec §6.7): x + act(x) for resid-mlp; act(x) + σ·x M for mlp (M symmetric)."""
        act = _act(self.act)
        if self.kind == "resid-mlp":
            return x + act(x)
        return act(x) + torch.bmm(x, self.M)

    def params(self) -> dict[str, Tensor]:
        """Detached float32 copies, keyed as on disk."""
        return {k: v.detach().float().contiguous().clone() for k, v in self.named_parameters()}

    @classmethod
    def from_params(cls, config: Any, params: dict[str, Tensor]) -> CISModel:
        """The model of `config` (its M rebuilt from it) holding `params`."""
        from tmslab import cis

        model = cls.for_config(config)
        model.load_state_dict({name: params[name] for name, _ in model.named_parameters()})
        model.M.copy_(cis.mixing_matrices(config))
        return model


def param_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """On-disk tensor names and shapes of a run of `config` (a TrainConfig)."""
    k, n, m = config.n_instances, config.n_features, config.n_hidden
    if config.model == "resid-mlp":
        d, layers = config.d_embed, config.n_layers
        return {"W_E": (k, n, d), "W_in": (k, layers, m, d), "W_out": (k, layers, d, m)}
    if config.model == "mlp":
        return {"W_in": (k, m, n), "W_out": (k, n, m)}
    if config.model == "abs":
        return {"W1": (k, m, n), "W2": (k, n, m), "b": (k, n)}
    return {"W": (k, m, n), "b": (k, n)}


def encoder(kind: str, params: dict[str, Tensor]) -> Tensor:
    """Each feature's direction in the (first) hidden layer, [instances, hidden, features], for the geometry
    summaries: W (W1 for abs); mlp: W_in; resid-mlp: the first layer's read-in of each feature, W_in[0] W_Eᵀ."""
    if kind == "resid-mlp":
        return torch.bmm(params["W_in"][:, 0], params["W_E"].transpose(1, 2))
    if kind == "mlp":
        return params["W_in"]
    return params["W1"] if kind == "abs" else params["W"]


def build_model(config: Any) -> nn.Module:
    """An uninitialised model of config's kind and shape (ToyModel, or CISModel for resid-mlp / mlp)."""
    if config.model in CIS_KINDS:
        return CISModel.for_config(config)
    return ToyModel(config.model, config.n_instances, config.n_features, config.n_hidden)


def model_from_params(config: Any, params: dict[str, Tensor]) -> nn.Module:
    """The model of `config` holding saved `params`."""
    if config.model in CIS_KINDS:
        return CISModel.from_params(config, params)
    return ToyModel.from_params(config.model, params)
