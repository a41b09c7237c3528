"""Regenerate docs/report-screenshot.png from a `tms reproduce` report, with headless Chromium.

    python scripts/screenshot.py DIR                # DIR/index.html → docs/report-screenshot.png
    python scripts/screenshot.py DIR --rebuild      # first `tms report DIR` (the report of this version's code)

DIR is a `tms reproduce --out` folder (the report needs its figures, which the records in results/ do not keep):
the recorded full run's folder where it exists, else a quick one (`tms reproduce --quick --out DIR`). Chromium is
Debian's `chromium` (or $TMSLAB_CHROMIUM), driven as tests/browser.py drives it. The top of the page — the counts
line, the table of contents and the first section — is what the README shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The README's image: 1280 × 900 CSS pixels shows the header, the contents and the start of the first section.
WIDTH, HEIGHT = 1280, 900


def chromium() -> str:
    """The browser binary: $TMSLAB_CHROMIUM, else the first of Debian's and Google's names on PATH."""
    env = os.environ.get("TMSLAB_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("error: headless Chromium not found: apt-get install chromium (or set TMSLAB_CHROMIUM).")


def screenshot(index: Path, out: Path, width: int = WIDTH, height: int = HEIGHT, timeout: float = 120) -> None:
    """Render `index` (an HTML file) in headless Chromium and write a width × height PNG of its top to `out`."""
    with tempfile.TemporaryDirectory(prefix="tmslab-shot-") as profile:
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",  # let plotly draw the first figures before the capture
            f"--window-size={width},{height}", f"--screenshot={out.resolve()}",
        ]  # fmt: skip
        done = subprocess.run([chromium(), *flags, index.resolve().as_uri()], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"error: Chromium did not write {out} (exit {done.returncode}): {done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a `tms reproduce --out` folder holding index.html")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    parser.add_argument("--rebuild", action="store_true", help="run `tms report DIR` first")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--height", type=int, default=HEIGHT)
    args = parser.parse_args(argv)
    index = args.directory / "index.html"
    if args.rebuild:
        # exit 1 only says a check failed; the report is written all the same
        done = subprocess.run([sys.executable, "-m", "tmslab", "report", str(args.directory)])
        if done.returncode not in (0, 1):
            return done.returncode
    if not index.is_file():
        raise SystemExit(f"error: {index} does not exist; run `tms reproduce --out {args.directory}` first.")
    screenshot(index, args.out, args.width, args.height)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
