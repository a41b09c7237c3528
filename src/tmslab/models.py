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
