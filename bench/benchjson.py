"""The one JSON shape every bench script writes with `--json PATH`, read by bench/report.py.

    {"bench": name, "started": ISO 8601, "argv": [...],
     "machine": {"cpus": n, "loadavg_start": [1, 5, 15 min], "loadavg_end": [...], "python": v},
     "results": [{"metric": ..., "config": {...}, "unit": ..., "median": x, "min": x, "max": x,
                  "samples": [every round's value, or every fire's latency]}]}

A script adds its figures as it prints them and writes the file once, at the end; without
`--json` nothing is written and the script prints exactly what it printed before. This module
measures nothing and must never change what a bench prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", metavar="PATH", help="also write every figure to PATH (bench/benchjson.py)"
    )


def summary(samples: Iterable[float]) -> dict[str, Any]:
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("a result needs at least one sample")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "samples": values,
    }


class Recorder:
    """Collects one bench run's results; `write()` saves them if a path was given."""

    def __init__(self, bench: str, path: str | None) -> None:
        self.bench = bench
        self.path = Path(path) if path else None
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.argv = list(sys.argv)
        self.loadavg_start = list(os.getloadavg())
        self.results: list[dict[str, Any]] = []

    def add(self, metric: str, unit: str, samples: Iterable[float], **config: Any) -> None:
        values = list(samples)
        if values:
            self.results.append({"metric": metric, "config": config, "unit": unit,
                                 **summary(values)})  # fmt: skip

    def write(self) -> None:
        if self.path is None:
            return
        document = {
            "bench": self.bench,
            "started": self.started,
            "argv": self.argv,
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg_start": self.loadavg_start,
                "loadavg_end": list(os.getloadavg()),
                "python": platform.python_version(),
            },
            "results": self.results,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(document, indent=1) + "\n")
