"""`z4j schedules ...`: placeholder registration until the scheduler core lands."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    return None
