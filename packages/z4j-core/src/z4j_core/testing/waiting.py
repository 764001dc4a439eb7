"""Waiting for an outcome in a test: poll with a generous deadline, assert nothing about time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy and return that; past ``timeout``
    seconds fail with an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
