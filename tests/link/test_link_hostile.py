"""A brain process refuses a wrong token, a replayed, an altered and an oversized frame, each
with its documented code, and keeps serving a real agent process streaming beside them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest
from e2e import run_host, stored_events
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.wire import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    AgentSession,
    CloseCode,
    Event,
    EventBatch,
    Hello,
    LifecycleKind,
)


def hello(name: str) -> Hello:
    return Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=f"hostile-{name}-{os.getpid()}",
        app="hostile",
        host=socket.gethostname(),
        pid=os.getpid(),
        agent_version="test",
    )


def batch(seq: int) -> EventBatch:
    event = Event(
        seq=seq,
        kind=LifecycleKind.STARTED,
        at=time.time(),
        engine="t",
        task_id=f"h-{seq}",
        task_name="x",
    )
    return EventBatch(first_seq=seq, events=[event])


async def misbehave(url: str, token: str, fault: str) -> int | None:
    ws = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=2 * MAX_FRAME_BYTES,
        ping_interval=None,
    )
    session = AgentSession(token, hello(fault))
    await ws.send(session.start(time.monotonic()))
    session.receive(await ws.recv(decode=False), time.monotonic())
    data = session.send(batch(0), time.monotonic())
    if fault == "altered":
        await ws.send(data[:-1] + bytes([data[-1] ^ 1]))
    elif fault == "replayed":
        await ws.send(data)
        frames = session.receive(await ws.recv(decode=False), time.monotonic())
        assert frames == [Ack(up_to_seq=0)]
        await ws.send(data)
    elif fault == "oversized":
        await ws.send(data[:49] + b"\x00" * (MAX_FRAME_BYTES + 1 - 49))
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


@pytest.mark.parametrize(
    ("fault", "codes"),
    [
        ("altered", {CloseCode.BAD_SIGNATURE}),
        ("replayed", {CloseCode.SEQUENCE}),
        # Past the brain's message ceiling the WebSocket layer itself refuses (1009).
        ("oversized", {CloseCode.OVERSIZED, 1009}),
    ],
)
def test_a_faulty_frame_is_refused_and_a_streaming_agent_is_unaffected(
    brain: BrainProcess, tmp_path: Path, fault: str, codes: set[int]
) -> None:
    token = brain.create_token("hostile")
    good = brain.create_token("good")
    brain.start()
    host = run_host(brain, good, tmp_path / "spool", "stream", "5000", "2500")
    code = asyncio.run(misbehave(brain.url, token, fault))
    assert code in codes
    out, err = host.communicate(timeout=120)
    assert host.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["dropped"] == 0
    stored = {task for _, _, task in stored_events(brain)}
    assert len({t for t in stored if t.startswith("task-")}) == 5000


def test_a_wrong_token_never_gets_a_websocket(brain: BrainProcess) -> None:
    brain.create_token("real")
    brain.start()

    async def attempt() -> int:
        try:
            await connect(brain.url, additional_headers={"Authorization": "Bearer z4j_forged"})
        except InvalidStatus as exc:
            return exc.response.status_code
        return 101

    assert asyncio.run(attempt()) in (401, 403)
