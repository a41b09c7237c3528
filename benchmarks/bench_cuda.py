"""The `--device cuda` path (issue 14): time per step and peak GPU memory of `tmslab.training.train`, plain PyTorch
on the GPU (fp32, TF32 off: PyTorch's default), at the sizes the scaling-law study needs.

Configurations:
  paper   n = 10,240, batch 8,192, p_i ∝ i^−1.2, values U(0, 2), weight growth γ = −1, the paper's per-width
          lr (exp-17), widths m = 8 … 1,024 — with the projected time of the paper's 40,000 steps per width;
  power   n = 1,000, m = 100, 6 instances, p_i ∝ i^−1.5, values U(0, 2), batch 2,048 (issue 14's table);
  scaling n = 1,000, m = 100, 2 instances (α = 0.5, 1), batch 2,048: one run of examples/scaling_schedule.py.

Time per step = (t(S2) − t(S1)) / (S2 − S1) from two `train` calls of S1 and S2 steps after a warm-up call (each
call's `train_seconds` ends with a CUDA synchronisation), so start-up and the CPU evaluation drop out. Achieved
FLOP/s counts the dense model's 10·n·m·B per instance-step (five matmuls of 2·n·m·B: forward 2, backward 3 —
x needs no gradient). Writes one JSON line.

    python benchmarks/bench_cuda.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from tmslab.config import TrainConfig
from tmslab.training import train

S1, S2 = 10, 110
PAPER_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
PAPER_STEPS = 40_000


def config(n: int, m: int, law: list[str], batch: int, steps: int, lr: float, lr_b: float | None = None,
           gamma: float = -1.0) -> TrainConfig:
    return TrainConfig(n_features=n, n_hidden=m, density=law, value_max=2.0, weight_decay=gamma, decay_bias=False,
                       init="paper", lr=lr, lr_b=lr_b, schedule="cosine-floor", lr_floor=0.05,
                       warmup_steps=steps // 10, steps=steps, batch_size=batch, eval_samples=1000, device="cuda")


def per_step(make) -> dict[str, float]:
    train(make(S1))  # warm-up: CUDA context, cuBLAS handles, the caching allocator, numba's evaluation kernels
    torch.cuda.reset_peak_memory_stats()
    t1 = train(make(S1)).train_seconds
    t2 = train(make(S2)).train_seconds
    c = make(S2)
    s = (t2 - t1) / (S2 - S1)
    flop = 10 * c.n_features * c.n_hidden * c.batch_size * c.n_instances  # five matmuls × 2 FLOP per multiply-add
    return {"n": c.n_features, "m": c.n_hidden, "instances": c.n_instances, "batch": c.batch_size,
            "ms_per_step": round(1e3 * s, 3), "tflop_s": round(flop / s / 1e12, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


def sgemm_tflops(size: int = 8192, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, device="cuda"), torch.randn(size, size, device="cuda")
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; this benchmark measures the --device cuda path.")
    out: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                 "python": platform.python_version(), "tf32": torch.backends.cuda.matmul.allow_tf32,
                 "fp32_sgemm_tflop_s": round(sgemm_tflops(), 1)}
    paper = []
    for m in PAPER_WIDTHS:
        row = per_step(lambda s, m=m: config(10_240, m, ["power:0.2"], 8192, s, 0.02 * (8 / m) ** 0.25, 2 / m))
        row["projected_40k_steps_s"] = round(row["ms_per_step"] * PAPER_STEPS / 1e3)
        paper.append(row)
        print(json.dumps(row), flush=True)
    out["paper"] = paper
    out["paper_projected_all_widths_h"] = round(sum(r["projected_40k_steps_s"] for r in paper) / 3600, 2)
    out["power"] = per_step(lambda s: config(1000, 100, ["power:0.5"] * 6, 2048, s, 1e-3, gamma=0.01))
    out["scaling"] = per_step(lambda s: config(1000, 100, ["power:0.5", "power:1"], 2048, s, 1e-2, gamma=1.0))
    line = json.dumps(out)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
