"""A minimal in-process brain for unit tests of the agent's own logic (link, outbox, commands).

It speaks the real wire protocol through `BrainSession` over a real socket, keeps events in a
dict keyed by (agent instance, seq) and can be told to misbehave (stop acking, refuse tokens).
The real brain (`z4j_brain`) is what the end-to-end tests in tests/ run against.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from z4j_core.wire import (
    MAX_FRAME_BYTES,
    Ack,
    Action,
    BrainSession,
    Command,
    CommandResult,
    DroppedReport,
    EventBatch,
    Inventory,
    Limits,
    QueueReport,
    RemoteProtocolError,
    token_hash,
)

TOKEN = "z4j_test_token_" + "x" * 32


@dataclass
class MiniBrain:
    limits: Limits = field(default_factory=lambda: Limits(heartbeat_seconds=1.0))
    ack: bool = True
    events: dict[tuple[str, int], Any] = field(default_factory=dict)
    hellos: list[Any] = field(default_factory=list)
    inventories: list[Inventory] = field(default_factory=list)
    results: dict[str, CommandResult] = field(default_factory=dict)
    dropped: int = 0
    port: int = 0
    rate_limit_first: int = 0  # answer HTTP 429 (Retry-After: 1) to this many upgrades
    upgrades: int = 0
    frozen: bool = False  # see `freeze`
    features: tuple[str, ...] = ()  # announced in the welcome (e.g. queue reports)
    queue_reports: list[QueueReport] = field(default_factory=list)
    _sessions: list[tuple[ServerConnection, BrainSession]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        self.upgrades += 1
        if self.upgrades <= self.rate_limit_first:
            return Response(429, "Too Many Requests", Headers({"Retry-After": "1"}), b"slow down\n")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(403, "Forbidden", Headers(), b"token refused\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        session = BrainSession(token_hash(TOKEN), limits=self.limits, features=self.features)
        try:
            raw = await ws.recv(decode=False)
            frames = session.receive(raw, time.monotonic())
            self.hellos.append(frames[0])
            instance = frames[0].agent_instance
            await ws.send(session.accept(time.monotonic()))
            self._sessions.append((ws, session))
            while True:
                if self.frozen:
                    if ws.transport.is_closing():
                        return
                    await asyncio.sleep(0.05)
                    continue
                try:
                    raw = await asyncio.wait_for(ws.recv(decode=False), 0.2)
                except asyncio.TimeoutError:
                    raw = None
                if raw is not None:
                    for frame in session.receive(raw, time.monotonic()):
                        if isinstance(frame, EventBatch):
                            for event in frame.events:
                                self.events[(instance, event.seq)] = event
                            if self.ack:
                                await ws.send(
                                    session.send(Ack(up_to_seq=frame.last_seq), time.monotonic())
                                )
                        elif isinstance(frame, Inventory):
                            self.inventories.append(frame)
                        elif isinstance(frame, CommandResult):
                            self.results[frame.command_id] = frame
                        elif isinstance(frame, DroppedReport):
                            self.dropped = frame.total
                        elif isinstance(frame, QueueReport):
                            self.queue_reports.append(frame)
                for data in session.tick(time.monotonic()):
                    await ws.send(data)
        except RemoteProtocolError as exc:
            await ws.close(exc.code, exc.reason)
        except Exception:
            return

    def freeze(self) -> None:
        """Go silent without closing (a blackholed or frozen brain): stop reading the sockets,
        so not even a WebSocket close is answered, and send nothing more."""

        def pause() -> None:
            self.frozen = True
            for ws, _ in self._sessions:
                ws.transport.pause_reading()

        assert self._loop is not None
        self._loop.call_soon_threadsafe(pause)

    def send_command(self, command: Command | Action) -> None:
        async def send() -> None:
            ws, session = self._sessions[-1]
            await ws.send(session.send(command, time.monotonic()))

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)

    @contextmanager
    def running(self, port: int = 0) -> Iterator[MiniBrain]:
        ready = threading.Event()
        stop: asyncio.Future[None] | None = None

        async def main() -> None:
            nonlocal stop
            self._loop = asyncio.get_running_loop()
            stop = self._loop.create_future()
            async with serve(
                self._handle,
                "127.0.0.1",
                port,
                process_request=self._check_token,
                max_size=MAX_FRAME_BYTES,
                ping_interval=None,
            ) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await stop

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(10)
        try:
            yield self
        finally:
            assert self._loop is not None

            def shut_down() -> None:
                if self.frozen:  # a frozen brain would not answer its own close either
                    for ws, _ in self._sessions:
                        ws.transport.abort()
                if stop is not None and not stop.done():
                    stop.set_result(None)

            self._loop.call_soon_threadsafe(shut_down)
            thread.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/agent"


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
