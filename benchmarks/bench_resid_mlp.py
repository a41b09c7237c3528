"""Training resid_mlp1 (paper-spec §6.7: n = 100, d_mlp = 50, d_embed = 1000, 1,000 steps × batch 2,048) end to end:
`tmslab.training.train` against a plain PyTorch loop of the same model written as param-decomp writes it
(nn.Linear layers on the 1000-wide residual stream, W_E / W_U frozen, AdamW lr 3e-3 wd 0.01, half-cosine to 0),
in one process, alternating, with wall and process CPU seconds (the machine may be shared: CPU seconds are the
fairer number there).

    python benchmarks/bench_resid_mlp.py --threads 2 [--steps 1000] [--repeats 1]

Each side includes its own data sampling and a final evaluation on 100,000 samples (tmslab's eval_loss; the plain
loop the same count), so "end to end" means: build, train, evaluate.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn


class PlainResidMLP(nn.Module):
    """param-decomp's ResidMLP (one instance, no biases), for the comparison."""

    def __init__(self, n: int, d_embed: int, d_mlp: int, layers: int) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(n, d_embed), requires_grad=False)
        self.W_E.data /= self.W_E.data.norm(dim=-1, keepdim=True)
        self.W_U = nn.Parameter(self.W_E.data.T.clone(), requires_grad=False)
        self.mlp_in = nn.ModuleList(nn.Linear(d_embed, d_mlp, bias=False) for _ in range(layers))
        self.mlp_out = nn.ModuleList(nn.Linear(d_mlp, d_embed, bias=False) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x @ self.W_E
        for lin_in, lin_out in zip(self.mlp_in, self.mlp_out, strict=True):
            r = r + lin_out(torch.relu(lin_in(r)))
        return r @ self.W_U


def plain(steps: int, batch: int, p: float, eval_samples: int) -> float:
    torch.manual_seed(0)
    model = PlainResidMLP(100, 1000, 50, 1)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=3e-3, weight_decay=0.01)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / (steps - 1)))
        x = (torch.rand(batch, 100) * 2 - 1) * (torch.rand(batch, 100) < p)
        opt.zero_grad()
        loss = ((model(x) - (x + torch.relu(x))) ** 2).mean()
        loss.backward()
        opt.step()
    total = 0.0
    with torch.no_grad():
        for _ in range(0, eval_samples, 8192):
            x = (torch.rand(8192, 100) * 2 - 1) * (torch.rand(8192, 100) < p)
            total += float(((model(x) - (x + torch.relu(x))) ** 2).sum(-1).sum())
    return total / eval_samples


def ours(steps: int, batch: int, p: float, eval_samples: int) -> float:
    from tmslab.config import TrainConfig
    from tmslab.training import train

    cfg = TrainConfig(model="resid-mlp", n_features=100, n_hidden=50, d_embed=1000, density=[p], batch_size=batch,
                      steps=steps, lr=3e-3, weight_decay=0.01, schedule="cosine-floor", lr_floor=0.0,
                      eval_samples=eval_samples)  # fmt: skip
    return float(train(cfg).eval_loss[0])


def timed(fn, *args) -> tuple[float, float, float]:  # noqa: ANN001
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - w, time.process_time() - c, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import tmslab.training  # noqa: F401 - imports outside the timing

    for r in range(args.repeats):
        for name, fn in (("tmslab", ours), ("plain", plain)):
            wall, cpu, loss = timed(fn, args.steps, args.batch, 0.01, 100_000)
            print(
                f"repeat {r} {name:7s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  eval L (sum over outputs) {loss:.5f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
