"""Running the brain's commands: concurrently, each under its deadline, never twice per fire id.

Owns the bounded pool of daemon threads that call adapters' `z4j_enqueue` hook (the one hook
that may block on a broker), and the memory of fire ids already enqueued, kept on disk for a
bounded time so that a restart does not forget them. A slow or hanging command occupies one
thread of the pool; the others, and the event stream, go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from z4j_core.wire import Command, CommandResult, CommandStatus

log = logging.getLogger("z4j.agent")

Enqueue = Callable[[Command], CommandResult]


class FireMemory:
    """Fire ids this agent's app has enqueued (or is enqueueing), for `ttl` seconds.

    Kept in memory (bounded by `max_entries`, oldest forgotten first) and appended to a small
    log file shared by the app's processes, so a restarted agent still refuses them.
    """

    def __init__(
        self, path: Path | None, ttl: float = 24 * 3600, max_entries: int = 200_000
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._known: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._in_progress: set[str] = set()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        now = time.time()
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return
        for line in lines[-self.max_entries :]:
            parts = line.split(" ")
            if len(parts) != 3:
                continue
            try:
                at = float(parts[0])
            except ValueError:
                continue
            if now - at < self.ttl:
                self._known[parts[1]] = (at, parts[2])
        if len(lines) > 2 * max(len(self._known), 1000):
            self._compact()

    def _compact(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text("".join(f"{at} {fid} {nid}\n" for fid, (at, nid) in self._known.items()))
            tmp.replace(self.path)

    def claim(self, fire_id: str) -> str | None:
        """Reserve `fire_id`. Returns None when it is new, else the native id already known."""
        with self._lock:
            known = self._known.get(fire_id)
            if known is not None and time.time() - known[0] < self.ttl:
                return known[1]
            if fire_id in self._in_progress:
                return ""
            self._in_progress.add(fire_id)
            return None

    def settle(self, fire_id: str, native_id: str | None) -> None:
        """The claim ended: remember the fire as enqueued (native_id) or forget it (None)."""
        with self._lock:
            self._in_progress.discard(fire_id)
            if native_id is None:
                return
            at = time.time()
            self._known[fire_id] = (at, native_id or "-")
            while len(self._known) > self.max_entries:
                self._known.popitem(last=False)
        if self.path is not None:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, f"{at} {fire_id} {native_id or '-'}\n".encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                log.warning("z4j could not record fire %s on disk: %s", fire_id, exc)


class CommandRunner:
    """Runs commands on a bounded pool of daemon threads and reports each result once."""

    def __init__(
        self,
        enqueue: Enqueue,
        report: Callable[[CommandResult], None],
        fires: FireMemory,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._enqueue = enqueue
        self._report = report
        self.fires = fires
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[Command, float] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._concurrency = concurrency
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, command: Command) -> None:
        """Accept a command now; its deadline counts from this moment on our own clock."""
        deadline = self._clock() + command.deadline_seconds
        if command.fire_id:
            known = self.fires.claim(command.fire_id)
            if known is not None:
                self._report(
                    CommandResult(
                        command_id=command.command_id,
                        status=CommandStatus.DUPLICATE,
                        native_id=known or None,
                        reason=f"fire {command.fire_id} was already enqueued by this app",
                    )
                )
                return
        self._queue.put((command, deadline))
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._concurrency:
                thread = threading.Thread(
                    target=self._work, name=f"z4j-command-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            command, deadline = item
            result = self._run(command, deadline)
            try:
                self._report(result)
            except Exception:
                log.exception("z4j could not report the result of command %s", command.command_id)

    def _run(self, command: Command, deadline: float) -> CommandResult:
        if self._clock() > deadline:
            result = CommandResult(
                command_id=command.command_id,
                status=CommandStatus.EXPIRED,
                reason="the deadline passed before the command could start; nothing was enqueued",
            )
        else:
            try:
                result = self._enqueue(command)
            except Exception as exc:
                log.exception("z4j enqueue of %s failed", command.task)
                result = CommandResult(
                    command_id=command.command_id,
                    status=CommandStatus.FAILED,
                    reason=f"{type(exc).__name__}: {exc}"[:200],
                )
        if command.fire_id:
            keep = result.status in (CommandStatus.ENQUEUED, CommandStatus.DUPLICATE)
            self.fires.settle(command.fire_id, (result.native_id or "") if keep else None)
        return result

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
