"""Original messages kept on this host so that a failed task can be retried with its arguments.

Owns one folder per app in the agent's spool folder: one file per (engine, task id), written
by the adapter's capture code when a task fails (`Adapter.keep_original`) and read when the brain
asks for a retry (`Adapter.original`). The payload is the engine's own serialization of the
message, opaque here. Bounded: a payload over `MAX_ORIGINAL_BYTES` is not kept, entries expire
after the ttl, and the folder is trimmed to its byte bound, oldest first. Shared by every process
of the app on this host (files are written whole and renamed into place).

`keep` runs on the host's thread (the worker's, or its event loop on arq/taskiq), so it touches
no disk: it appends the entry to a bounded in-memory queue (full: the entry is dropped and
counted in `dropped`) and calls `wake`; the agent's link thread then writes the pending entries
and trims the folder (`flush`). A store with no `wake` (tools, tests, a process with no link
thread) flushes at once. `get` flushes first, so a retry always reads what was kept.

Must never send anything to the brain: nothing in the link reads this folder, and the brain only
ever sees the redacted reprs of events. Never raises into the host: every disk error is logged,
counted and swallowed (a retry of that task then answers `unavailable`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from z4j_core.wire.limits import (
    DEFAULT_ORIGINALS_BYTES,
    DEFAULT_ORIGINALS_TTL_SECONDS,
    MAX_ORIGINAL_BYTES,
)

log = logging.getLogger("z4j.agent")

#: A process trims the folder after this many writes of its own (and on its first).
TRIM_EVERY = 64
#: Entries kept in memory until the agent's thread writes them; beyond it they are dropped.
MAX_PENDING = 1_000
SUFFIX = ".orig"


@dataclass(frozen=True)
class Original:
    """One kept original message.

    engine, task_id: whose message it is. task: the task's name as the engine spells it.
    payload: the engine's own serialization of the message (what the adapter gave
        `keep_original`); only that adapter knows how to read it back.
    queue: where the message was, when the engine has queues. at: when it was kept (epoch s).
    """

    engine: str
    task_id: str
    task: str
    payload: bytes
    queue: str | None = None
    at: float = 0.0


class _Stored(msgspec.Struct, array_like=True):
    engine: str
    task_id: str
    task: str
    payload: bytes
    queue: str | None
    at: float


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Stored)


class OriginalStore:
    """The folder of original messages of one app on this host.

    folder: where the files live (created 0700 on first write). max_bytes: the folder's bound
    (0 keeps nothing). ttl: seconds an entry is kept. clock: epoch seconds (tests inject it).
    wake: called by `keep` on the host's thread when the pending queue was empty, to have
    another thread call `flush`; cheap and never blocking. None: `keep` flushes itself.
    max_pending: entries waiting for `flush` beyond which `keep` drops and counts.
    """

    def __init__(
        self,
        folder: Path,
        max_bytes: int = DEFAULT_ORIGINALS_BYTES,
        ttl: float = DEFAULT_ORIGINALS_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        *,
        wake: Callable[[], None] | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self.wake = wake
        self.max_pending = max_pending
        self.errors = 0  # disk errors swallowed
        self.refused = 0  # payloads over MAX_ORIGINAL_BYTES, or kept while max_bytes is 0
        self.dropped = 0  # entries refused because `max_pending` were waiting to be written
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Forget the pending entries and take a fresh lock: in a forked child the parent's
        lock may be held by a thread that does not exist here, and the parent writes what was
        pending itself."""
        self._lock = threading.Lock()
        self._pending: deque[_Stored] = deque()
        self._writes = 0

    def _path(self, engine: str, task_id: str) -> Path:
        digest = hashlib.sha256(f"{engine}\0{task_id}".encode()).hexdigest()[:40]
        return self.folder / f"{digest}{SUFFIX}"

    def keep(
        self, engine: str, task_id: str, task: str, payload: bytes, queue: str | None = None
    ) -> bool:
        """Keep `payload` as the original message of `task_id`; whether it was taken. Replaces
        an earlier one of the same task. Touches no disk unless the store has no `wake`; never
        raises."""
        try:
            if self.max_bytes <= 0 or len(payload) > min(MAX_ORIGINAL_BYTES, self.max_bytes):
                self.refused += 1
                return False
            pending = self._pending
            if len(pending) >= self.max_pending:
                self.dropped += 1
                return False
            was_empty = not pending
            pending.append(_Stored(engine, task_id, task, bytes(payload), queue, self._clock()))
            wake = self.wake
            if wake is None:
                return self.flush() > 0
            if was_empty:
                wake()
            return True
        except Exception as exc:
            self.errors += 1
            log.warning("z4j could not keep the original message of %s: %s", task_id, exc)
            return False

    @property
    def pending(self) -> int:
        """Entries kept and not yet written."""
        return len(self._pending)

    def flush(self) -> int:
        """Write the pending entries (on the agent's thread), trimming the folder every
        `TRIM_EVERY` writes; how many were written. Never raises."""
        written = 0
        pending = self._pending
        with self._lock:
            while pending:
                try:
                    stored = pending.popleft()
                except IndexError:
                    break
                if self._write(stored):
                    written += 1
                    self._writes += 1
                    if self._writes % TRIM_EVERY == 1:
                        self.trim()
        return written

    def _write(self, stored: _Stored) -> bool:
        try:
            data = _encoder.encode(stored)
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self._path(stored.engine, stored.task_id)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            return True
        except Exception as exc:
            self.errors += 1
            log.warning("z4j could not keep the original message of %s: %s", stored.task_id, exc)
            return False

    def get(self, engine: str, task_id: str) -> Original | None:
        """The kept original of `task_id`, or None (never kept, expired, or unreadable).
        Writes what is pending first, and waits for a write another thread has begun (it took
        the entry off `pending` before its file exists): called off the host's threads."""
        self.flush()
        path = self._path(engine, task_id)
        try:
            stored = _decoder.decode(path.read_bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:
            self.errors += 1
            log.warning("z4j could not read the original message of %s: %s", task_id, exc)
            return None
        if stored.engine != engine or stored.task_id != task_id:
            return None  # a digest collision: not ours
        if self._clock() - stored.at > self.ttl:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return Original(
            engine=stored.engine,
            task_id=stored.task_id,
            task=stored.task,
            payload=stored.payload,
            queue=stored.queue,
            at=stored.at,
        )

    def forget(self, engine: str, task_id: str) -> None:
        """Drop the kept original of `task_id` (a retried task's, once its retry is enqueued)."""
        with contextlib.suppress(OSError):
            self._path(engine, task_id).unlink()

    def trim(self) -> int:
        """Remove expired entries, then the oldest until the folder fits `max_bytes`; how many
        were removed."""
        removed = 0
        try:
            entries = []
            cutoff = self._clock() - self.ttl
            for path in self.folder.glob(f"*{SUFFIX}"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                if st.st_mtime < cutoff:
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
                    continue
                entries.append((st.st_mtime, st.st_size, path))
            total = sum(size for _, size, _ in entries)
            entries.sort()
            for _, size, path in entries:
                if total <= self.max_bytes:
                    break
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
                total -= size
        except OSError as exc:
            self.errors += 1
            log.warning("z4j could not trim the originals folder %s: %s", self.folder, exc)
        return removed

    @property
    def bytes(self) -> int:
        """Bytes the folder holds now (for tests and stats)."""
        total = 0
        for path in self.folder.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total
