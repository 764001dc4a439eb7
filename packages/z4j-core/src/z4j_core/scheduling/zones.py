"""Time zones: IANA names checked at the boundary, and each zone's UTC offsets as a timeline.

Owns `resolve_zone` (an unknown name is refused with a did-you-mean suggestion) and
`ZoneTimeline`, which answers "what is the UTC offset at instant t" and "where does the
current offset end" from a cache of the zone's transitions, found by probing `zoneinfo`
(the only source of truth; zoneinfo does not publish its transition table). Must never read
the clock; the only I/O is zoneinfo loading its database.
"""

from __future__ import annotations

import difflib
import functools
from bisect import bisect_right
from datetime import datetime, timedelta
from itertools import compress, islice, repeat
from operator import ne
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from z4j_core.scheduling.errors import ScheduleError

# Instants are whole seconds since the Unix epoch in this module.
_MIN_TS = -62135596800 + 2 * 86400  # 0001-01-03: leave room for negative offsets
_MAX_TS = 253402300799 - 2 * 86400  # 9999-12-29
# Transitions are cached per chunk of about 194 days. Inside a chunk the offset is probed every
# six hours; where two probes differ the transition is bisected to the second. Two transitions
# that cancel out within six hours would be missed; no zone in the database does that.
_CHUNK_SECONDS = 1 << 24
_PROBE_SECONDS = 6 * 3600
# The fall-back exclusion needs the transition before an instant; overlaps never last a day.
_LOOKBEHIND_SECONDS = 2 * 86400


@functools.lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(set(available_timezones()) - HOST_DEPENDENT_ZONES))


@functools.lru_cache(maxsize=1)
def _zone_name_set() -> frozenset[str]:
    return frozenset(_zone_names())


#: Names that zoneinfo may open but that mean something different on each host (the host's
#: own zone, a file left for POSIX TZ strings, "no zone"): a schedule would fire at another
#: instant on another brain.
HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def resolve_zone(name: object) -> ZoneInfo:
    """The ZoneInfo for an IANA name; an unknown or host-dependent one is refused with a
    suggestion."""
    if isinstance(name, ZoneInfo):
        name = name.key
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(f"time zone must be an IANA name like Europe/Berlin, got {name!r}")
    if name in HOST_DEPENDENT_ZONES or name.startswith(("posix/", "right/")):
        raise ScheduleError(
            f"time zone {name!r} depends on the host's files: give an IANA name like "
            "Europe/Berlin (or UTC)"
        )
    names = _zone_names()
    if name == "UTC" or name in _zone_name_set():
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    by_lower = {zone.lower(): zone for zone in names}
    suggestion = by_lower.get(name.strip().lower())
    if suggestion is None:
        matches = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if not matches:
            lowered = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
            matches = [by_lower[m] for m in lowered]
        suggestion = matches[0] if matches else None
    hint = (
        f" (did you mean {suggestion}?)" if suggestion else " (use an IANA name like Europe/Berlin)"
    )
    raise ScheduleError(f"unknown time zone {name!r}{hint}")


def zone_name(zone: ZoneInfo) -> str:
    return str(zone.key)


def _seconds(offset: timedelta | None) -> int:
    assert offset is not None  # a ZoneInfo always answers
    return offset.days * 86400 + offset.seconds


def _probe_offset(zone: ZoneInfo, ts: int) -> int:
    return _seconds(datetime.fromtimestamp(ts, tz=zone).utcoffset())


class ZoneTimeline:
    """The UTC offsets of one zone over time, with transitions cached as they are needed."""

    __slots__ = ("_chunks", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        # chunk index -> (offset at chunk start, transition instants, offsets after each)
        self._chunks: dict[int, tuple[int, tuple[int, ...], tuple[int, ...]]] = {}

    def _chunk(self, index: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        chunk = self._chunks.get(index)
        if chunk is None:
            chunk = self._build_chunk(index)
            self._chunks[index] = chunk
        return chunk

    def _build_chunk(self, index: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        start = max(index * _CHUNK_SECONDS, _MIN_TS)
        end = min((index + 1) * _CHUNK_SECONDS, _MAX_TS)
        zone = self.zone
        first = _probe_offset(zone, start)
        instants: list[int] = []
        offsets: list[int] = []

        def bisect_transitions(lo: int, hi: int, off_lo: int, off_hi: int) -> None:
            # Invariant: offset(lo) == off_lo, offset(hi) == off_hi, and they differ.
            if hi - lo <= 1:
                instants.append(hi)
                offsets.append(off_hi)
                return
            mid = (lo + hi) // 2
            off_mid = _probe_offset(zone, mid)
            if off_mid != off_lo:
                bisect_transitions(lo, mid, off_lo, off_mid)
            if off_mid != off_hi:
                bisect_transitions(mid, hi, off_mid, off_hi)

        # A chunk covers instants in [start, end) and records transitions in (start, end], so
        # the one landing exactly on the next chunk's start is still seen as the end of this
        # chunk's last stretch (and found again through the look-behind from the next one).
        # The probes run through map() (C loops): building a chunk is the search's main cost.
        points = [start, *range(start + _PROBE_SECONDS, end, _PROBE_SECONDS), end]
        probed = list(map(zone.utcoffset, map(datetime.fromtimestamp, points, repeat(zone))))
        for i in compress(range(1, len(points)), map(ne, probed, islice(probed, 1, None))):
            bisect_transitions(
                points[i - 1], points[i], _seconds(probed[i - 1]), _seconds(probed[i])
            )
        return first, tuple(instants), tuple(offsets)

    def offset_at(self, ts: int) -> int:
        """The zone's UTC offset in seconds at instant `ts` (seconds since the epoch)."""
        start_offset, instants, offsets = self._chunk(ts // _CHUNK_SECONDS)
        i = bisect_right(instants, ts)
        return offsets[i - 1] if i else start_offset

    def segment(self, ts: int) -> tuple[int, int, int, int, int]:
        """The stretch of constant offset that holds `ts`.

        Returns (offset, end, offset_after_end, start_of_fall_back, offset_before_start):
        `end` is the next transition or an artificial boundary (where both offsets are equal);
        when the stretch began with a fall-back less than two days before `ts`, the last two
        give that transition's instant and the larger offset before it, else (ts, offset).
        """
        if ts < _MIN_TS or ts >= _MAX_TS:
            raise ScheduleError("instant is outside the years 0001 to 9999")
        index = ts // _CHUNK_SECONDS
        start_offset, instants, offsets = self._chunk(index)
        i = bisect_right(instants, ts)
        offset = offsets[i - 1] if i else start_offset
        if i < len(instants):
            end, offset_after = instants[i], offsets[i]
        else:
            end = min((index + 1) * _CHUNK_SECONDS, _MAX_TS)
            offset_after = offset
        if i:
            began = instants[i - 1]
            before = offsets[i - 2] if i >= 2 else start_offset
        else:
            began, before = ts, offset
            if (
                ts - index * _CHUNK_SECONDS < _LOOKBEHIND_SECONDS
                and index * _CHUNK_SECONDS > _MIN_TS
            ):
                prev_start, prev_instants, prev_offsets = self._chunk(index - 1)
                if prev_instants and prev_instants[-1] <= ts:
                    began = prev_instants[-1]
                    before = prev_offsets[-2] if len(prev_offsets) >= 2 else prev_start
        if before <= offset or ts - began >= _LOOKBEHIND_SECONDS:
            began, before = ts, offset
        return offset, end, offset_after, began, before

    def transitions(self, start_ts: int, end_ts: int) -> list[tuple[int, int, int]]:
        """(instant, offset before, offset after) for every transition in [start_ts, end_ts)."""
        found: list[tuple[int, int, int]] = []
        index = start_ts // _CHUNK_SECONDS
        while index * _CHUNK_SECONDS < end_ts:
            start_offset, instants, offsets = self._chunk(index)
            before = start_offset
            for instant, after in zip(instants, offsets, strict=True):
                if start_ts <= instant < end_ts:
                    found.append((instant, before, after))
                before = after
            index += 1
        return found


_TIMELINES: dict[str, ZoneTimeline] = {}


def timeline_for(zone: ZoneInfo) -> ZoneTimeline:
    """The shared timeline of a zone (zones are few; their timelines live for the process)."""
    key = zone.key
    timeline = _TIMELINES.get(key)
    if timeline is None or timeline.zone is not zone:
        timeline = ZoneTimeline(zone)
        _TIMELINES[key] = timeline
    return timeline


UTC_ZONE = ZoneInfo("UTC")
