"""Time `tms zoo get NAME --out DIR` on a fresh cache (process start → files on disk), one child per model.

A build trains the model, evaluates the checks of its card on the saved weights and caches it only if all pass,
so a zero exit status also means every check passed. Thread counts are fixed in the child (default 2).

    python benchmarks/bench_zoo.py                        # every zoo model
    python benchmarks/bench_zoo.py tms-40-10 --threads 2  # the issue's "under a minute" target
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    from tmslab import zoo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="zoo models (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    names = args.names or list(zoo.ZOO)
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "TMSLAB_CACHE_DIR": str(Path(tmp) / "cache")}
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
                env[var] = str(args.threads)
            load = os.getloadavg()[0]
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "tmslab", "zoo", "get", name, "--out", str(Path(tmp) / "out"),
                                   "--quiet"], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            card = Path(tmp) / "out" / "card.json"
            checks = json.loads(card.read_text())["checks"] if card.exists() else []
            rows.append((name, wall, load, proc.returncode, sum(c["status"] == "pass" for c in checks), len(checks)))
            status = "ok" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1][:160]
            print(f"{name:18s} {wall:7.1f} s  load {load:5.1f}  checks {rows[-1][4]}/{rows[-1][5]}  {status}",
                  flush=True)
    print(f"total {sum(r[1] for r in rows):.1f} s; {sum(r[3] == 0 for r in rows)}/{len(rows)} built")


if __name__ == "__main__":
    main()
