"""The brain as a server: expiry and rate limits on a live brain, metrics, the OpenAPI document,
long polls, migrations racing on Postgres, and `z4j brain serve` on a Postgres URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from brain_helpers import ADMIN, RunningBrain, TestAgent, make_hello, serving
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from z4j_brain import console
from z4j_brain.api import create_app
from z4j_brain.metrics import BrainMetrics
from z4j_brain.migrations import LATEST_VERSION
from z4j_brain.openapi import openapi_document
from z4j_brain.ratelimit import AuthFailureLimiter
from z4j_brain.store import Store
from z4j_brain.tokens import hash_hex
from z4j_core.wire import CloseCode, Command, CommandResult, CommandStatus, DroppedReport
from z4j_core.wire.signing import new_token


def test_an_expiring_token_cuts_its_live_agent_off_within_a_second(
    running_brain: RunningBrain,
) -> None:
    token = new_token()
    store = Store.open(running_brain.database)
    with store.transaction():
        store.create_token("short", hash_hex(token), {}, time.time(), time.time() + 2.0)
    store.close()
    expires = time.time() + 2.0

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        assert await agent.close_code(timeout=10) == CloseCode.AUTH_REFUSED
        assert time.time() - expires < 1.5  # cut off within a second (plus scheduling slack)
        with pytest.raises(InvalidStatus) as info:
            await connect(
                running_brain.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
            )
        assert info.value.response.status_code == 401

    asyncio.run(scenario())


def _get(url: str, token: str | None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def test_an_address_with_many_bad_tokens_is_refused_before_any_lookup(database: Path | str) -> None:
    with serving(database, Z4J_AUTH_FAILURE_LIMIT="3") as running:
        good = running.create_token("good")
        brain = running.brain
        lookups = 0
        verify = brain.tokens.verify

        async def counting_verify(presented: str) -> object:
            nonlocal lookups
            lookups += 1
            return await verify(presented)

        brain.tokens.verify = counting_verify  # type: ignore[method-assign]

        async def upgrade(secret: str) -> int:
            try:
                ws = await connect(
                    running.ws_url, additional_headers={"Authorization": f"Bearer {secret}"}
                )
            except InvalidStatus as exc:
                return exc.response.status_code
            await ws.close()
            return 101

        assert asyncio.run(upgrade(good)) == 101
        codes = [asyncio.run(upgrade("z4j_guess")) for _ in range(3)]
        assert codes == [401, 401, 401] and lookups == 4
        # Limited now: agent upgrades and API calls alike, even with good tokens, no lookup.
        assert asyncio.run(upgrade("z4j_guess")) == 429
        assert asyncio.run(upgrade(good)) == 429
        status, headers = _get(running.url + "/api/v1/agents", ADMIN)
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert lookups == 4
        metrics = _metrics(running)
        assert metrics["z4j_auth_refused_total"] == 3
        assert metrics["z4j_auth_rate_limited_total"] == 3


def test_the_limiter_window_ends_and_memory_is_bounded() -> None:
    now = [0.0]
    limiter = AuthFailureLimiter(2, 10.0, clock=lambda: now[0])
    limiter.failed("a")
    assert limiter.retry_after("a") is None
    limiter.failed("a")
    assert limiter.retry_after("a") == 10.0 and limiter.retry_after("b") is None
    now[0] = 10.5
    assert limiter.retry_after("a") is None
    from z4j_brain import ratelimit

    original = ratelimit.MAX_ADDRESSES
    ratelimit.MAX_ADDRESSES = 5
    try:
        for i in range(50):
            limiter.failed(f"addr-{i}")
        assert len(limiter._windows) <= 5
    finally:
        ratelimit.MAX_ADDRESSES = original


def _metrics(running: RunningBrain) -> dict[str, float]:
    with urllib.request.urlopen(running.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_count_agents_events_commands_and_drops(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")
    before = _metrics(running_brain)
    assert before["z4j_agents_connected"] == 0
    assert not [k for k in before if k.startswith("z4j_events_stored_total")]

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        await agent.send_batch(0, 40)
        await agent.recv_frame()
        await agent.send(DroppedReport(total=7, reason="spool full"))
        body = {"kind": "enqueue", "engine": "testengine", "app": "shop", "task": "t"}
        for status in (CommandStatus.ENQUEUED, CommandStatus.REJECTED):
            call = asyncio.create_task(
                asyncio.to_thread(running_brain.api, "POST", "/api/v1/commands", body)
            )
            command = await agent.recv_frame()
            assert isinstance(command, Command)
            await agent.send(CommandResult(command_id=command.command_id, status=status))
            await call
        metrics = await asyncio.to_thread(_metrics, running_brain)
        assert metrics["z4j_agents_connected"] == 1
        assert metrics['z4j_events_stored_total{engine="testengine",kind="succeeded"}'] == 40
        assert metrics['z4j_commands_total{status="enqueued"}'] == 1
        assert metrics['z4j_commands_total{status="rejected"}'] == 1
        assert metrics["z4j_agent_dropped_events_total"] == 7
        await agent.ws.close()

    asyncio.run(scenario())


def test_events_are_counted_on_the_store_writer_not_the_event_loop(
    running_brain: RunningBrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted_on: list[str] = []
    stored = BrainMetrics.stored

    def recording(self: BrainMetrics, app: str, events: Any) -> None:
        counted_on.append(threading.current_thread().name)
        stored(self, app, events)

    monkeypatch.setattr(BrainMetrics, "stored", recording)
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        await agent.send_batch(0, 40)
        await agent.recv_frame()
        metrics = await asyncio.to_thread(_metrics, running_brain)
        assert metrics['z4j_events_stored_total{engine="testengine",kind="succeeded"}'] == 40
        await agent.ws.close()

    asyncio.run(scenario())
    assert counted_on == ["z4j-brain-writer"]


def test_the_openapi_document_describes_every_route_and_is_served(
    running_brain: RunningBrain,
) -> None:
    app = create_app(running_brain.brain)
    served: set[tuple[str, str]] = set()
    console_paths = {getattr(r, "path", None) for r in console.routes()}  # pages, not the API
    for route in app.routes:
        if isinstance(route, WebSocketRoute) or getattr(route, "path", None) in console_paths:
            continue
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))
    document = openapi_document("x")
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == described
    # Every $ref points at a schema that exists.
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in document["components"]["schemas"], ref
    with urllib.request.urlopen(running_brain.url + "/api/v1/openapi.json", timeout=10) as answer:
        served_doc = json.loads(answer.read())
    assert (
        served_doc["openapi"].startswith("3.1")
        and served_doc["paths"].keys() == document["paths"].keys()
    )


def test_a_long_poll_returns_as_soon_as_a_batch_is_stored(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        started = time.monotonic()
        poll = asyncio.create_task(
            asyncio.to_thread(running_brain.api, "GET", "/api/v1/events?after=0&wait=20")
        )
        await asyncio.sleep(0.5)
        assert not poll.done()
        await agent.send_batch(0, 2)
        status, body = await poll
        assert status == 200 and [e["seq"] for e in body["events"]] == [0, 1]
        assert time.monotonic() - started < 5 and body["latest"] == body["next_after"]
        status, body = await asyncio.to_thread(
            running_brain.api, "GET", f"/api/v1/events?after={body['next_after']}&wait=1"
        )
        assert body["events"] == []
        status, body = await asyncio.to_thread(running_brain.api, "GET", "/api/v1/events?wait=31")
        assert status == 400 and "wait" in body["error"]
        await agent.ws.close()

    asyncio.run(scenario())


@pytest.mark.postgres
def test_brains_starting_together_migrate_once() -> None:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database() as url:
        errors: list[BaseException] = []
        applied: list[list[int]] = []
        barrier = threading.Barrier(6)

        def start() -> None:
            try:
                barrier.wait()
                store = Store.open(url, migrate=False)
                applied.append(store.migrate())
                store.close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert sorted(applied) == [[]] * 5 + [list(range(1, LATEST_VERSION + 1))]
        store = Store.open(url)
        assert store.schema_version() == LATEST_VERSION
        store.close()


@pytest.mark.postgres
def test_serve_on_a_postgres_url_end_to_end(tmp_path: Path) -> None:
    """`z4j brain serve --database postgresql://...` as an operator runs it, an agent check
    through it, and the event visible through the API."""
    import subprocess

    from z4j_core.testing.brainproc import BrainProcess
    from z4j_core.testing.postgres import temporary_database

    with temporary_database() as url, BrainProcess(tmp_path / "b", database=url) as brain:
        token = brain.create_token("pg-agent")
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "z4j_core.cli",
                "agent",
                "check",
                "--brain-url",
                brain.url,
                "--token",
                token,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        events = brain.api("GET", "/api/v1/events?after=0")["events"]
        assert len(events) == 1 and events[0]["agent_instance"].startswith("check-")
        assert brain.api("GET", "/api/v1/tokens")["tokens"][0]["name"] == "pg-agent"


def test_a_bad_postgres_url_is_one_line(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "z4j_core.cli",
            "brain",
            "serve",
            "--port",
            "0",
            "--database-url",
            "postgresql://nobody:secret@127.0.0.1:9/nothing",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stderr.startswith("z4j: error: cannot connect to")
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_the_brain_survives_its_postgres_connections_being_killed(database: Path | str) -> None:
    """Every brain connection terminated (as a Postgres restart does): a batch that meets the
    dead connection is not acknowledged (the session closes with INTERNAL) and the agent's
    next session stores it and is acknowledged; a batch that comes after the writer already
    replaced its connection (another job, e.g. the leader's housekeeping, met it first) is
    stored and acknowledged at once. Either way each event is stored once, and reads recover."""
    import psycopg

    from z4j_core.testing.postgres import server_url

    with serving(database) as running:
        token = running.create_token("agent-a")

        async def scenario() -> None:
            agent = await TestAgent.connect(running.ws_url, token, make_hello("inst-1"))
            await agent.send_batch(0, 5)
            await agent.recv_frame()
            name = str(database).rsplit("/", 1)[1]
            with psycopg.connect(server_url(), autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'z4j-brain'",
                    (name,),
                ).fetchone()
            assert killed is not None and killed[0] >= 2  # the writer and a reader at least
            await agent.send_batch(5, 5)
            acked = None
            with contextlib.suppress(ConnectionClosed):
                while acked is None:  # heartbeats are answered while waiting
                    frame = await agent.recv_frame(timeout=30)
                    acked = getattr(frame, "up_to_seq", None)
            if acked is None:  # the batch met the dead connection: refused, never acknowledged
                assert agent.ws.close_code == CloseCode.INTERNAL, agent.ws.close_code
                again = await TestAgent.connect(running.ws_url, token, make_hello("inst-1"))
                await again.send_batch(5, 5)
                ack = await again.recv_frame(timeout=20)
                assert getattr(ack, "up_to_seq", None) == 9
                await again.ws.close()
            else:
                assert acked == 9
                await agent.ws.close()

        asyncio.run(scenario())
        status, body = running.api("GET", "/api/v1/events?after=0")
        assert status == 200 and [e["seq"] for e in body["events"]] == list(range(10))
