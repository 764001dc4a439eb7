"""Debian's Chromium, as the console's browser tests and bench/bench_console_live.py launch it
through Playwright (never a browser Playwright downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")
#: Headless, and quiet on a closed network: without the background-networking flags Chromium
#: keeps trying to reach Google's hosts.
LAUNCH_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
