"""Helpers for the hostile-input tests: raw HTTP and WebSocket clients that can pick their source
address, a session that signs any payload, an arena (a real brain with a well-behaved agent
streaming beside the attacker), and the brain's resident memory.

Every client here talks to a real brain process over a real socket. The number of generated
inputs scales with ``Z4J_HOSTILE_SCALE`` (default 1, what CI runs; bench and soak runs use 10
or more).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.stats import rss_kib
from z4j_core.wire import PROTOCOL_VERSION, AgentSession, Hello
from z4j_core.wire.limits import MAX_FRAME_BYTES
from z4j_core.wire.signing import seal

#: Run as `python -m STEADY_AGENT RATE`: an agent emitting a steady stream of events.
STEADY_AGENT = "z4j_core.testing.steady_agent"
SCALE_ENV = "Z4J_HOSTILE_SCALE"
#: The second source address of the per-address tests (all of 127.0.0.0/8 is loopback).
OTHER_SOURCE = "127.0.0.2"


def examples(ci_count: int) -> int:
    """How many generated inputs a test tries: ``ci_count`` times ``Z4J_HOSTILE_SCALE``."""
    return max(1, int(ci_count * float(os.environ.get(SCALE_ENV, "1"))))


# -- HTTP ----------------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    raw_body: bytes | None = None,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """One request from ``source``; never raises on an HTTP error status."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(
        url.hostname or "127.0.0.1", url.port, timeout=60, source_address=(source, 0)
    )
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return HttpAnswer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def healthy(base_url: str) -> bool:
    try:
        return request(base_url, "GET", "/healthz").status == 200
    except OSError:
        return False


# -- WebSocket -----------------------------------------------------------------------------------


def make_hello(name: str) -> Hello:
    return Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=f"hostile-{name}-{os.getpid()}",
        app="hostile",
        host=socket.gethostname(),
        pid=os.getpid(),
        agent_version="test",
    )


async def ws_connect(url: str, token: str | None, source: str = "127.0.0.1") -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await connect(
        url,
        additional_headers=headers,
        max_size=2 * MAX_FRAME_BYTES,
        ping_interval=None,
        open_timeout=30,
        local_addr=(source, 0),
    )


async def upgrade_status(
    url: str, token: str | None, source: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> int:
    """101 when the brain accepted the WebSocket (closed again at once), else the HTTP status."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    try:
        ws = await connect(url, additional_headers=sent, open_timeout=30, local_addr=(source, 0))
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def open_session(url: str, token: str, name: str) -> tuple[ClientConnection, AgentSession]:
    """A connection past the handshake: hello sent, welcome verified."""
    ws = await ws_connect(url, token)
    session = AgentSession(token, make_hello(name))
    await ws.send(session.start(time.monotonic()))
    session.receive(await asyncio.wait_for(ws.recv(decode=False), 30), time.monotonic())
    return ws, session


def sign_payload(session: AgentSession, payload: bytes) -> bytes:
    """``payload`` (any bytes) sealed with the session's key and next sequence number, exactly
    as a compromised agent holding a valid token could send it."""
    data = seal(session._key, session.side, session._send_seq, payload)
    session._send_seq += 1
    return data


@dataclass(frozen=True)
class Closed:
    code: int | None
    reason: str


async def wait_closed(ws: ClientConnection, timeout: float = 30) -> Closed:
    """Read (and discard) until the brain closes; the close code and reason it sent."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            return Closed(None, "")
        return Closed(exc.rcvd.code, exc.rcvd.reason)


# -- the arena -----------------------------------------------------------------------------------


@dataclass
class Arena:
    """A brain process, a well-behaved agent process streaming events at a steady rate beside
    the attacker, and a thread polling ``/healthz`` the whole time."""

    brain: BrainProcess
    agent: subprocess.Popen[str] | None = None
    polls: int = 0
    failed_polls: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _poller: threading.Thread | None = None

    def start(self, token: str, spool: Path, rate: float = 50) -> None:
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": self.brain.url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(spool),
        }
        self.agent = subprocess.Popen(
            [sys.executable, "-m", STEADY_AGENT, str(rate)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()
        deadline = time.monotonic() + 60
        while self.stored() == 0:
            assert time.monotonic() < deadline, "the steady agent stored nothing in 60 s"
            time.sleep(0.1)

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            try:
                status = request(self.brain.http_url, "GET", "/healthz").status
            except OSError as exc:
                self.failed_polls.append(f"{type(exc).__name__}: {exc}")
                continue
            self.polls += 1
            if status != 200:
                self.failed_polls.append(f"HTTP {status}")

    def stored(self) -> int:
        """Events of the steady agent the brain has stored so far."""
        return BrainStore(self.brain.database).count_events("steady-")

    def rss_kib(self) -> int:
        assert self.brain.process is not None
        return rss_kib(self.brain.process.pid)

    def assert_serving(self, stored_before: int) -> None:
        """The brain is alive, answered every health poll, and the steady agent's events kept
        being stored since ``stored_before``."""
        assert self.brain.process is not None and self.brain.process.poll() is None
        assert not self.failed_polls, self.failed_polls[:5]
        deadline = time.monotonic() + 30
        while self.stored() <= stored_before:
            assert time.monotonic() < deadline, "the steady agent's events stopped being stored"
            time.sleep(0.1)

    def finish(self) -> dict[str, Any]:
        """Stop the steady agent (it drains first) and the poller; the agent's summary."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(5)
        assert self.agent is not None
        out, err = self.agent.communicate(input="", timeout=90)  # closing stdin stops it
        assert self.agent.returncode == 0, err
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary

    def kill(self) -> None:
        self._stop.set()
        if self.agent is not None:
            if self.agent.poll() is None:
                self.agent.kill()
            with contextlib.suppress(ValueError):  # finish() already collected it
                self.agent.communicate(timeout=10)
