"""How the operator CLI shows things: aligned tables, times, ages, durations.

Owns the look of every listing (headers in capitals, columns padded to their widest cell, long
cells cut with an ellipsis) and the parsing of user-typed durations. Pure: formats values it is
given, reads no clock itself (``now`` is passed in).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: Widest a cell is shown before it is cut.
MAX_CELL: Final = 48


def parse_duration(text: str) -> float:
    """``3600``, ``90m``, ``12h``, ``30d``, ``2w`` in seconds; ValueError names the bad text."""
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"duration {text!r} is not like 3600, 90m, 12h or 30d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cell(value: Any, width: int = MAX_CELL) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO | None = None
) -> None:
    print(format_table(headers, rows), file=stream or sys.stdout)


def timestamp(epoch: float | None) -> str:
    """An epoch time as UTC ``YYYY-MM-DD HH:MM:SS``."""
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def age(epoch: float | None, now: float) -> str:
    """How long ago: ``4s ago``, ``3m ago``, ``2h ago``, ``5d ago``."""
    if epoch is None:
        return "-"
    seconds = max(0.0, now - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def print_tokens(items: Sequence[dict[str, Any]], stream: TextIO | None = None) -> None:
    """The token listing (``z4j tokens list``, either mode)."""
    print_table(
        ["name", "status", "created", "expires", "labels"],
        [
            (
                t["name"],
                t["status"],
                timestamp(t["created_at"]),
                timestamp(t["expires_at"]) if t.get("expires_at") else "never",
                labels_text(t.get("labels")),
            )
            for t in items
        ],
        stream,
    )
