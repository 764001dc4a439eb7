"""Two brains on Postgres, a per-second schedule, and the leader killed with SIGKILL again and
again: every slot in the window runs exactly once in a real Huey consumer (counted by fire id),
none twice, none missing (the schedule catches up `all`)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.sink import Sink, fires, is_leader, live_agents, make_brain, schedule_body
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

#: Kills per run: a few in CI; bench/bench_scheduler.py --failover does 20.
KILLS = int(os.environ.get("Z4J_TEST_FAILOVER_KILLS", "3"))


@pytest.fixture
def database() -> Iterator[str]:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("sched") as url:
        yield url


def test_killing_the_leader_never_fires_a_slot_twice_or_loses_one(
    tmp_path: Path, database: str
) -> None:
    brains = [make_brain(tmp_path / name, database) for name in ("a", "b")]
    token = brains[0].create_token("sink")
    sink: Sink | None = None
    try:
        for brain in brains:
            brain.start()
        # The agent is on brain b; whichever brain leads, fires reach it through Postgres.
        sink = Sink(tmp_path / "sink", brains[1].url, token)
        wait_for(lambda: live_agents(brains[1]), 30, "the sink's agent")
        start = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        spec = {"kind": "interval", "every": "1s", "anchor": start, "catch_up": "all",
                "misfire_grace": "60s"}  # fmt: skip
        brains[0].api("POST", "/api/v1/schedules", schedule_body("tick", spec))
        wait_for(lambda: len(fires(brains[0], "tick")) >= 2, 15, "the first fires")
        kills = 0
        while kills < KILLS:
            leader = wait_for(
                lambda: next((b for b in brains if is_leader(b)), None), 15, "a leader"
            )
            leader.kill()
            kills += 1
            follower = next(b for b in brains if b is not leader)
            wait_for(lambda f=follower: is_leader(f), 10, "the follower to take the lead")
            time.sleep(1.0)
            leader.start()  # same port: the agent reconnects if it was on this one
            wait_for(lambda: live_agents(brains[1]), 60, "the agent to reconnect")
            time.sleep(1.5)
        any_brain: BrainProcess = brains[0]
        any_brain.api("POST", "/api/v1/schedules/tick/pause", {"note": "end of test"})
        settled = wait_for(
            lambda: (
                all(f["state"] not in ("pending", "delivering") for f in fires(any_brain, "tick"))
                and fires(any_brain, "tick")
            ),
            60,
            "every fire to be answered",
        )
        time.sleep(1.0)  # the consumer runs the last enqueued tasks
        wanted = {f["fire_id"] for f in settled}
        deadline = time.monotonic() + 30
        while not set(sink.counts()) >= wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        counts = sink.counts()
    finally:
        if sink is not None:
            sink.stop()
        for brain in brains:
            brain.stop()
    slots = [f["slot"] for f in settled]
    assert len(slots) >= KILLS * 3
    # Every second from the first slot to the last has exactly one fire row...
    assert slots == [slots[0] + i for i in range(len(slots))], slots
    states = {f["fire_id"]: f["state"] for f in settled}
    print(f"{KILLS} kills: {len(slots)} slots, fires {dict(Counter(states.values()))}")
    assert set(states.values()) <= {"enqueued", "duplicate"}, states
    # ...and ran exactly once at the sink: none twice, none missing.
    twice = {fid: n for fid, n in counts.items() if n > 1}
    assert not twice, twice
    missing = [f for f in settled if f["fire_id"] not in counts]
    assert not missing, missing
    assert set(counts) == set(states), set(counts) - set(states)
