"""tmslab models as TransformerLens `HookedRootModule`s (paper-spec §6.6; SAELens issue #85).

`HookedToyModel` holds the same parameters as `tmslab.models.ToyModel` (names and shapes, instances first)
and computes the same function with the same operations, so its outputs equal the tmslab model's exactly;
`run_with_cache`, `run_with_hooks` and `hook_dict` work as on any TransformerLens model. Hook points:

- ``hook_hidden``: h = W x (for hidden-relu and abs, the hidden pre-activation);
- ``hook_hidden_post``: ReLU(W x), hidden-relu and abs only;
- ``hook_out_pre``: the output before its nonlinearity (Wᵀh + b, or W2 h + b);
- ``hook_out``: the output (after the output ReLU; equal to hook_out_pre for the linear model).

Input is [instances, batch, features], or [batch, features]: a single-instance model then returns
[batch, features] (and its hooks see 2-D activations, as SAELens expects); a batched model runs the same batch
through every instance. Needs the optional extra: ``pip install 'tmslab[lens]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

try:
    from transformer_lens.hook_points import HookedRootModule, HookPoint
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"tmslab.lens needs TransformerLens (< 4), which is not importable ({e}); pip install 'tmslab[lens]'"
    ) from e

from tmslab.config import ModelKind
from tmslab.io import Run
from tmslab.models import ToyModel

__all__ = ["HookedToyModel"]


class HookedToyModel(HookedRootModule):
    """A batch of toy models with TransformerLens hook points."""

    def __init__(self, kind: ModelKind, n_instances: int, n_features: int, n_hidden: int) -> None:
        super().__init__()
        # Same parameters as ToyModel (and the same frozen identity buffer for relu-output-id); it checks `kind`.
        template = ToyModel(kind, n_instances, n_features, n_hidden)
        self.kind = kind
        self.n_instances, self.n_features, self.n_hidden = n_instances, n_features, n_hidden
        self.cfg = {"model": kind, "n_instances": n_instances, "n_features": n_features, "n_hidden": n_hidden}
        for name, p in template.named_parameters():
            self.register_parameter(name, nn.Parameter(p.detach().clone()))
        if kind == "relu-output-id":
            self.register_buffer("identity", template.identity.clone(), persistent=False)
        self.hook_hidden = HookPoint()
        if kind in ("hidden-relu", "abs"):
            self.hook_hidden_post = HookPoint()
        self.hook_out_pre = HookPoint()
        self.hook_out = HookPoint()
        self.setup()

    # ---- construction -------------------------------------------------------------------------------

    @classmethod
    def from_params(cls, kind: ModelKind, params: dict[str, Tensor]) -> HookedToyModel:
        """From tmslab weights (on-disk names, instances first)."""
        enc = params["W1"] if kind == "abs" else params["W"]
        k, m, n = enc.shape
        model = cls(kind, k, n, m)
        model.load_state_dict({name: params[name].detach().float() for name, _ in model.named_parameters()})
        return model

    @classmethod
    def from_run(cls, run: Run, instance: int | None = None) -> HookedToyModel:
        """One instance of a run (`instance=k`) or, by default, all of them batched."""
        params = run.params
        if instance is not None:
            if not 0 <= instance < run.config.n_instances:
                raise ValueError(f"instance must be in [0, {run.config.n_instances - 1}], got {instance}.")
            params = {k: v[instance : instance + 1] for k, v in params.items()}
        return cls.from_params(run.config.model, params)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> HookedToyModel:
        """From a `tms export --to transformer-lens` directory (safetensors only, validated)."""
        from tmslab.interop import read_transformer_lens

        params, config, _ = read_transformer_lens(Path(directory))
        return cls.from_params(config.model, params)

    def to_toy_model(self) -> ToyModel:
        """The equivalent tmslab model."""
        return ToyModel.from_params(self.kind, {k: v.detach() for k, v in self.named_parameters()})

    # ---- forward ------------------------------------------------------------------------------------

    def forward(
        self, x: Float[Tensor, "*instances batch features"], **_: Any
    ) -> Float[Tensor, "*instances batch features"]:
        squeeze = x.dim() == 2 and self.n_instances == 1
        if x.dim() == 2:
            x = x.expand(self.n_instances, *x.shape) if not squeeze else x[None]
        if x.dim() != 3 or x.shape[0] != self.n_instances or x.shape[-1] != self.n_features:
            raise ValueError(f"input must be [{self.n_instances}, batch, {self.n_features}] or "
                             f"[batch, {self.n_features}], got {list(x.shape)}.")

        def hook(point: HookPoint, t: Tensor) -> Tensor:
            # Single-instance models show hooks 2-D activations [batch, d]; the instance dim is put back after.
            return point(t[0])[None] if squeeze else point(t)

        # The same einsums as ToyModel.forward, so outputs are bit-identical.
        enc = self.W1 if self.kind == "abs" else self.W
        h = hook(self.hook_hidden, torch.einsum("ibf,ihf->ibh", x, enc))
        if self.kind in ("hidden-relu", "abs"):
            h = hook(self.hook_hidden_post, torch.relu(h))
        if self.kind == "relu-output-id":
            h = torch.einsum("ibh,igh->ibg", h, self.identity)
        if self.kind == "abs":
            pre = torch.einsum("ibh,ifh->ibf", h, self.W2)
        else:
            pre = torch.einsum("ibh,ihf->ibf", h, self.W)
        pre = hook(self.hook_out_pre, pre + self.b[:, None, :])
        out = hook(self.hook_out, pre if self.kind == "linear" else torch.relu(pre))
        return out[0] if squeeze else out

    def __repr__(self) -> str:
        return f"HookedToyModel({json.dumps(self.cfg)})"
