"""Benchmark: tmslab's fast engine vs the notebook's eager PyTorch loop (and occhio, if installed).

Every engine runs in its own subprocess, timed from process start to weights on disk (imports,
startup and JIT compilation included), with a fixed thread count (torch, OpenMP, numba). Peak RSS
is the child's ru_maxrss. The parent then scores every engine's weights with the same evaluation
(eager_loop.eval_loss: paper L per instance on 100k fresh samples, fixed seed).

    python benchmarks/bench_engine.py --config small                 # full 10k steps, all engines
    python benchmarks/bench_engine.py --config large                 # 1000 steps
    python benchmarks/bench_engine.py --config small --quick         # 1/10 of the steps everywhere
    python benchmarks/bench_engine.py --config large --slice eager=100 --slice occhio=50
                                        # time only the first N steps of an engine, extrapolate linearly
    python benchmarks/bench_engine.py --scaling                      # instance-steps/s table

A sliced engine's wall time is  measured wall + (loop time per step) × (remaining steps); its
eval loss is then not comparable (trained fewer steps) and is shown as "-".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONFIGS = {
    # notebook intro figure: I_i = 0.9^i, densities 20^(−linspace(0,1,10)), 10 restarts each
    "small": dict(n=5, m=2, configs=10, restarts=10, decay=0.9, steps=10_000),
    # feature-geometry scale: importance 1, densities 20^(−linspace(0,1,20)), one instance each
    "large": dict(n=400, m=30, configs=20, restarts=1, decay=1.0, steps=1_000),
}
ENGINES = ["eager", "occhio", "occhio-compile", "fast"]


def _setup(cfg: dict):
    import torch

    dens = 20 ** -torch.linspace(0, 1, cfg["configs"])
    density = dens.repeat_interleave(cfg["restarts"])[:, None].expand(-1, cfg["n"]).contiguous()
    importance = (cfg["decay"] ** torch.arange(cfg["n"]).double()).float().expand(density.shape[0], -1).contiguous()
    return dens, density, importance


# ---- workers (run in a subprocess) -------------------------------------------------------------------


def worker(engine: str, cfg: dict, steps: int, out: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    dens, density, importance = _setup(cfg)
    n, m, K = cfg["n"], cfg["m"], density.shape[0]
    info: dict = {}
    if engine == "eager":
        from eager_loop import train_eager

        t0 = time.perf_counter()
        W, b, _ = train_eager(n, m, density, importance, steps)
        info["loop_s"] = time.perf_counter() - t0
    elif engine.startswith("occhio"):
        from occhio.autoencoder import TiedLinearRelu
        from occhio.distributions.sparse import SparseUniform
        from occhio.model_grid import Axis, ModelGrid
        from occhio.toy_model import ToyModel as OToyModel

        imp = importance[0]

        def create_model(params):
            seed = int(params["Restart"]) * 1000 + int(round(float(params["Density"]) * 1e6))
            g = torch.Generator().manual_seed(seed)
            return OToyModel(
                distribution=SparseUniform(n, p_active=float(params["Density"]), generator=g),
                ae=TiedLinearRelu(n, m, generator=torch.Generator().manual_seed(seed + 1)),
                importances=imp,
            )

        grid = ModelGrid(create_model, axes=[Axis("Density", dens), Axis("Restart", list(range(cfg["restarts"])))])
        t0 = time.perf_counter()
        grid.fit(
            n_epochs=steps, batch_size=1024, learning_rate=1e-3, weight_decay=0.01, compile=engine == "occhio-compile"
        )
        info["loop_s"] = time.perf_counter() - t0
        models = grid.models.ravel()
        W = torch.stack([mm.ae.W.detach() for mm in models])
        b = torch.stack([mm.ae.b.detach() for mm in models])
    elif engine == "fast":
        from tmslab.config import TrainConfig
        from tmslab.data import make_distribution
        from tmslab.models import ToyModel
        from tmslab.training import fast

        config = TrainConfig(
            n_features=n, n_hidden=m, density=[float(d) for d in dens], restarts=cfg["restarts"],
            importance_decay=cfg["decay"], steps=steps, init="xavier-notebook", engine="fast",
        )  # fmt: skip
        model = ToyModel(config.model, K, n, m)
        model.reset_parameters([config.instance_seed(k) for k in range(K)], config.init)
        dist = make_distribution("independent", density)
        t0 = time.perf_counter()
        fast.train_fast(model, dist, importance, config, torch.Generator().manual_seed(config.seed))
        info["loop_s"] = time.perf_counter() - t0
        info["numba"] = fast.has_numba()
        W, b = model.W.detach(), model.b.detach()
    else:
        raise ValueError(engine)
    save_file({"W": W.contiguous(), "b": b.contiguous()}, out)  # safetensors: never pickle
    info["peak_rss_mb"] = _peak_rss_mb()
    return info


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; reset by exec, unlike the child's ru_maxrss, which
    inherits the forking parent's size)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- parent --------------------------------------------------------------------------------------------


def run_child(engine: str, config: str, steps: int, threads: int, out: str) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--config", config,
           "--steps", str(steps), "--out", out, "--threads", str(threads)]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status = os.waitpid(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    text = p.stdout.read()
    if p.returncode != 0:
        raise RuntimeError(f"{engine} worker failed ({p.returncode}): {text[-2000:]}")
    info = json.loads(text.strip().splitlines()[-1])
    info.update(wall_s=wall, steps_run=steps)
    return info


def bench(
    config: str, threads: int, engines: list[str], slices: dict[str, int], scale: float, repeats: int
) -> list[dict]:
    import torch
    from eager_loop import eval_loss

    torch.set_num_threads(threads)
    cfg = dict(CONFIGS[config])
    steps = max(1, int(cfg["steps"] * scale))
    _, density, importance = _setup(cfg)
    K = density.shape[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):  # engines interleaved within each repeat
            for engine in engines:
                run_steps = min(steps, slices.get(engine, steps))
                out = os.path.join(tmp, f"{engine}.safetensors")
                info = run_child(engine, config, run_steps, threads, out)
                est = info["wall_s"] + info["loop_s"] / run_steps * (steps - run_steps)
                row = dict(info, engine=engine, rep=rep, steps=steps, measured_steps=run_steps, wall_s=est,
                           measured_wall_s=info["wall_s"])  # fmt: skip
                if run_steps == steps:
                    w = load_file(out)
                    row["eval_L"] = float(eval_loss(w["W"].float(), w["b"].float(), density, importance).mean())
                row["inst_steps_per_s"] = K * steps / est
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], config: str, threads: int) -> str:
    best: dict[str, dict] = {}
    for r in rows:  # keep each engine's fastest repeat
        if r["engine"] not in best or r["wall_s"] < best[r["engine"]]["wall_s"]:
            best[r["engine"]] = r
    base = best.get("eager")
    cfg = CONFIGS[config]
    lines = [
        f"config {config}: n={cfg['n']} m={cfg['m']} instances={cfg['configs'] * cfg['restarts']} "
        f"steps={rows[0]['steps']} batch=1024, threads={threads}, "
        f"repeats={1 + max(r['rep'] for r in rows)} (best shown)",
        "",
        "| engine | measured steps | wall s (start→weights) | loop s | instance-steps/s | peak RSS MB "
        "| mean eval L | speed-up vs eager | L vs eager |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e, r in best.items():
        L = f"{r['eval_L']:.5f}" if "eval_L" in r else "-"
        sp = f"{base['wall_s'] / r['wall_s']:.1f}×" if base else "-"
        dl = f"{(r['eval_L'] / base['eval_L'] - 1) * 100:+.2f}%" if base and "eval_L" in r and "eval_L" in base else "-"
        meas = str(r["measured_steps"]) + ("" if r["measured_steps"] == r["steps"] else " (extrapolated)")
        lines.append(
            f"| {e} | {meas} | {r['wall_s']:.1f} | {r['loop_s']:.1f} | {r['inst_steps_per_s']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} | {L} | {sp} | {dl} |"
        )
    return "\n".join(lines)


def scaling(threads: int) -> str:
    """Training-loop throughput (compilation excluded, one warm-up call) of the fast engine and the
    eager loop, vs instances (n=5, m=2) and vs n (20 instances, m ≈ 0.075 n)."""
    import numpy as np
    import torch
    from eager_loop import train_eager

    from tmslab.config import TrainConfig
    from tmslab.data import make_distribution
    from tmslab.models import ToyModel
    from tmslab.training import fast

    torch.set_num_threads(threads)

    def fast_rate(n, m, K, steps):
        configs = min(K, 10) if n == 5 else K
        dens = [float(d) for d in 20 ** -np.linspace(0, 1, configs)]
        cfg = TrainConfig(n_features=n, n_hidden=m, density=dens, restarts=K // configs, steps=steps)
        density = torch.tensor(dens).repeat_interleave(K // configs)[:, None].expand(-1, n).contiguous()
        model = ToyModel("relu-output", K, n, m)
        model.reset_parameters(list(range(K)))
        t0 = time.perf_counter()
        fast.train_fast(
            model, make_distribution("independent", density), torch.ones(K, n), cfg, torch.Generator().manual_seed(0)
        )
        return K * steps / (time.perf_counter() - t0), density

    def eager_rate(n, m, K, steps, density):
        _, _, per_step = train_eager(n, m, density, torch.ones(K, n), steps)
        return K / per_step

    fast_rate(5, 2, 10, 5)  # compile / load the cache
    out = [
        "| n | m | instances | fast instance-steps/s | eager instance-steps/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    points = [(5, 2, 10), (5, 2, 100), (5, 2, 1000), (5, 2, 10_000)]
    points += [(n, max(2, round(0.075 * n)), 20) for n in (5, 20, 100, 400, 1000)]
    for n, m, K in points:
        work = K * n * max(m, 4)  # rough per-step cost, to keep each point to a few seconds
        f_steps = int(np.clip(2e7 / work, 5, 5000))
        e_steps = int(np.clip(2e6 / work, 3, 500))
        fr, density = fast_rate(n, m, K, f_steps)
        er = eager_rate(n, m, K, e_steps, density)
        out.append(f"| {n} | {m} | {K} | {fr:,.0f} | {er:,.0f} | {fr / er:.1f}× |")
        print(out[-1], file=sys.stderr, flush=True)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description="tmslab fast engine benchmark")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--quick", action="store_true", help="run 1/10 of the steps everywhere")
    ap.add_argument("--slice", action="append", default=[], metavar="ENGINE=STEPS",
                    help="time only the first STEPS steps of ENGINE and extrapolate linearly")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, CONFIGS[a.config], a.steps, a.out, a.threads)))
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}"
    )
    if a.scaling:
        print(scaling(a.threads))
        return
    engines = [e for e in a.engines.split(",") if e]
    if any(e.startswith("occhio") for e in engines):
        try:
            import occhio  # noqa: F401
        except ImportError:
            print("occhio is not installed: skipped")
            engines = [e for e in engines if not e.startswith("occhio")]
    slices = {k: int(v) for k, v in (s.split("=") for s in a.slice)}
    rows = bench(a.config, a.threads, engines, slices, 0.1 if a.quick else 1.0, a.repeats)
    print(table(rows, a.config, a.threads))


if __name__ == "__main__":
    main()
