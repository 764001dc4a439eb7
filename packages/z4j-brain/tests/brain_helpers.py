"""Helpers for the brain's tests: a real brain served on a free port, a hand-driven agent.

(Named uniquely: several packages' test folders share one ``sys.path``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from z4j_brain.brain import Brain
from z4j_brain.config import BrainConfig
from z4j_brain.server import ServerThread
from z4j_brain.store import Store
from z4j_brain.tokens import create_token
from z4j_core.wire import (
    AgentSession,
    Capability,
    EngineInfo,
    Event,
    EventBatch,
    Frame,
    Hello,
    LifecycleKind,
    Welcome,
)
from z4j_core.wire.limits import PROTOCOL_VERSION

ADMIN = "z4j_admin_test-admin-token"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A fresh database: a SQLite file, or a Postgres database of its own (dropped after)."""
    if request.param == "sqlite":
        yield tmp_path / "brain.sqlite3"
        return
    from z4j_core.testing.postgres import temporary_database

    with temporary_database() as url:
        yield url


@pytest.fixture
def store(database: Path | str) -> Iterator[Store]:
    s = Store.open(database)
    yield s
    s.close()


class RunningBrain:
    def __init__(self, thread: ServerThread, database: Path | str) -> None:
        self.thread = thread
        self.brain = thread.brain
        self.database = database
        self.url = thread.url
        self.ws_url = thread.ws_url

    def create_token(self, name: str, labels: dict[str, str] | None = None) -> str:
        store = Store.open(self.database)
        try:
            return create_token(store, name, labels or {}, time.time())
        finally:
            store.close()

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = ADMIN
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"null")


@contextlib.contextmanager
def serving(database: Path | str, **env: str) -> Iterator[RunningBrain]:
    """A brain served from a thread on a free port; ``env`` adds ``Z4J_*`` settings."""
    config = BrainConfig.load(
        host="127.0.0.1",
        port=0,
        database=database,
        env={"Z4J_ADMIN_TOKEN": ADMIN, "Z4J_HEARTBEAT_SECONDS": "5", **env},
    )
    thread = ServerThread(Brain(config, command_deadline_seconds=5.0))
    thread.start()
    try:
        yield RunningBrain(thread, database)
    finally:
        thread.stop()


@pytest.fixture
def running_brain(database: Path | str) -> Iterator[RunningBrain]:
    with serving(database) as brain:
        yield brain


def make_hello(
    instance: str, app: str = "shop", capabilities: list[Capability] | None = None
) -> Hello:
    caps = (
        capabilities
        if capabilities is not None
        else [Capability.LIFECYCLE, Capability.ENQUEUE, Capability.FIRE]
    )
    return Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=instance,
        app=app,
        host="testhost",
        pid=os.getpid(),
        agent_version="test",
        engines=[EngineInfo(name="testengine", version="1", capabilities=caps)],
        labels={"zone": "a"},
    )


def make_events(first_seq: int, count: int, task_prefix: str = "t") -> list[Event]:
    return [
        Event(
            seq=first_seq + i,
            kind=LifecycleKind.SUCCEEDED,
            at=1000.0 + i,
            engine="testengine",
            task_id=f"{task_prefix}{first_seq + i}",
            task_name="app.add",
        )
        for i in range(count)
    ]


class TestAgent:
    """An agent driven by hand: a websockets client pumping an ``AgentSession``."""

    __test__ = False

    def __init__(self, ws: ClientConnection, session: AgentSession) -> None:
        self.ws = ws
        self.session = session

    @classmethod
    async def connect(cls, url: str, token: str, hello: Hello) -> TestAgent:
        ws = await connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
        )
        session = AgentSession(token, hello)
        await ws.send(session.start(time.monotonic()))
        frames = session.receive(await asyncio.wait_for(ws.recv(), 10), time.monotonic())
        assert isinstance(frames[0], Welcome)
        return cls(ws, session)

    async def send(self, frame: Frame) -> bytes:
        data = self.session.send(frame, time.monotonic())
        await self.ws.send(data)
        return data

    async def recv_frame(self, timeout: float = 10.0) -> Frame:
        while True:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(data, bytes)
            frames = self.session.receive(data, time.monotonic())
            for out in self.session.tick(time.monotonic()):
                await self.ws.send(out)
            if frames:
                return frames[0]

    async def send_batch(self, first_seq: int, count: int, task_prefix: str = "t") -> EventBatch:
        batch = EventBatch(first_seq=first_seq, events=make_events(first_seq, count, task_prefix))
        await self.send(batch)
        return batch

    async def close_code(self, timeout: float = 10.0) -> int | None:
        """Wait for the brain to close the connection; its close code."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except Exception:
            pass
        return self.ws.close_code
