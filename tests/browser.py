"""Headless Chromium helpers for the report tests (Debian's `chromium`; override with $TMSLAB_CHROMIUM)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_binary() -> str | None:
    env = os.environ.get("TMSLAB_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = chromium_binary()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found: apt-get install chromium (or set TMSLAB_CHROMIUM)"
)


def run_chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-unsafe-swiftshader",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
    ]
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    """Uncaught exceptions / errors in Chromium's console log (warnings and GL chatter are ignored)."""
    lines = [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]
    return [ln for ln in lines if re.search(r"Uncaught|\bError\b|TypeError|ReferenceError|SyntaxError", ln)]


def dom_attributes(dom: str) -> dict[str, str]:
    """Attributes of the <html> element after the page's scripts ran (the report records its health there)."""
    root = re.search(r"<html[^>]*>", dom)
    assert root, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(0)))
