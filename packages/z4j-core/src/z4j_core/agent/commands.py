"""Running the brain's commands: concurrently, each under its deadline, never twice per fire id.

Owns the bounded pool of daemon threads that call adapters' `enqueue` (the one adapter method
that may block on a broker), and the memory of fire ids already enqueued, kept on disk for a
bounded time so that a restart does not forget them. A slow or hanging command occupies one
thread of the pool; the others, and the event stream, go on.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from z4j_core.wire import Action, Command, CommandResult, CommandStatus

log = logging.getLogger("z4j.agent")

Enqueue = Callable[[Command], CommandResult]
Act = Callable[[Action], CommandResult]
_T = TypeVar("_T")


# Lines of the shared fire log: "<epoch> <fire id> <state>", where state is CLAIMED (an agent
# is enqueueing it), RELEASED (that attempt failed; the fire may be tried again) or the native id
# it was enqueued under.
CLAIMED = "~"
RELEASED = "!"
# A running process compacts the log once it holds this many bytes and is mostly dead lines
# (200 bytes of log per live entry; a process starting compacts it sooner): with few live
# entries that is every ~18,000 fires; at the 200,000-entry cap the log reaches ~40 MB first.
COMPACT_WHILE_RUNNING = 1 << 20


UNKNOWN_REASON = "the engine may or may not have it (not tried again): "
# Raised after the request may have left: the engine may have taken the job. A refused
# connection (anywhere in the chain) means nothing was sent, whatever wraps it.
_LOST_MID_REQUEST = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, EOFError)


def may_have_reached_the_engine(exc: BaseException) -> bool:
    """Whether a failed enqueue may still have been taken by the engine: a timeout, or a
    connection lost mid-request (the broker clients' own timeout and connection errors, by
    name, or the OS errors they wrap). A refused connection or any other error is a plain
    failure: nothing was enqueued, and the fire may be offered again."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 16:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, (ConnectionRefusedError, socket.gaierror)) for e in chain):
        return False
    for error in chain:
        if isinstance(error, (TimeoutError, *_LOST_MID_REQUEST)):
            return True
        names = [cls.__name__ for cls in type(error).__mro__]
        if any("Timeout" in name or name == "ConnectionError" for name in names):
            return True
    return False


class FireMemory:
    """Fire ids this app has enqueued, or is enqueueing, for `ttl` seconds: never twice.

    One append-only log per app in the spool folder, shared by every process of the app on this
    host (a Dramatiq or Huey worker runs one agent per process). A claim takes an exclusive
    `flock` on the log, reads what the other processes appended since, and appends its own
    claim, so two processes of one host can never both enqueue a fire. A claim whose process
    died mid-enqueue stays claimed: answering `duplicate` is the safe side of "never twice".
    Without a path (no spool folder) the memory is this process's alone.
    """

    def __init__(
        self, path: Path | None, ttl: float = 24 * 3600, max_entries: int = 200_000
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        # fire id -> (when, state): CLAIMED or the native id ("" when the engine gave none)
        self._known: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._fd: int | None = None
        self._inode = -1
        self._offset = 0
        self._partial = b""
        if path is not None:
            try:
                self._open()
                self._with_file_lock(self._maybe_compact)
            except OSError as exc:
                log.warning("z4j fire memory is per process (%s: %s)", path, exc)
                self._close()

    # -- the shared log ----------------------------------------------------------------------

    def _open(self) -> None:
        assert self.path is not None
        self._close()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._inode = os.fstat(self._fd).st_ino
        self._offset = 0
        self._partial = b""
        self._known.clear()

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def _with_file_lock(self, action: Callable[[], _T]) -> _T:
        if self._fd is None:
            return action()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            assert self.path is not None
            if os.stat(self.path).st_ino != self._inode:  # compacted by another process
                self._open()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._catch_up()
            return action()
        finally:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        """Read what was appended since we last looked."""
        assert self._fd is not None
        chunks = []
        while True:
            chunk = os.pread(self._fd, 1 << 20, self._offset)
            if not chunk:
                break
            chunks.append(chunk)
            self._offset += len(chunk)
        if not chunks:
            return
        data = self._partial + b"".join(chunks)
        *lines, self._partial = data.split(b"\n")
        now = time.time()
        for line in lines:
            parts = line.decode(errors="replace").split(" ")
            if len(parts) != 3:
                continue
            try:
                at = float(parts[0])
            except ValueError:
                continue
            fire_id, state = parts[1], parts[2]
            if state == RELEASED:
                self._known.pop(fire_id, None)
            elif now - at < self.ttl:
                self._known[fire_id] = (at, "" if state == "-" else state)
                self._known.move_to_end(fire_id)
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)

    def _append(self, fire_id: str, state: str) -> None:
        if self._fd is None:
            return
        line = f"{time.time()} {fire_id} {state or '-'}\n".encode()
        try:
            os.write(self._fd, line)
        except OSError as exc:  # a full disk: this process still remembers, in memory
            log.warning("z4j fire log unwritable (%s), using memory only", exc.strerror or exc)
            self._close()  # closing it releases its lock too
            return
        self._offset += len(line)  # our own line: no need to read it back

    def _forget(self) -> None:
        """Bound the memory of a long-lived process: entries past the ttl go, oldest first,
        then the oldest beyond `max_entries`."""
        known, cutoff = self._known, time.time() - self.ttl
        while known and (len(known) > self.max_entries or next(iter(known.values()))[0] < cutoff):
            known.popitem(last=False)

    def _maybe_compact(self, at_least: int = 4096) -> None:
        """Rewrite the log with only live entries once it is mostly dead lines (and at least
        `at_least` bytes long)."""
        if self._fd is None or self.path is None:
            return
        if self._offset < at_least or self._offset < 200 * max(len(self._known), 1):
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            "".join(f"{at} {fid} {state or '-'}\n" for fid, (at, state) in self._known.items())
        )
        tmp.replace(self.path)
        known = dict(self._known)
        self._open()
        self._catch_up()
        self._known.update(known)

    # -- claims ------------------------------------------------------------------------------

    def claim(self, fire_id: str) -> str | None:
        """Reserve `fire_id`. None when it is new (now claimed); else the native id it was
        enqueued under ("" while another attempt is still enqueueing it)."""

        def decide() -> str | None:
            known = self._known.get(fire_id)
            if known is not None and time.time() - known[0] < self.ttl:
                return "" if known[1] == CLAIMED else known[1]
            self._known[fire_id] = (time.time(), CLAIMED)
            self._append(fire_id, CLAIMED)
            self._forget()
            self._maybe_compact(at_least=COMPACT_WHILE_RUNNING)
            return None

        with self._lock:
            try:
                return self._with_file_lock(decide)
            except OSError as exc:
                log.warning("z4j fire log unavailable, using memory only: %s", exc)
                self._close()
                return decide()

    def settle(self, fire_id: str, native_id: str | None) -> None:
        """The claim ended: remember the fire as enqueued (native_id) or release it (None)."""

        def record() -> None:
            if native_id is None:
                self._known.pop(fire_id, None)
                self._append(fire_id, RELEASED)
            else:
                self._known[fire_id] = (time.time(), native_id)
                self._append(fire_id, native_id)

        with self._lock:
            try:
                self._with_file_lock(record)
            except OSError as exc:
                log.warning("z4j could not record fire %s on disk: %s", fire_id, exc)
                self._close()
                record()


class CommandRunner:
    """Runs commands and actions on a bounded pool of daemon threads and reports each result
    once."""

    def __init__(
        self,
        enqueue: Enqueue,
        report: Callable[[CommandResult], None],
        fires: FireMemory,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        act: Act | None = None,
    ) -> None:
        self._enqueue = enqueue
        self._act = act
        self._report = report
        self.fires = fires
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[Command | Action, float] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._concurrency = concurrency
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, command: Command | Action) -> None:
        """Accept a command or an action now; its deadline counts from this moment on our own
        clock."""
        deadline = self._clock() + command.deadline_seconds
        if isinstance(command, Command) and command.fire_id:
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

    def _run(self, command: Command | Action, deadline: float) -> CommandResult:
        if isinstance(command, Action):
            return self._run_action(command, deadline)
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
                unknown = may_have_reached_the_engine(exc)
                result = CommandResult(
                    command_id=command.command_id,
                    status=CommandStatus.UNKNOWN if unknown else CommandStatus.FAILED,
                    reason=(UNKNOWN_REASON if unknown else "")
                    + f"{type(exc).__name__}: {exc}"[:200],
                )
        if command.fire_id:
            # An enqueue that may have reached the engine keeps its claim: this app answers
            # `duplicate` if the fire comes back, rather than risk running it twice.
            keep = result.status in (
                CommandStatus.ENQUEUED,
                CommandStatus.DUPLICATE,
                CommandStatus.UNKNOWN,
            )
            self.fires.settle(command.fire_id, (result.native_id or "") if keep else None)
        return result

    def _run_action(self, action: Action, deadline: float) -> CommandResult:
        if self._clock() > deadline:
            return CommandResult(
                command_id=action.command_id,
                status=CommandStatus.EXPIRED,
                reason=f"the deadline passed before the {action.action.value} could start; "
                "nothing was done",
            )
        if self._act is None:
            return CommandResult(
                command_id=action.command_id,
                status=CommandStatus.UNAVAILABLE,
                reason="this agent runs no actions",
            )
        try:
            return self._act(action)
        except Exception as exc:
            log.exception("z4j %s action failed", action.action.value)
            return CommandResult(
                command_id=action.command_id,
                status=CommandStatus.FAILED,
                reason=f"{type(exc).__name__}: {exc}"[:200],
            )

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
