"""The gateway over a real socket: uvicorn in a thread, agents as websockets clients driving
``AgentSession``."""

from __future__ import annotations

import asyncio
import time

import pytest
from brain_helpers import ADMIN, RunningBrain, TestAgent, make_hello
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from z4j_core.wire import (
    Ack,
    CloseCode,
    Command,
    CommandResult,
    CommandStatus,
    DroppedReport,
    EventBatch,
    Inventory,
    QueueDepth,
    QueueReport,
    TaskInfo,
)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_handshake_and_a_batch_acked_after_it_is_stored(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a", {"env": "test"})

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        await agent.send_batch(0, 50)
        ack = await agent.recv_frame()
        assert ack == Ack(up_to_seq=49)
        # Acked means stored: visible to a reader right now.
        status, body = running_brain.api("GET", "/api/v1/tasks/t7/events")
        assert status == 200 and [e["seq"] for e in body["events"]] == [7]
        await agent.send(
            Inventory(engine="testengine", app="shop", tasks=[TaskInfo(name="app.add")])
        )
        await agent.send(DroppedReport(total=3, reason="test"))
        await agent.send_batch(50, 1)
        assert await agent.recv_frame() == Ack(up_to_seq=50)
        await agent.ws.close()

    run(scenario())
    status, body = running_brain.api("GET", "/api/v1/agents")
    (agent_row,) = body["agents"]
    assert agent_row["agent_instance"] == "inst-1" and agent_row["dropped_total"] == 3
    assert agent_row["labels"] == {"zone": "a", "env": "test"}  # the token's labels added
    status, body = running_brain.api("GET", "/api/v1/inventory?agent_instance=inst-1")
    assert body["inventory"][0]["tasks"] == [{"name": "app.add"}]
    status, body = running_brain.api("GET", "/api/v1/tasks?state=succeeded&limit=1000")
    assert status == 200
    assert len(body["tasks"]) == 51


def test_a_bound_token_cannot_report_for_another_app_or_engine(
    running_brain: RunningBrain,
) -> None:
    status, bound = running_brain.api("POST", "/api/v1/tokens", {"name": "bound", "app": "shop"})
    assert status == 201, bound
    mine = [TaskInfo(name="app.mine")]
    theirs = [TaskInfo(name="app.planted")]
    depth = [QueueDepth(name="default", ready=7)]

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, bound["token"], make_hello("inst-b"))
        # Another app, and an engine its hello did not name: both dropped, the session stays.
        await agent.send(Inventory(engine="testengine", app="billing", tasks=theirs))
        await agent.send(QueueReport(engine="testengine", app="billing", queues=depth))
        await agent.send(Inventory(engine="otherengine", app="shop", tasks=theirs))
        await agent.send(QueueReport(engine="otherengine", app="shop", queues=depth))
        await agent.send(Inventory(engine="testengine", app="shop", tasks=mine))
        await agent.send(QueueReport(engine="testengine", app="shop", queues=depth))
        # The writer runs jobs in order: once this batch is acked, the reports were handled.
        await agent.send_batch(0, 1)
        assert await agent.recv_frame() == Ack(up_to_seq=0)
        status, body = running_brain.api("GET", "/api/v1/queues")
        assert status == 200
        assert [(q["engine"], q["app"]) for q in body["queues"]] == [("testengine", "shop")]
        await agent.ws.close()

    run(scenario())
    status, body = running_brain.api("GET", "/api/v1/inventory?agent_instance=inst-b")
    assert status == 200
    assert [(i["engine"], i["app"], i["tasks"]) for i in body["inventory"]] == [
        ("testengine", "shop", [{"name": "app.mine"}])
    ]
    assert running_brain.brain.auth_refused == 4


def test_a_batch_resent_in_a_new_session_is_not_duplicated(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        for _ in range(2):
            agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
            await agent.send_batch(0, 20)
            assert await agent.recv_frame() == Ack(up_to_seq=19)
            await agent.ws.close()

    run(scenario())
    status, body = running_brain.api("GET", "/api/v1/events?after=0&limit=1000")
    assert status == 200 and len(body["events"]) == 20
    status, body = running_brain.api("GET", f"/api/v1/events?after={body['next_after']}")
    assert body["events"] == []


@pytest.mark.parametrize("header", [None, "Bearer z4j_not-a-token", "Basic abc"])
def test_a_bad_token_gets_no_websocket(running_brain: RunningBrain, header: str | None) -> None:
    async def scenario() -> None:
        headers = {} if header is None else {"Authorization": header}
        with pytest.raises(InvalidStatus) as info:
            await connect(running_brain.ws_url, additional_headers=headers)
        assert info.value.response.status_code == 401
        assert b"token refused" in info.value.response.body

    run(scenario())


def test_a_revoked_token_is_refused_and_its_live_agent_cut_off(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")
    from z4j_brain.store import Store

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        store = Store.open(running_brain.database)
        with store.transaction():
            store.revoke_token("agent-a", time.time())
        store.close()
        started = time.monotonic()
        assert await agent.close_code(timeout=5) == CloseCode.AUTH_REFUSED
        assert time.monotonic() - started < 2.0
        with pytest.raises(InvalidStatus):
            await connect(
                running_brain.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
            )

    run(scenario())


async def _faulty_agent_and_a_witness(brain: RunningBrain, fault: str) -> tuple[int | None, bool]:
    token = brain.create_token(f"tok-{fault}")
    witness = await TestAgent.connect(brain.ws_url, token, make_hello("witness"))
    agent = await TestAgent.connect(brain.ws_url, token, make_hello("faulty"))
    batch = EventBatch(first_seq=0, events=[*__import__("brain_helpers").make_events(0, 1)])
    data = agent.session.send(batch, time.monotonic())
    if fault == "altered":
        mutable = bytearray(data)
        mutable[-1] ^= 0x01
        await agent.ws.send(bytes(mutable))
    elif fault == "replayed":
        await agent.ws.send(data)
        assert await agent.recv_frame() == Ack(up_to_seq=0)
        await agent.ws.send(data)
    elif fault == "oversized":
        limit = brain.brain.config.limits.max_frame_bytes
        await agent.ws.send(data[:49] + b"\x00" * (limit + 1 - 49))
    code = await agent.close_code()
    await witness.send_batch(0, 3, task_prefix="w")
    still_served = await witness.recv_frame() == Ack(up_to_seq=2)
    await witness.ws.close()
    return code, still_served


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("altered", CloseCode.BAD_SIGNATURE),
        ("replayed", CloseCode.SEQUENCE),
        ("oversized", CloseCode.OVERSIZED),
    ],
)
def test_a_faulty_frame_closes_with_its_code_and_others_keep_working(
    running_brain: RunningBrain, fault: str, code: CloseCode
) -> None:
    got, still_served = asyncio.run(_faulty_agent_and_a_witness(running_brain, fault))
    assert got == code
    assert still_served


def test_a_command_round_trip_over_http(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        body = {
            "kind": "fire",
            "engine": "testengine",
            "app": "shop",
            "task": "app.add",
            "args": [1, 2],
            "kwargs": {"x": 1},
            "options": {"queue": "default"},
            "fire_id": "fire-123",
            "schedule_id": "sched-1",
            "slot": "2026-01-01T00:00:00+00:00",
            "deadline": 5,
        }
        response = asyncio.create_task(
            asyncio.to_thread(running_brain.api, "POST", "/api/v1/commands", body)
        )
        command = await agent.recv_frame()
        assert isinstance(command, Command)
        assert (
            command.fire_id == "fire-123"
            and command.args == [1, 2]
            and command.options.queue == "default"
        )
        await agent.send(
            CommandResult(
                command_id=command.command_id, status=CommandStatus.ENQUEUED, native_id="fire-123"
            )
        )
        status, result = await response
        assert status == 200
        assert result == {
            "command_id": command.command_id,
            "agent_instance": "inst-1",
            "status": "enqueued",
            "native_id": "fire-123",
            "reason": "",
        }
        status, row = await asyncio.to_thread(
            running_brain.api, "GET", f"/api/v1/commands/{command.command_id}"
        )
        assert row["status"] == "enqueued" and row["fire_id"] == "fire-123"
        await agent.ws.close()

    run(scenario())


def test_an_answer_from_an_agent_the_command_did_not_go_to_is_dropped(
    running_brain: RunningBrain,
) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        target = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        body = {"kind": "enqueue", "engine": "testengine", "app": "shop", "task": "t",
                "deadline": 5}  # fmt: skip
        response = asyncio.create_task(
            asyncio.to_thread(running_brain.api, "POST", "/api/v1/commands", body)
        )
        command = await target.recv_frame()
        assert isinstance(command, Command)
        # Another agent of the app learns the id (it cannot guess a random one) and answers.
        other = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-2"))
        forged = CommandResult(
            command_id=command.command_id, status=CommandStatus.ENQUEUED, native_id="forged"
        )
        await other.send(forged)
        await asyncio.sleep(0.5)
        assert not response.done()
        await target.send(
            CommandResult(
                command_id=command.command_id,
                status=CommandStatus.REJECTED,
                reason="unknown task 't'",
            )
        )
        status, result = await response
        assert status == 200 and result["status"] == "rejected", result
        assert result["agent_instance"] == "inst-1"
        # A late forged answer does not overwrite the stored one either.
        await other.send(forged)
        await asyncio.sleep(0.5)
        status, row = await asyncio.to_thread(
            running_brain.api, "GET", f"/api/v1/commands/{command.command_id}"
        )
        assert row["status"] == "rejected" and row["native_id"] is None, row
        await other.ws.close()
        await target.ws.close()

    run(scenario())


def test_commands_route_by_app_and_capability_and_record_no_answer(
    running_brain: RunningBrain,
) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        base = {"kind": "enqueue", "engine": "testengine", "task": "t", "deadline": 0.5}
        status, body = await asyncio.to_thread(
            running_brain.api, "POST", "/api/v1/commands", {**base, "app": "other"}
        )
        assert status == 409 and "no connected agent" in body["error"]
        status, body = await asyncio.to_thread(
            running_brain.api,
            "POST",
            "/api/v1/commands",
            {**base, "app": "shop", "labels": {"zone": "b"}},
        )
        assert status == 409
        status, body = await asyncio.to_thread(
            running_brain.api, "POST", "/api/v1/commands", {**base, "kind": "fire", "app": "shop"}
        )
        assert status == 400 and "fire_id" in body["error"]
        status, body = await asyncio.to_thread(
            running_brain.api, "POST", "/api/v1/commands", {**base, "app": "shop"}
        )
        assert status == 200 and body["status"] == "unknown"
        assert isinstance(await agent.recv_frame(), Command)
        await agent.ws.close()

    run(scenario())


def test_the_api_needs_the_admin_token(running_brain: RunningBrain) -> None:
    assert running_brain.api("GET", "/api/v1/agents", token=None)[0] == 401
    assert running_brain.api("GET", "/api/v1/agents", token="z4j_admin_wrong")[0] == 401
    assert running_brain.api("GET", "/api/v1/agents", token=ADMIN)[0] == 200
    assert running_brain.api("GET", "/api/v1/events?after=x")[0] == 400
    assert running_brain.api("POST", "/api/v1/commands", body=[1])[0] == 400
