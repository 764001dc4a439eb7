"""The prefork relay: events raised in pool children reach the one agent of their worker.

For engines whose worker forks a pool of children that must not run links of their own
(Celery's prefork pool). Owns one Unix datagram socket pair per worker, made in the worker's
main process before the pool forks. A pool child prepares each event with the agent it
inherited (redacted and stamped there, `Agent.prepare`) and sends it as one datagram on the
inherited write end: one syscall, never blocking (the socket is non-blocking; when its buffer
is full the event is dropped and counted, and the count rides on the child's next datagram).
Datagrams keep their boundaries and are never interleaved, so children share one socket with no
framing and no lock, and the events of one task, all sent by the one child that runs it, arrive
in the order they were sent.

In the main process a daemon thread, started after the pool forked, reads datagrams and pushes
them into the agent's outbox (`Agent.emit_prepared`). It never writes to a broker and never
touches an engine; it stops on an empty datagram the main process sends itself.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import msgspec

log = logging.getLogger("z4j.relay")

#: Requested socket buffer (the kernel caps it at net.core.wmem_max / rmem_max).
BUFFER_BYTES = 4 << 20
#: Datagrams read per wake-up before the reader yields the GIL again.
READ_BATCH = 512
#: Pause after each wake-up, so the reader wakes (and takes the GIL from the worker's consumer)
#: a few times a second per burst instead of once per event; the buffer holds the gap.
READ_PAUSE = 0.05
MAX_DATAGRAM = 64 << 10

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class Relay:
    """One worker's socket pair: `send` in pool children, `start`/`stop` in the main process."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock, option in ((self._writer, socket.SO_SNDBUF), (self._reader, socket.SO_RCVBUF)):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)
        self._writer.setblocking(False)
        self._send = self._writer.send
        self.dropped = 0  # in a child: events dropped and not yet reported
        self.received = 0  # in the main process: datagrams read
        self._thread: threading.Thread | None = None
        self._agent: Any = None

    # -- the child side: never blocks, never raises -------------------------------------------

    def send(self, record: tuple[Any, ...]) -> None:
        try:
            self._send(_encode((record, self.dropped)))
            self.dropped = 0
        except Exception:  # BlockingIOError when full; anything else counts the same
            self.dropped += 1

    def enter_child(self) -> None:
        """In a pool child: the read end belongs to the main process alone."""
        with contextlib.suppress(OSError):
            self._reader.close()

    # -- the main process ---------------------------------------------------------------------

    def start(self, agent: Any) -> None:
        """Start reading into `agent` (after the pool forked). Safe to call twice."""
        if self._thread is not None:
            return
        self._agent = agent
        self._thread = threading.Thread(target=self._read, name="z4j-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Read what the children sent, then stop the reader (call after the pool stopped)."""
        thread = self._thread
        if thread is None:
            return
        # The write end stays non-blocking: its file status is shared with every child.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._writer.send(b"")  # after everything already queued: the stop mark
                break
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
        thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Close both ends (after `stop`, or for a relay that never started)."""
        for sock in (self._reader, self._writer):
            with contextlib.suppress(OSError):
                sock.close()

    def _read(self) -> None:
        reader = self._reader
        recv = reader.recv
        agent = self._agent
        push = agent.emit_prepared
        while True:
            try:
                datagrams = [recv(MAX_DATAGRAM)]
                with contextlib.suppress(BlockingIOError):
                    for _ in range(READ_BATCH):
                        datagrams.append(recv(MAX_DATAGRAM, socket.MSG_DONTWAIT))
            except OSError:
                log.exception("z4j relay: reading from pool children failed; relay stopped")
                return
            for datagram in datagrams:
                if not datagram:
                    return
                try:
                    record, dropped = _decode(datagram)
                    push(tuple(record))
                    if dropped:
                        agent.count_relay_dropped(dropped)
                except Exception:
                    agent.errors += 1
            self.received += len(datagrams)
            time.sleep(READ_PAUSE)
