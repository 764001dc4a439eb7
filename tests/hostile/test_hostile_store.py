"""Well-formed event batches with extreme values (NUL and any Unicode in every string, huge and
negative numbers, NaN and infinities, sequence numbers up to 2^64-1) sent by an authenticated
agent to a real brain on SQLite and on Postgres: each batch is stored and acknowledged, or
refused as a malformed frame (4400, naming the field). Never ``INTERNAL`` ("storage failed;
resend later"), which would make an honest agent resend the same batch forever.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.hostile import examples, open_session
from z4j_core.wire import Ack, CloseCode, Event, EventBatch, LifecycleKind

_text = st.text(max_size=64) | st.text(st.characters(codec="utf-8"), max_size=8).map(
    lambda t: "\x00" + t + "\x00"
)
_float = st.floats(allow_nan=True, allow_infinity=True)
_int = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def batches(draw: st.DrawFn) -> EventBatch:
    size = draw(st.integers(1, 5))
    first = draw(st.one_of(st.integers(0, 1000), st.integers(0, 2**64 - 1 - size)))
    events = [
        Event(
            seq=first + i,
            kind=draw(st.sampled_from(list(LifecycleKind))),
            at=draw(_float),
            engine=draw(_text),
            task_id=draw(_text),
            task_name=draw(_text),
            queue=draw(st.none() | _text),
            worker=draw(st.none() | _text),
            args=draw(st.none() | _text),
            kwargs=draw(st.none() | _text),
            result=draw(st.none() | _text),
            runtime=draw(st.none() | _float),
            retries=draw(st.none() | _int),
            exception=draw(st.none() | _text),
            message=draw(st.none() | _text),
            traceback=draw(st.none() | _text),
            fire_id=draw(st.none() | _text),
            extra=draw(st.dictionaries(_text, _text, max_size=3)),
        )
        for i in range(size)
    ]
    return EventBatch(first_seq=first, events=events)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_brain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrainProcess]:
    if request.param == "sqlite":
        brain = BrainProcess(tmp_path / "brain")
        yield brain
        brain.stop()
        return
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("store") as url:
        brain = BrainProcess(tmp_path / "brain", database=url)
        yield brain
        brain.stop()


def test_extreme_values_are_stored_or_refused_never_a_storage_failure(
    store_brain: BrainProcess,
) -> None:
    token = store_brain.create_token("extreme")
    store_brain.start()
    outcomes: collections.Counter[str] = collections.Counter()

    async def send(batch: EventBatch) -> str:
        ws, session = await open_session(store_brain.url, token, f"x{batch.first_seq}")
        try:
            await ws.send(session.send(batch, time.monotonic()))
            frames = session.receive(await asyncio.wait_for(ws.recv(decode=False), 30), 0.0)
        except ConnectionClosed as exc:  # refused: the WebSocket close carries the code
            code = exc.rcvd.code if exc.rcvd else None
            return f"refused {code}: {exc.rcvd.reason if exc.rcvd else ''}"
        finally:
            await ws.close()
        if frames == [Ack(up_to_seq=batch.last_seq)]:
            return "stored"
        return f"other: {frames}"  # e.g. a signed Close(4500, "storage failed; resend later")

    @given(batches())
    @settings(
        max_examples=examples(100),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def fuzz(batch: EventBatch) -> None:
        outcome = asyncio.run(send(batch))
        outcomes[outcome.split(":")[0]] += 1
        assert outcome == "stored" or outcome.startswith(
            f"refused {int(CloseCode.BAD_FRAME)}: invalid frame"
        ), outcome

    fuzz()
    print(f"\nextreme event batches: {dict(outcomes)}")
    assert outcomes["stored"] > 0
