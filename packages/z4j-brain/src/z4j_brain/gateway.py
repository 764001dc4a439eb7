"""The agents' gateway: one WebSocket per agent at ``/v1/agent``, pumped through a
``BrainSession``.

Owns the upgrade check (a missing, unknown, revoked or expired token gets an HTTP 401 and never
a WebSocket; an address that presented too many bad tokens gets 429 first), the handshake, and
the per-connection pumps: a receive loop, one sender that writes bytes in the order the session
sealed them, and a heartbeat ticker. Event batches go to the store writer and are acknowledged
from its completion callback, so acks and commands never wait behind other batches' storage.
Never logs a token, a MAC or an event's contents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket

from z4j_brain import __version__
from z4j_brain.routing import REQUIRED_CAPABILITY, engines_able, may_take
from z4j_brain.store import Store, TokenRow
from z4j_brain.tokens import binding_refusal
from z4j_brain.writer import why
from z4j_core.wire.errors import CloseCode, LocalProtocolError, RemoteProtocolError
from z4j_core.wire.frames import (
    FEATURE_QUEUE_REPORTS,
    FEATURE_UNKNOWN_ANSWERS,
    Ack,
    Close,
    CommandKind,
    CommandResult,
    DroppedReport,
    Error,
    EventBatch,
    Frame,
    Hello,
    Inventory,
    QueueReport,
)
from z4j_core.wire.session import BrainSession, State

if TYPE_CHECKING:
    from z4j_brain.brain import Brain
    from z4j_brain.metrics import BrainMetrics

log = logging.getLogger("z4j.brain.gateway")

#: Body of the HTTP refusal of an upgrade with a bad token (never says which check failed).
TOKEN_REFUSED: Final = "z4j: agent token refused (missing, unknown, revoked or expired)\n"
#: Body of the refusal of an address that presented too many bad tokens.
RATE_LIMITED: Final = "z4j: too many bad tokens from this address; try again later\n"
#: Seconds between heartbeat ticks of each connection.
TICK_SECONDS: Final = 1.0


_CLOSE: Final = object()


def bearer_token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def agent_endpoint(websocket: WebSocket) -> None:
    """The ``/v1/agent`` route."""
    brain: Brain = websocket.app.state.brain
    client = websocket.client.host if websocket.client else "?"
    retry_after = brain.auth_limiter.retry_after(client)
    if retry_after is not None:
        # Decided before any token check or database read.
        await websocket.send_denial_response(
            PlainTextResponse(
                RATE_LIMITED,
                status_code=429,
                headers={"Retry-After": str(max(1, round(retry_after)))},
            )
        )
        return
    presented = bearer_token(websocket)
    token = await brain.tokens.verify(presented) if presented is not None else None
    if token is None:
        brain.auth_limiter.failed(client)
        brain.auth_refused += 1
        log.warning("refused an agent upgrade from %s: bad token", client)
        await websocket.send_denial_response(
            PlainTextResponse(
                TOKEN_REFUSED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        )
        return
    await websocket.accept()
    await AgentConnection(brain, websocket, token).run()


class AgentConnection:
    """One agent's live connection: its session, its pumps, its identity once it said hello."""

    def __init__(self, brain: Brain, websocket: WebSocket, token: TokenRow) -> None:
        self.brain = brain
        self.websocket = websocket
        self.token = token
        self.session = BrainSession(
            bytes.fromhex(token.token_hash),
            limits=brain.config.limits,
            brain_version=__version__,
            features=(FEATURE_QUEUE_REPORTS, FEATURE_UNKNOWN_ANSWERS),
        )
        self.hello: Hello | None = None
        self.labels: dict[str, str] = {}
        self.in_flight_commands = 0
        #: The agent's last ``DroppedReport`` total (events it dropped since it started).
        self.dropped_reported = 0
        #: The agent's outbox depth as its last batch said (None: an agent that does not say).
        self.outbox_pending: int | None = None
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._registered = False

    @property
    def agent_instance(self) -> str:
        return self.hello.agent_instance if self.hello is not None else ""

    @property
    def is_open(self) -> bool:
        return not self._closing and self.session.state is State.OPEN

    def serves(self, engine: str, app: str, kind: CommandKind, labels: dict[str, str]) -> bool:
        if not self.is_open or self.hello is None:
            return False
        return may_take(
            agent_app=self.hello.app,
            agent_labels=self.labels,
            able_engines=engines_able(self.hello.engines, REQUIRED_CAPABILITY[kind]),
            app=app,
            engine=engine,
            labels=labels,
        )

    # -- sending -------------------------------------------------------------------------------

    def send_frame(self, frame: Frame) -> bool:
        """Seal ``frame`` now and queue its bytes; False if the session cannot send it."""
        if self._closing:
            return False
        try:
            data = self.session.send(frame, time.monotonic())
        except LocalProtocolError as exc:
            log.warning("%s: cannot send %s: %s", self.agent_instance, type(frame).__name__, exc)
            return False
        self._outbox.put_nowait(data)
        return True

    def close(self, code: CloseCode, reason: str, *, say_goodbye: bool = True) -> None:
        """End the connection: a signed ``Close`` first when the session is open, then the
        WebSocket close with the same code."""
        if self._closing:
            return
        if say_goodbye and self.session.state is State.OPEN:
            try:
                self._outbox.put_nowait(self.session.close(code, reason, time.monotonic()))
            except LocalProtocolError:
                pass
        self._closing = True
        self._outbox.put_nowait((_CLOSE, int(code), reason))

    async def _sender(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, tuple) and item[0] is _CLOSE:
                await self.websocket.close(item[1], item[2])
                return
            await self.websocket.send({"type": "websocket.send", "bytes": item})

    async def _ticker(self) -> None:
        while not self._closing:
            await asyncio.sleep(TICK_SECONDS)
            self._tick()

    def _tick(self) -> None:
        if self._closing:
            return
        try:
            for data in self.session.tick(time.monotonic()):
                self._outbox.put_nowait(data)
        except RemoteProtocolError as exc:
            self._fault(exc)

    def _fault(self, exc: RemoteProtocolError) -> None:
        log.warning(
            "closing agent %s: %s (%d)", self.agent_instance or "?", exc.reason, int(exc.code)
        )
        self.close(exc.code, exc.reason, say_goodbye=False)

    # -- receiving -----------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        ticker = asyncio.create_task(self._ticker())
        try:
            await self._receive_loop(sender)
        finally:
            ticker.cancel()
            if not sender.done():
                self.close(CloseCode.GOING_AWAY, "closing", say_goodbye=False)
                try:
                    await asyncio.wait_for(asyncio.shield(sender), 2.0)
                except (asyncio.TimeoutError, Exception):
                    sender.cancel()
            self._unregister()

    async def _receive_loop(self, sender: asyncio.Task[None]) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if self._closing:
                continue
            data = message.get("bytes")
            if data is None:
                self._fault(
                    RemoteProtocolError(CloseCode.BAD_FRAME, "text messages are not frames")
                )
                continue
            try:
                frames = self.session.receive(data, time.monotonic())
                for frame in frames:
                    self._handle(frame)
            except RemoteProtocolError as exc:
                self._fault(exc)
                continue
            self._tick()
            if sender.done():
                return

    def _handle(self, frame: Frame) -> None:
        if isinstance(frame, EventBatch):
            self._store_batch(frame)
        elif isinstance(frame, Hello):
            self._welcome(frame)
        elif isinstance(frame, CommandResult):
            self.brain.commands.resolve(frame, self.agent_instance)
        elif isinstance(frame, Inventory):
            if self._may_report(frame):
                self._store_inventory(frame)
        elif isinstance(frame, QueueReport):
            if not self._may_report(frame):
                return
            agent_instance = self.agent_instance
            self._write(lambda s: s.replace_queue_depths(agent_instance, frame, time.time()))
        elif isinstance(frame, DroppedReport):
            self._store_dropped(frame)
        elif isinstance(frame, Close):
            log.info("agent %s said goodbye (%d)", self.agent_instance, frame.code)
            self.close(CloseCode.NORMAL, "goodbye", say_goodbye=False)
        elif isinstance(frame, Error):
            log.warning(
                "agent %s reported error %d: %s", self.agent_instance, frame.code, frame.message
            )
            if frame.fatal:
                self.close(CloseCode.NORMAL, "peer error", say_goodbye=False)

    def _may_report(self, report: Inventory | QueueReport) -> bool:
        """Whether this session may store ``report``: its engine is one the hello named, and its
        (app, engine) is within the token's binding (the hello's check holds for every frame).

        A report outside them is dropped with a warning and counted in ``auth_refused``; the
        session stays open, so the agent's reports for its own app keep arriving."""
        engines = [e.name for e in self.hello.engines] if self.hello is not None else []
        refused = binding_refusal(self.token, report.app, [report.engine])
        if refused is None and report.engine not in engines:
            refused = f"engine {report.engine[:30]!r} is not one its hello named"
        if refused is None:
            return True
        self.brain.auth_refused += 1
        log.warning(
            "dropped %s of agent %s for %s/%s: %s",
            "a queue report" if isinstance(report, QueueReport) else "an inventory",
            self.agent_instance[:80],
            report.engine[:30],
            report.app[:40],
            refused,
        )
        return False

    def _store_inventory(self, inventory: Inventory) -> None:
        agent_instance = self.agent_instance
        self._write(lambda s: s.replace_inventory(agent_instance, inventory, time.time()))

    def _store_dropped(self, report: DroppedReport) -> None:
        agent_instance = self.agent_instance
        log.warning("agent %s reports %d events dropped", agent_instance, report.total)
        self.dropped_reported = report.total
        self._write(
            lambda s: s.agent_dropped(
                agent_instance, report.total, report.reason[:200], time.time()
            )
        )

    def _welcome(self, hello: Hello) -> None:
        refused = binding_refusal(self.token, hello.app, [e.name for e in hello.engines])
        if refused is not None:
            # Before the welcome: the agent never joins, so no command or fire reaches it.
            self.brain.auth_refused += 1
            log.warning("refused agent %s: %s", hello.agent_instance[:80], refused)
            # The protocol's refusal of a hello: an unsigned fatal error (the agent reports
            # its reason and backs off as after any terminal code), then the close.
            self._outbox.put_nowait(self.session.refuse(CloseCode.POLICY, refused))
            self.close(CloseCode.POLICY, refused, say_goodbye=False)
            return
        # The token's labels are the operator's: they override what the agent claims.
        self.hello = hello
        self.labels = {**hello.labels, **self.token.labels}
        data = self.session.accept(time.monotonic())
        self._outbox.put_nowait(data)
        previous = self.brain.connections.get(hello.agent_instance)
        if previous is not None and previous is not self:
            previous.close(CloseCode.SUPERSEDED, "replaced by a newer connection")
        self.brain.connections[hello.agent_instance] = self
        self._registered = True
        session_id = self.session.session_id or ""
        labels = dict(self.labels)
        token_name = self.token.name
        brain_id = self.brain.brain_id
        self._write(
            lambda s: s.agent_connected(
                hello, labels, token_name, session_id, time.time(), brain_id=brain_id
            )
        )
        # Fires waiting for this agent (or re-offered to it after a reconnect) go out now.
        self.brain.scheduler.agent_connected()
        log.info(
            "agent %s connected (app %s, host %s, pid %d)",
            hello.agent_instance,
            hello.app,
            hello.host,
            hello.pid,
        )

    def _store_batch(self, batch: EventBatch) -> None:
        if batch.pending is not None:
            self.outbox_pending = batch.pending
        agent_instance = self.agent_instance
        app = self.hello.app if self.hello is not None else ""
        future = self.brain.writer.submit(
            lambda s: s.store_events(agent_instance, app, batch.events, time.time())
        )
        metrics = self.brain.metrics
        # Counted on the writer's thread once the batch committed (the future's callbacks run
        # where it resolves, in the order added: before the ack), never per event on the loop.
        future.add_done_callback(lambda f: _count_stored(metrics, app, batch, f))
        future.add_done_callback(
            lambda f: self._loop.call_soon_threadsafe(self._batch_stored, app, batch, f)
        )

    def _batch_stored(self, app: str, batch: EventBatch, future: Future[int]) -> None:
        last_seq = batch.last_seq
        failure = future.exception()
        if failure is not None:
            log.error(
                "storing a batch of agent %s failed (not acknowledged; the agent resends): %s",
                self.agent_instance,
                why(failure),
            )
            self.close(CloseCode.INTERNAL, "storage failed; resend later")
            return
        self.brain.note_events_stored(future.result())
        if self.session.state in (State.OPEN, State.CLOSING) and not self._closing:
            self.send_frame(Ack(up_to_seq=last_seq))

    def _write(self, job: Callable[[Store], object]) -> None:
        future = self.brain.writer.submit(job)
        future.add_done_callback(_log_failure)

    def _unregister(self) -> None:
        if not self._registered:
            return
        self._registered = False
        if self.brain.connections.get(self.agent_instance) is self:
            del self.brain.connections[self.agent_instance]
        agent_instance = self.agent_instance
        session_id = self.session.session_id or ""
        if not self.brain.writer_closed:
            self._write(lambda s: s.agent_disconnected(agent_instance, session_id, time.time()))
        log.info("agent %s disconnected", agent_instance)


def _count_stored(metrics: BrainMetrics, app: str, batch: EventBatch, future: Future[int]) -> None:
    """The metrics of a stored batch's new events (on the store writer's thread)."""
    if future.cancelled() or future.exception() is not None:
        return
    stored = future.result()
    if stored:
        # Seqs grow within a batch: the ones already stored (a resend) are the first ones.
        events = batch.events
        metrics.stored(app, events[len(events) - stored :])


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("a store write failed: %s", why(exc))
