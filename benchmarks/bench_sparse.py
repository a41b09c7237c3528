"""Engine II benchmark (issue 14): `tms train` end to end against an eager PyTorch loop, in one run.

Configurations (the issue's names):
  phase     n=400, m=30, 20 densities 50^(−i/19), batch 1024, notebook recipe;
  power     n=1000, m=100, 6 instances, p_i ∝ i^−1.5 (Σp = 1), values U(0, 2), batch 2048;
  paper     n=10,240, m=256, batch 8192, p_i ∝ i^−1.2: time per step and peak memory (tmslab only).
(n=5, m=2, 100 instances is `bench_engine.py --config small`: its dense path is unchanged, bit for bit.)

Each tmslab run is a child process `tms train … --threads T` (process start → weights and metrics on disk, warm
numba cache), once with no flag (the default: dense for phase's numeric densities, sparse for power's density law
since issue 30) and once `--sparse`. The eager loop runs in the parent with
torch.set_num_threads(T), from the same initialisation family. Every engine's weights are scored by one common
evaluation (`common_eval`: paper L per instance on fixed-seed samples, PyTorch), so "eval loss within 2%" compares
like with like. The sgemm peak is measured in the same run (torch.mm, T threads), and achieved FLOP/s counts the
dense model's 10·n·m·B FLOP per instance-step: five matmuls of 2·n·m·B each, forward 2 (h = W x, Wᵀh) and backward
3 (W g, the decoder's and the encoder's weight gradients; x needs none) — ReLU, loss and AdamW ignored. (The issue's
≈ 147 MFLOP at n = 400, m = 30, B = 1,024 counts six.)
For phase and power it also prints the floors: the dense work's time at the sgemm peak, and the sparse limit's
(`sparse_limit`: the share of that work a step still needs when it skips inactive features and dead outputs).
`--scale s` runs s × the issue's steps everywhere (ratios stay comparable; state it when reporting).
The machine may be shared: report ratios measured in one run, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {
    "phase": dict(n=400, m=30, densities=[round(50 ** (-i / 19), 6) for i in range(20)], law=None, restarts=1,
                  batch=1024, steps=1000, value_max=1.0, lr=1e-3),
    "power": dict(n=1000, m=100, densities=None, law="power:0.5", restarts=6, batch=2048, steps=2000,
                  value_max=2.0, lr=1e-3),
    "paper": dict(n=10_240, m=256, densities=None, law="power:0.2", restarts=1, batch=8192, steps=20,
                  value_max=2.0, lr=1e-3),
}


def law_probabilities(n: int, alpha: float) -> torch.Tensor:
    p = torch.arange(1, n + 1, dtype=torch.float64) ** -(1 + alpha)
    return (p / p.sum()).float()


def density_matrix(cfg: dict) -> torch.Tensor:
    n = cfg["n"]
    if cfg["law"]:
        rows = [law_probabilities(n, float(cfg["law"].split(":")[1]))] * cfg["restarts"]
    else:
        rows = [torch.full((n,), d) for d in cfg["densities"] for _ in range(cfg["restarts"])]
    return torch.stack(rows)


def sgemm_peak(threads: int, size: int = 2048, repeats: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - t0)


def draw(p: torch.Tensor, batch: int, value_max: float, g: torch.Generator | None = None) -> torch.Tensor:
    """The notebook's batch [instances, batch, features]: feature i active with probability p[:, 0, i] (one rand
    draw), value U(0, value_max) (a second)."""
    K, _, n = p.shape
    return torch.where(torch.rand(K, batch, n, generator=g) <= p, torch.rand(K, batch, n, generator=g) * value_max,
                       torch.zeros(()))


def preactivation(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The output layer before its ReLU, W [instances, m, n]."""
    return torch.einsum("kbm,kmn->kbn", torch.einsum("kbn,kmn->kbm", x, W), W) + b[:, None, :]


def eager(cfg: dict, steps: int, threads: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The notebook's loop (two rand draws, where, two bmm, ReLU, MSE, torch AdamW lr 1e-3, decay 0.01)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p = density_matrix(cfg)[:, None, :]
    K, _, n = p.shape
    W = torch.nn.Parameter(torch.randn(K, n, cfg["m"]) * math.sqrt(2 / (n + cfg["m"])))
    b = torch.nn.Parameter(torch.zeros(K, n))
    opt = torch.optim.AdamW([W, b], lr=cfg["lr"])
    t0 = time.perf_counter()
    for _ in range(steps):
        x = draw(p, cfg["batch"], cfg["value_max"])
        out = torch.relu(torch.bmm(torch.bmm(x, W), W.transpose(1, 2)) + b[:, None, :])
        loss = ((x - out) ** 2).mean(dim=(1, 2)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return W.detach().transpose(1, 2).contiguous(), b.detach().clone(), time.perf_counter() - t0


@torch.no_grad()
def common_eval(W: torch.Tensor, b: torch.Tensor, cfg: dict, samples: int = 20_000, chunk: int = 2000) -> float:
    """Mean over instances of the paper's L on fixed-seed samples (the same for every engine)."""
    g = torch.Generator().manual_seed(2022)
    p = density_matrix(cfg)[:, None, :]
    total = torch.zeros(p.shape[0], dtype=torch.float64)
    for _ in range(samples // chunk):
        x = draw(p, chunk, cfg["value_max"], g)
        out = torch.relu(preactivation(x, W, b))
        total += ((x - out) ** 2).sum((1, 2)).double()
    return float(total.mean() / (samples // chunk * chunk))


@torch.no_grad()
def sparse_limit(W: torch.Tensor, b: torch.Tensor, cfg: dict, samples: int = 4096) -> torch.Tensor:
    """Per instance, the share of the dense work that a step at the sparse limit still needs, at weights W, b: of the
    five matmuls, the decoder's forward pass stays dense (1), the encoder and its gradient run over the active
    entries (2 × density), and the backward pass through the decoder over live outputs only, pre-activation > 0
    (2 × live fraction, measured on fixed-seed samples); divided by 5."""
    g = torch.Generator().manual_seed(7)
    p = density_matrix(cfg)[:, None, :]
    live = (preactivation(draw(p, samples, cfg["value_max"], g), W, b) > 0).float().mean((1, 2))
    return (1 + 2 * p.mean((1, 2)) + 2 * live) / 5


def tms_train(cfg: dict, steps: int, threads: int, sparse: bool, out: Path, env_extra: dict | None = None) -> dict:
    density = ["--density-law", cfg["law"]] if cfg["law"] else ["--density", ",".join(map(str, cfg["densities"]))]
    cmd = [sys.executable, "-m", "tmslab", "train", "--out", str(out), "--force", "--quiet",
           "--features", str(cfg["n"]), "--hidden", str(cfg["m"]), *density, "--restarts", str(cfg["restarts"]),
           "--batch-size", str(cfg["batch"]), "--steps", str(steps), "--value-max", str(cfg["value_max"]),
           "--lr", str(cfg["lr"]), "--threads", str(threads), "--init", "xavier"] + (["--sparse"] if sparse else [])
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")},
           **(env_extra or {})}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    import resource

    from tmslab import load_run

    run = load_run(out)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest child so far, MiB
    return dict(wall=wall, train=metrics["train_seconds"], eval=metrics.get("eval_seconds", float("nan")),
                W=run.W, b=run.b, rss=rss)


def per_step_cpu(cfg: dict, threads: int, steps: int) -> dict:
    """CPU seconds per training step (process_time: all threads, robust to a shared machine's scheduling) of the
    eager loop and the fast engine, dense and sparse, in this process, after a warm-up call."""
    import numba

    from tmslab.config import TrainConfig
    from tmslab.training import build
    from tmslab.training.fast import train_fast

    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    density = cfg["law"] and [cfg["law"]] or cfg["densities"]
    out = {}
    t0 = time.process_time()
    eager(cfg, steps, threads)
    out["eager"] = (time.process_time() - t0) / steps
    for sparse in (False, True):
        c = TrainConfig(n_features=cfg["n"], n_hidden=cfg["m"], density=density, restarts=cfg["restarts"],
                        batch_size=cfg["batch"], steps=steps, value_max=cfg["value_max"], sparse=sparse)
        for _run in ("warm-up", "timed"):
            model, dist, imp = build(c)
            t0 = time.process_time()
            train_fast(model, dist, imp, c, torch.Generator().manual_seed(0))
        out["sparse" if sparse else "dense"] = (time.process_time() - t0) / steps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), action="append")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the issue's steps to run")
    ap.add_argument("--eager-scale", type=float, default=None, help="eager steps fraction (extrapolated)")
    ap.add_argument("--cold", action="store_true", help="also time one run with an empty numba cache")
    ap.add_argument("--per-step", type=int, default=0, metavar="STEPS",
                    help="only CPU seconds per step (eager, fast dense, fast sparse) over STEPS steps")
    a = ap.parse_args()
    peak = sgemm_peak(a.threads)
    print(f"sgemm peak, {a.threads} threads: {peak / 1e9:.1f} GFLOP/s")
    if a.per_step:
        for name in a.config or ["phase", "power"]:
            cfg = CONFIGS[name]
            r = per_step_cpu(cfg, a.threads, a.per_step)
            K = density_matrix(cfg).shape[0]
            flop = 10 * cfg["n"] * cfg["m"] * cfg["batch"] * K  # five matmuls × 2 FLOP per multiply-add
            print(f"{name}: CPU s/step " + ", ".join(f"{k} {v:.4f}" for k, v in r.items())
                  + f"; eager/dense {r['eager'] / r['dense']:.1f}×, eager/sparse {r['eager'] / r['sparse']:.1f}×; "
                  f"dense-equivalent GFLOP per CPU-s: " + ", ".join(f"{k} {flop / v / 1e9:.1f}" for k, v in r.items()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.config or ["phase", "power"]:
            cfg = CONFIGS[name]
            steps = max(1, int(cfg["steps"] * a.scale))
            K = density_matrix(cfg).shape[0]
            flop = 10 * cfg["n"] * cfg["m"] * cfg["batch"] * K * steps  # as above
            rows = {}
            for sparse in (True,) if name == "paper" else (False, True):
                r = tms_train(cfg, steps, a.threads, sparse, Path(tmp) / f"{name}-{sparse}")
                r["loss"] = common_eval(r["W"], r["b"], cfg)
                rows["tmslab --sparse" if sparse else "tmslab (default)"] = r
            if name != "paper":
                es = max(1, int(steps * (a.eager_scale or 1.0)))
                W, b, sec = eager(cfg, es, a.threads)
                rows["eager"] = dict(wall=sec * steps / es, train=sec * steps / es, eval=float("nan"),
                                     loss=common_eval(W, b, cfg) if es == steps else float("nan"))
            base = rows.get("eager", {}).get("wall")
            print(f"\n## {name}: n={cfg['n']} m={cfg['m']} K={K} batch={cfg['batch']} steps={steps}")
            print("| engine | wall s | train s | eval s | eval/train | GFLOP/s (dense-equivalent) | % sgemm peak "
                  "| speed-up vs eager | eval L | L vs eager |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for label, r in rows.items():
                rate = flop / r["train"] / 1e9
                ratio = f"{base / r['wall']:.1f}×" if base else "-"
                dl = (r["loss"] / rows["eager"]["loss"] - 1) * 100 if "eager" in rows and rows["eager"]["loss"] == \
                    rows["eager"]["loss"] else float("nan")
                print(f"| {label} | {r['wall']:.1f} | {r['train']:.1f} | {r['eval']:.2f} | "
                      f"{r['eval'] / r['train']:.1%} | {rate:.1f} | {rate * 1e9 / peak:.0%} | {ratio} | "
                      f"{r['loss']:.5g} | {dl:+.2f}% |")
            if name != "paper":  # how far from the floors: all of the dense work, or only what the sparse limit needs
                share = sparse_limit(rows["tmslab (default)"]["W"], rows["tmslab (default)"]["b"], cfg)
                print(f"at sgemm peak: dense work {flop / peak:.1f} s, sparse limit {flop * share.mean() / peak:.1f} s "
                      f"(its share of the dense work {share.mean():.0%}, per instance {share.min():.0%}–"
                      f"{share.max():.0%}, at the default run's final weights); default training "
                      f"{rows['tmslab (default)']['train']:.1f} s")
            if name == "paper":
                per = rows["tmslab --sparse"]["train"] / steps
                print(f"time per step (sparse): {per:.3f} s; peak child RSS {rows['tmslab --sparse']['rss']:.0f} MiB; "
                      f"40k steps at m=256: {per * 40_000 / 3600:.1f} h (×8 widths ≤ {per * 320_000 / 3600:.0f} h, "
                      "an upper bound: the dense decoder cost grows with m)")
        if a.cold:  # a 10-step run of one density-0.05 instance, cold then warm, each path, a fresh cache each time
            cfg = dict(CONFIGS["phase"], densities=[0.05])
            for sparse in (False, True):
                overheads = []
                for rep in range(3):
                    env = {"NUMBA_CACHE_DIR": str(Path(tmp) / f"numba-cache-{sparse}-{rep}")}
                    cold = tms_train(cfg, 10, a.threads, sparse, Path(tmp) / f"cold-{sparse}-{rep}", env)
                    warm = tms_train(cfg, 10, a.threads, sparse, Path(tmp) / f"warm-{sparse}-{rep}", env)
                    overheads.append(cold["wall"] - warm["wall"])
                    print(f"cold numba cache ({'--sparse' if sparse else 'default'}): {cold['wall']:.1f} s, warm: "
                          f"{warm['wall']:.1f} s, overhead {overheads[-1]:.1f} s")
                print(f"overhead, median of 3 ({'--sparse' if sparse else 'default'}): "
                      f"{sorted(overheads)[1]:.1f} s")

if __name__ == "__main__":
    main()
