"""Deterministic jitter: the delay added to a slot, derived from the schedule id and the slot.

Owns the one formula, so every leader (and every restart) computes the same due instant for
the same slot. Must never use randomness or the clock.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def jitter_offset(schedule_id: str, slot: datetime, max_jitter: timedelta) -> timedelta:
    """A delay in [0, max_jitter], in whole milliseconds, fixed for (schedule id, slot)."""
    span_ms = int(max_jitter.total_seconds() * 1000)
    if span_ms <= 0:
        return timedelta(0)
    # Keyed on the UTC instant, so the same slot gets the same delay whatever its zone.
    micros = (slot - _EPOCH) // _MICROSECOND
    digest = hashlib.blake2b(f"{schedule_id}|{micros}".encode(), digest_size=8).digest()
    return timedelta(milliseconds=int.from_bytes(digest, "big") % (span_ms + 1))
