"""The agent's outbox: events from `emit` to acknowledged, in order, in bounded memory.

Owns the path of an event after the hot path hands it over: `emit` appends a raw record to a
lock-free deque (`RecordQueue`); the link thread alone drains it, gives each event its sequence
number, and keeps it here until the brain acknowledges it. Memory is bounded: past
`max_memory_events`, events spill to an on-disk spool of segment files; past the spool's byte
bound the oldest segment is dropped and counted. Nothing here may run on the host's threads
except `RecordQueue.push`.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from z4j_core.wire import Event, EventBatch, LifecycleKind
from z4j_core.wire.limits import MAX_RETRIES

log = logging.getLogger("z4j.agent")

SEGMENT_EVENTS = 2000
_SEGMENT_SUFFIX = ".seg"
# Segment numbers start high so that older events can be put in front (see `prepend`).
_FIRST_SEGMENT = 10**11
_events_encoder = msgspec.msgpack.Encoder()
_events_decoder = msgspec.msgpack.Decoder(list[Event])

# What `emit` hands over: (kind, at, engine, task_id, task_name, fields or None).
Record = tuple[Any, float, str, str, str, "dict[str, Any] | None"]

_STR_FIELDS = ("queue", "worker", "args", "kwargs", "result", "exception", "message", "traceback")


class RecordQueue:
    """The hand-over point between host threads and the link thread.

    `push` is one `deque.append` (atomic under the GIL, no lock, no I/O, no wake-up). A hard cap
    keeps memory bounded even when the link thread is stuck; what the cap refuses is counted.
    """

    __slots__ = ("_dropped", "_records", "cap")

    def __init__(self, cap: int) -> None:
        self._records: deque[Record] = deque()
        self._dropped = itertools.count()
        self.cap = cap

    def push(self, record: Record) -> None:
        if len(self._records) >= self.cap:
            next(self._dropped)
            return
        self._records.append(record)

    def drain(self, limit: int) -> list[Record]:
        records = self._records
        taken: list[Record] = []
        append = taken.append
        pop = records.popleft
        with contextlib.suppress(IndexError):
            for _ in range(min(limit, len(records))):
                append(pop())
        return taken

    def __len__(self) -> int:
        return len(self._records)

    @property
    def dropped(self) -> int:
        # itertools.count has no read; its repr is "count(N)".
        return int(repr(self._dropped)[6:-1])


_KINDS: dict[Any, LifecycleKind] = {
    **{k.value: k for k in LifecycleKind},
    **{k: k for k in LifecycleKind},
}


def _as_str(value: Any) -> str:
    return value if type(value) is str else str(value)


def _as_retries(value: Any) -> int:
    return min(max(0, int(value)), MAX_RETRIES)


def _as_finite(value: Any) -> float | None:
    """A runtime the brain can store, or None (NaN and the infinities are refused on the wire)."""
    number = float(value)
    return number if math.isfinite(number) else None


def _as_extra(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


# How each optional field is coerced; any other field travels as a string in `extra`.
_COERCE: dict[str, Any] = {
    **dict.fromkeys(_STR_FIELDS, _as_str),
    "fire_id": _as_str,
    "runtime": _as_finite,
    "retries": _as_retries,
    "extra": _as_extra,
}
_STR_NAMES = frozenset(name for name, convert in _COERCE.items() if convert is _as_str)


def record_to_event(seq: int, record: Record) -> Event:
    """Build a wire event, coercing field types so a sloppy adapter can never poison a batch."""
    kind, at, engine, task_id, task_name, fields = record
    values: dict[str, Any] = {}
    if fields:
        coerce, strings = _COERCE, _STR_NAMES
        for name, value in fields.items():
            if value is None:
                continue
            if type(value) is str and name in strings:  # most fields: kept as they are
                values[name] = value
                continue
            convert = coerce.get(name)
            if convert is not None:
                converted = convert(value)
                if converted is not None:
                    values[name] = converted
            else:  # a field the wire has no slot for travels in `extra`
                values.setdefault("extra", {})[name] = _as_str(value)
    if not math.isfinite(at):  # a NaN instant would get the whole batch refused, forever
        at = time.time()
    return Event(
        seq=seq,
        kind=_KINDS[kind],
        at=at,
        engine=engine,
        task_id=_as_str(task_id),
        task_name=_as_str(task_name),
        **values,
    )


def event_size(event: Event) -> int:
    """A cheap upper estimate of an event's encoded size, for cutting batches by bytes."""
    size = 160 + len(event.task_id) + len(event.task_name)
    for text in (event.args, event.kwargs, event.result, event.message, event.traceback):
        if text:
            size += len(text) * 2
    return size


class Spool:
    """Segment files of sequenced events on disk, oldest first, bounded in bytes.

    One folder per agent instance, holding `meta.json` (what a later agent needs to replay the
    folder under this instance's identity) and a `lock` held with flock while the owner lives.
    """

    def __init__(self, folder: Path, max_bytes: int, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (folder / "meta.json").write_text(json.dumps(meta))
        self._segments: deque[tuple[Path, int, int]] = deque()  # (path, events, bytes)
        for path in sorted(folder.glob(f"*{_SEGMENT_SUFFIX}")):
            size = path.stat().st_size
            self._segments.append((path, -1, size))
        self._next_segment = self._segment_number() + 1
        self.dropped = 0
        self._failing = False  # the last write failed (logged once until one succeeds)

    @classmethod
    def open_orphan(cls, folder: Path) -> Spool | None:
        """Take over the folder of an agent process that is gone, or None if its owner lives."""
        try:
            fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)  # released: we reopen and relock in __init__ (no one else races us here)
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        try:
            return cls(folder, max_bytes=1 << 62, meta=meta)
        except OSError:
            return None

    def _segment_number(self, index: int = -1) -> int:
        if not self._segments:
            return _FIRST_SEGMENT
        return int(self._segments[index][0].name.removesuffix(_SEGMENT_SUFFIX))

    @property
    def meta(self) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads((self.folder / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return value

    @property
    def bytes(self) -> int:
        return sum(size for _, _, size in self._segments)

    def __bool__(self) -> bool:
        return bool(self._segments)

    def _save(self, path: Path, events: list[Event]) -> int:
        """Write one segment file whole (or not at all); its size, or -1 when the folder could
        not take it (a full disk, a read-only or vanished folder): then the events are counted
        as dropped, and reported like every drop."""
        data = _events_encoder.encode(events)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self.dropped += len(events)
            if not self._failing:
                log.warning(
                    "z4j spool %s cannot take events (%s): dropping them, counted", self.folder,
                    exc.strerror or exc,
                )  # fmt: skip
            self._failing = True
            return -1
        if self._failing:
            log.warning("z4j spool %s takes events again", self.folder)
            self._failing = False
        return len(data)

    def write(self, events: list[Event]) -> None:
        """Append one segment. Drops the oldest segments while the spool is over its bound."""
        if not events:
            return
        path = self.folder / f"{self._next_segment:012d}{_SEGMENT_SUFFIX}"
        self._next_segment += 1
        size = self._save(path, events)
        if size < 0:
            return
        self._segments.append((path, len(events), size))
        while len(self._segments) > 1 and self.bytes > self.max_bytes:
            oldest, count, _ = self._segments.popleft()
            if count < 0:
                count = len(self._load(oldest))
            self.dropped += count
            oldest.unlink(missing_ok=True)
            log.warning("z4j spool over %d bytes: dropped %d oldest events", self.max_bytes, count)

    def prepend(self, events: list[Event]) -> None:
        """Put a segment before all others (events older than any spooled). Drops only what the
        folder cannot take (counted)."""
        if not events:
            return
        number = self._segment_number(0) - 1 if self._segments else _FIRST_SEGMENT
        path = self.folder / f"{number:012d}{_SEGMENT_SUFFIX}"
        size = self._save(path, events)
        if size < 0:
            return
        self._segments.appendleft((path, len(events), size))
        self._next_segment = max(self._next_segment, number + 1)

    def read_oldest(self) -> list[Event]:
        """Remove and return the oldest segment's events."""
        while self._segments:
            path, _, _ = self._segments.popleft()
            events = self._load(path)
            path.unlink(missing_ok=True)
            if events:
                return events
        return []

    def _load(self, path: Path) -> list[Event]:
        try:
            return _events_decoder.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("z4j spool segment %s is unreadable and was skipped: %s", path.name, exc)
            return []

    def close(self, remove_if_empty: bool = True) -> None:
        if remove_if_empty and not self._segments:
            for name in ("meta.json",):
                (self.folder / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (self.folder / "lock").unlink()
                self.folder.rmdir()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's lock without unlocking it for the parent.
        Once only: a grandchild must not close whatever the child opened under that number."""
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def orphan_folders(spool_root: Path, own: Path | None) -> Iterator[Path]:
    if not spool_root.is_dir():
        return
    for folder in sorted(spool_root.iterdir()):
        if folder.is_dir() and folder != own and (folder / "lock").exists():
            yield folder


class Outbox:
    """Sequenced events waiting to be sent or acknowledged, oldest first.

    Layout, oldest to newest: `unacked` (sent in some session, not yet acknowledged), `head`
    (in memory, ready), the spool's segments, and `tail` (the segment being filled). While the
    spool holds anything, new events go to `tail`, so order is kept.
    """

    def __init__(
        self,
        max_memory_events: int,
        spool: Spool | None = None,
        first_seq: int = 0,
    ) -> None:
        self.max_memory_events = max_memory_events
        self.spool = spool
        self.next_seq = first_seq
        self.unacked: deque[Event] = deque()
        self.head: deque[Event] = deque()
        self.tail: list[Event] = []
        self.invalid = 0  # records an adapter built wrongly; counted as dropped
        self.overflow_dropped = 0  # dropped with no spool to take them
        self._resend_from = 0  # index into `unacked` of the first event not sent this session

    # -- filling ----------------------------------------------------------------------------

    def absorb(self, records: Iterable[Record]) -> int:
        count = 0
        for record in records:
            try:
                event = record_to_event(self.next_seq, record)
            except Exception:
                self.invalid += 1
                continue
            self.next_seq += 1
            self.add(event)
            count += 1
        return count

    def add(self, event: Event) -> None:
        spooling = self.tail or (self.spool is not None and bool(self.spool))
        if not spooling and len(self.head) + len(self.unacked) < self.max_memory_events:
            self.head.append(event)
            return
        if self.spool is None:
            # No spool: keep memory bounded by dropping the oldest unsent event.
            if self.head:
                self.head.popleft()
                self.head.append(event)
            self.overflow_dropped += 1
            return
        self.tail.append(event)
        if len(self.tail) >= SEGMENT_EVENTS:
            self.flush_tail()

    def flush_tail(self) -> None:
        if self.spool is not None and self.tail:
            self.spool.write(self.tail)
            self.tail = []

    def _refill(self) -> None:
        if self.head:
            return
        if self.spool is not None and self.spool:
            self.head.extend(self.spool.read_oldest())
        elif self.tail:
            self.head.extend(self.tail)
            self.tail = []

    # -- sending ----------------------------------------------------------------------------

    def restart_session(self) -> None:
        """A new session: everything unacknowledged is sent again, first."""
        self._resend_from = 0

    @property
    def resend_pending(self) -> bool:
        """Unacknowledged events of an earlier session not yet sent in this one."""
        return self._resend_from < len(self.unacked)

    def has_sendable(self) -> bool:
        if self._resend_from < len(self.unacked):
            return True
        self._refill()
        return bool(self.head)

    def next_batch(self, max_events: int, max_bytes: int) -> EventBatch | None:
        """The next batch to send; its events stay here (in `unacked`) until acknowledged."""
        events: list[Event] = []
        budget = max_bytes
        unacked = self.unacked
        while self._resend_from < len(unacked) and len(events) < max_events:
            event = unacked[self._resend_from]
            budget -= event_size(event)
            if events and budget < 0:
                break
            events.append(event)
            self._resend_from += 1
        if not events:
            self._refill()
            head = self.head
            while head and len(events) < max_events:
                budget -= event_size(head[0])
                if events and budget < 0:
                    break
                event = head.popleft()
                events.append(event)
                unacked.append(event)
            self._resend_from = len(unacked)
        if not events:
            return None
        return EventBatch(first_seq=events[0].seq, events=events, pending=self.pending)

    def ack(self, up_to_seq: int) -> int:
        unacked = self.unacked
        removed = 0
        while unacked and unacked[0].seq <= up_to_seq:
            unacked.popleft()
            removed += 1
        self._resend_from = max(0, self._resend_from - removed)
        return removed

    # -- state ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events not yet acknowledged (in memory; the spool counted by segment files)."""
        return len(self.unacked) + len(self.head) + len(self.tail)

    def is_empty(self) -> bool:
        return not (self.unacked or self.head or self.tail or (self.spool and bool(self.spool)))

    def spool_everything(self) -> int:
        """On shutdown: put every unacknowledged event in the spool, oldest first."""
        if self.spool is None:
            return 0
        self.flush_tail()
        memory = list(self.unacked) + list(self.head)
        self.unacked.clear()
        self.head.clear()
        self._resend_from = 0
        chunks = [memory[i : i + SEGMENT_EVENTS] for i in range(0, len(memory), SEGMENT_EVENTS)]
        for chunk in reversed(chunks):
            self.spool.prepend(chunk)
        return len(memory)
