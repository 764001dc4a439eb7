"""Refusing addresses that keep presenting bad tokens.

Owns the rule that an address which presented too many bad tokens (agent upgrades and API
calls counted together) in a window gets HTTP 429 until the window ends, decided from memory
alone: a refused request never reaches the database or the token hash. Memory is bounded: the
table of addresses is pruned when it grows past a ceiling. Never records the tokens themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

#: Most addresses remembered; past it, expired windows are pruned, then the oldest dropped.
MAX_ADDRESSES: Final = 100_000


class AuthFailureLimiter:
    """Counts bad tokens per address in fixed windows."""

    def __init__(
        self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # address -> (window start, failures)
        self.refused = 0  # requests answered 429

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it is not limited now."""
        entry = self._windows.get(address)
        if entry is None:
            return None
        started, failures = entry
        left = started + self.window - self._clock()
        if left <= 0:
            del self._windows[address]
            return None
        if failures < self.limit:
            return None
        self.refused += 1
        return left

    def failed(self, address: str) -> None:
        """``address`` presented a bad token."""
        now = self._clock()
        entry = self._windows.get(address)
        if entry is None or entry[0] + self.window <= now:
            if len(self._windows) >= MAX_ADDRESSES:
                self._prune(now)
            self._windows[address] = (now, 1)
        else:
            self._windows[address] = (entry[0], entry[1] + 1)

    def _prune(self, now: float) -> None:
        for address, (started, _) in list(self._windows.items()):
            if started + self.window <= now:
                del self._windows[address]
        while len(self._windows) >= MAX_ADDRESSES:
            del self._windows[next(iter(self._windows))]
