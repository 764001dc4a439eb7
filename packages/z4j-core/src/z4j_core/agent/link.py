"""The link: one outbound WebSocket to the brain, pumped by an asyncio loop on its own thread.

Owns connecting (with backoff and full jitter), the handshake, and moving frames between the
socket and a `z4j_core.wire.AgentSession`: control frames (command results, dropped-event
reports) always go before event batches, several batches may await their ack, and acks release
events from the outbox. It never runs on a host thread and never raises into one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from z4j_core.agent.config import AgentConfig
from z4j_core.agent.outbox import Outbox, RecordQueue
from z4j_core.wire import (
    HANDSHAKE_TIMEOUT_SECONDS,
    MAX_FRAME_BYTES,
    Ack,
    Action,
    AgentSession,
    Close,
    CloseCode,
    Command,
    DroppedReport,
    Error,
    Frame,
    Hello,
    LocalProtocolError,
    QueueReport,
    RemoteProtocolError,
    State,
    Welcome,
    is_terminal,
)

log = logging.getLogger("z4j.agent")

# Batching by time: every wake-up of the link thread costs the host, so events are collected
# for SWEEP_SECONDS before a batch goes out (a full batch goes at once). A wake-up costs a GIL
# hand-over and a syscall or two, and far more in a worker that forks a process per job (RQ):
# each fork write-protects the parent's memory, and every page a wake-up then writes to is
# copied (about 150 page faults per wake-up of a link thread that sends a batch, measured). So
# the sweep keeps one pace whether events flow or not: an event waits at most this long to
# leave, busy or idle. The writer otherwise sleeps until woken, at most WRITER_IDLE (heartbeats).
SWEEP_SECONDS = 0.2
WRITER_IDLE = 1.0
BURST_EVENTS = 1000  # a sweep that found this many events means a burst ...
BURST_SWEEP = 0.005  # ... so the next sweep comes sooner
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
TERMINAL_BACKOFF = (120.0, 300.0)  # auth refused, version refused: an operator must act
STABLE_SESSION = 10.0  # a session that lived this long resets the backoff
DRAIN_SWEEP = 0.01
CLOSE_WAIT = 0.2  # seconds to say goodbye on stop; a blackholed brain must not hold us


class TerminalRefusal(Exception):
    """The brain refused us in a way retrying soon cannot fix."""


class RateLimited(Exception):
    """The brain asked us to come back later (HTTP 429, `Retry-After` seconds)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited by the brain; retrying in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class LinkStats:
    connects: int = 0
    sessions_opened: int = 0
    batches_sent: int = 0
    events_acked: int = 0
    last_error: str = ""
    last_rtt: float | None = None
    refusals: list[str] = field(default_factory=list)


class Link:
    """One agent identity's connection to the brain: reconnects until told to stop."""

    def __init__(
        self,
        config: AgentConfig,
        hello: Callable[[], Hello],
        outbox: Outbox,
        *,
        records: RecordQueue | None,
        on_command: Callable[[Command | Action], None],
        on_open: Callable[[Link], None] | None = None,
        dropped: Callable[[], int] = lambda: 0,
        finish_when_empty: bool = False,
    ) -> None:
        self.config = config
        self._hello = hello
        self.outbox = outbox
        self.records = records
        self._on_command = on_command
        self._on_open = on_open
        self._dropped = dropped
        self.finish_when_empty = finish_when_empty
        self.control: deque[Frame] = deque()
        self.stats = LinkStats()
        self.session: AgentSession | None = None
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._draining = False
        self._flush_due = False
        self._reported_dropped = 0
        self._ws: ClientConnection | None = None
        self._fd: int | None = None  # the open socket's file descriptor, for a forked child
        self._renewing: asyncio.Future[None] | None = None  # a reannounce's close

    # -- called on the loop ------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        self._wake.set()

    def accepts(self, feature: str) -> bool:
        """Whether the brain of the open session named `feature` in its welcome."""
        session = self.session
        welcome = session.welcome if session is not None else None
        return self.connected.is_set() and welcome is not None and feature in welcome.features

    def abandon_after_fork(self) -> None:
        """In a forked child: close this process's copy of the socket (and nothing else of the
        parent's), so the connection ends when the parent closes it, not when the child exits.
        Once only: a grandchild must not close whatever the child opened under that number."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def send_control(self, frame: Frame) -> None:
        self.control.append(frame)
        self._wake.set()

    def absorb(self) -> int:
        if self.records is None:
            return 0
        taken = self.outbox.absorb(self.records.drain(5_000))
        return taken

    async def sweep_forever(self) -> None:
        """Move records from the hot path into the outbox, even while disconnected."""
        while not self._stopping:
            got = self.absorb()
            if got:
                self._flush_due = True
                self._wake.set()
            if self.records is not None and len(self.records):
                await asyncio.sleep(0)  # a burst: keep draining, only yield to the writer
            elif got >= BURST_EVENTS:
                await asyncio.sleep(BURST_SWEEP)  # events pour in: sweep often, keep up
            else:
                await asyncio.sleep(SWEEP_SECONDS)

    async def run(self) -> None:
        """Connect, pump, reconnect with backoff; returns when stopped (or emptied, for replays)."""
        attempt = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._connect_and_pump()
                if self.finish_when_empty and self.outbox.is_empty():
                    return
            except RateLimited as exc:
                self.stats.last_error = str(exc)
                log.warning("z4j %s", exc)
                await self._sleep(exc.retry_after + random.uniform(0, BACKOFF_BASE * 4))
                continue
            except TerminalRefusal as exc:
                delay = random.uniform(*TERMINAL_BACKOFF)
                log.error("z4j brain refused this agent: %s; retrying in %.0f s", exc, delay)
                self.stats.refusals.append(str(exc))
                await self._sleep(delay)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("z4j link error: %s", self.stats.last_error)
            finally:
                self.connected.clear()
                self._ws = self._fd = None
                if self.session is not None and self.session.state is not State.CLOSED:
                    self.session.connection_lost()
            if self.stopping:
                return
            attempt = 0 if time.monotonic() - started > STABLE_SESSION else attempt + 1
            delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt, 16)))
            await self._sleep(delay)

    def reannounce(self) -> None:
        """End the open session so the next one starts with a fresh hello (what the agent can
        do changed after the link opened). Events not yet acknowledged are resent on the next
        session, as after any reconnect. Call on the link's loop."""
        ws = self._ws
        if ws is not None and not self._stopping:
            self._renewing = asyncio.ensure_future(
                ws.close(CloseCode.NORMAL, "capabilities changed")
            )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped_event().wait(), seconds)

    def _stopped_event(self) -> asyncio.Event:
        if not hasattr(self, "_stop_event"):
            self._stop_event = asyncio.Event()
        return self._stop_event

    async def stop(self, drain_deadline: float | None) -> None:
        """Drain until `drain_deadline` (a monotonic instant) then close the connection."""
        self._draining = True
        if drain_deadline is not None:
            while time.monotonic() < drain_deadline:
                self.absorb()
                if self.outbox.is_empty() and not self.control:
                    break
                self._wake.set()
                await asyncio.sleep(DRAIN_SWEEP)
        self._stopping = True
        self._stopped_event().set()
        self._wake.set()
        ws, session = self._ws, self.session
        goodbye_by = time.monotonic() + CLOSE_WAIT  # one budget for the goodbye and the close
        if ws is not None and session is not None and session.state is State.OPEN:
            goodbye = session.close(CloseCode.GOING_AWAY, "agent stopping", time.monotonic())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.send(goodbye), CLOSE_WAIT)
        if ws is not None:
            left = max(0.0, goodbye_by - time.monotonic())
            await _close_within(ws, left, CloseCode.GOING_AWAY, "agent stopping")

    # -- one connection ------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.websocket_url.startswith("wss://"):
            return None
        context = ssl.create_default_context(cafile=self.config.ca_bundle)
        return context

    async def _connect_and_pump(self) -> None:
        self.stats.connects += 1
        try:
            ws = await connect(
                self.config.websocket_url,
                additional_headers={"Authorization": f"Bearer {self.config.token}"},
                ssl=self._ssl_context(),
                max_size=MAX_FRAME_BYTES,
                ping_interval=None,
                open_timeout=HANDSHAKE_TIMEOUT_SECONDS,
                close_timeout=2,
                compression=None,
                user_agent_header="z4j-agent",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 429:
                raise RateLimited(_retry_after(exc.response.headers.get("Retry-After"))) from None
            if status in (401, 403):
                raise TerminalRefusal(
                    f"the brain refused the token (HTTP {status}); check Z4J_TOKEN"
                ) from None
            raise
        except InvalidHandshake:
            raise
        self._ws = ws
        sock = ws.transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else None
        try:
            await self._pump(ws)
        finally:
            # On stop the brain gets CLOSE_WAIT to answer our close, not the usual 2 s: the
            # drain deadline has been spent already and the host is waiting for us.
            await _close_within(ws, CLOSE_WAIT if self._stopping else 2.0)

    async def _pump(self, ws: ClientConnection) -> None:
        session = AgentSession(self.config.token, self._hello())
        self.session = session
        await ws.send(session.start(time.monotonic()))
        raw = await asyncio.wait_for(ws.recv(decode=False), HANDSHAKE_TIMEOUT_SECONDS)
        try:
            frames = session.receive(raw, time.monotonic())
        except RemoteProtocolError as exc:
            await ws.close(exc.code, exc.reason)
            raise
        first = frames[0] if frames else None
        if isinstance(first, Error):
            reason = f"{first.message} (code {first.code})"
            if is_terminal(first.code):
                raise TerminalRefusal(reason)
            raise ConnectionError(reason)
        if not isinstance(first, Welcome):
            raise ConnectionError("no welcome from the brain")
        self.stats.sessions_opened += 1
        self.outbox.restart_session()
        self.connected.set()
        if self._on_open is not None:
            self._on_open(self)
        reader = asyncio.ensure_future(self._read(ws, session))
        writer = asyncio.ensure_future(self._write(ws, session))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Whether one side ended or we are being cancelled (stop), end the other and collect
            # both outcomes, so no task's exception is left unretrieved.
            for task in (reader, writer):
                task.cancel()
            outcomes = await asyncio.gather(reader, writer, return_exceptions=True)
        for task, outcome in zip((reader, writer), outcomes, strict=True):
            if task in done and isinstance(outcome, Exception):
                raise outcome

    async def _read(self, ws: ClientConnection, session: AgentSession) -> None:
        while True:
            raw = await ws.recv(decode=False)
            try:
                frames = session.receive(raw, time.monotonic())
            except RemoteProtocolError as exc:
                log.warning("z4j brain broke the protocol: %s", exc)
                await ws.close(exc.code, exc.reason)
                return
            for frame in frames:
                if isinstance(frame, Ack):
                    self.stats.events_acked += self.outbox.ack(frame.up_to_seq)
                elif isinstance(frame, (Command, Action)):
                    try:
                        self._on_command(frame)
                    except Exception:
                        log.exception("z4j could not accept command %s", frame.command_id)
                elif isinstance(frame, (Close, Error)):
                    code = frame.code
                    text = frame.reason if isinstance(frame, Close) else frame.message
                    if is_terminal(code):
                        raise TerminalRefusal(f"{text} (code {code})")
                    if isinstance(frame, Close) or frame.fatal:
                        return
            self._wake.set()  # a pong may be owed, or the window opened

    async def _write(self, ws: ClientConnection, session: AgentSession) -> None:
        limits = session.limits
        max_bytes = max(1024, limits.max_frame_bytes // 2)
        last_tick = 0.0
        while True:
            now = time.monotonic()
            if now - last_tick >= 0.5 or self._wake.is_set():
                for data in session.tick(now):
                    await ws.send(data)
                last_tick = now
            self._wake.clear()
            while self.control:
                frame = self.control.popleft()
                try:
                    data = session.send(frame, time.monotonic())
                except LocalProtocolError as exc:
                    if not isinstance(frame, QueueReport):
                        raise
                    # Queued before a reconnect to a brain that does not take them: drop it.
                    log.debug("z4j dropped a queue report: %s", exc)
                    continue
                await ws.send(data)
            dropped = self._dropped()
            if dropped > self._reported_dropped:
                await ws.send(
                    session.send(
                        DroppedReport(total=dropped, reason="bounds reached"), time.monotonic()
                    )
                )
                self._reported_dropped = dropped
            if self._draining:
                self.absorb()
            # A partial batch waits for the sweeper's next flush; a full one, a resend after a
            # reconnect or a drain goes at once. Acks alone never trigger a send, so a quick
            # brain does not turn batching into one frame per sweep.
            send_now = (
                self._flush_due
                or self._draining
                or self.records is None  # a replay: everything is already here
                or self.outbox.resend_pending
                or len(self.outbox.head) >= limits.max_batch_events
            )
            if send_now and session.can_send_batch and self.outbox.has_sendable():
                batch = self.outbox.next_batch(limits.max_batch_events, max_bytes)
                if batch is not None:
                    await ws.send(session.send(batch, time.monotonic()))
                    self.stats.batches_sent += 1
                    continue
            if session.can_send_batch:
                self._flush_due = False  # everything flushed (or nothing to send)
            if self.finish_when_empty and self.outbox.is_empty():
                await ws.send(session.close(CloseCode.NORMAL, "replay done", time.monotonic()))
                return
            self.stats.last_rtt = session.last_rtt
            with contextlib.suppress(asyncio.TimeoutError):
                timeout = DRAIN_SWEEP if self._draining else WRITER_IDLE
                await asyncio.wait_for(self._wake.wait(), timeout)


async def _close_within(
    ws: ClientConnection, seconds: float, code: int = CloseCode.NORMAL, reason: str = ""
) -> None:
    """Close the WebSocket, waiting at most `seconds` for the brain's answer, then drop the
    socket: a brain that blackholes our traffic never answers, and must not hold us."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code, reason), seconds)
    ws.transport.abort()  # nothing to do when the close completed


def _retry_after(value: str | None) -> float:
    """Seconds from a `Retry-After` header, bounded; a missing or odd value means a minute."""
    try:
        seconds = float(value) if value is not None else 60.0
    except ValueError:
        seconds = 60.0
    return min(max(seconds, 1.0), 600.0)
