"""Reads of a brain that tests and benchmarks share, through its HTTP API only.

Owns paging through `/api/v1/events`. Never opens the brain's database (brainstore.py does,
for the few reads the API cannot answer cheaply).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from z4j_core.testing.brainproc import BrainProcess

PAGE = 10_000  # the API's largest `limit`


def events(brain: BrainProcess, after: int = 0, timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """Every event the brain has stored after position `after`, in order."""
    while True:
        page = brain.api("GET", f"/api/v1/events?after={after}&limit={PAGE}", timeout=timeout)
        yield from page["events"]
        if not page["events"] or page["next_after"] >= page["latest"]:
            return
        after = page["next_after"]
