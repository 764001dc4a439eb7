"""A reconnect storm, reduced for CI: 200 simulated agents (real `Link`s, real tokens, the signed
handshake) on a real brain that is stopped with SIGTERM and started again on the same port and
database. Every agent comes back and its batches are stored once; the brain answers `/healthz`
and its API throughout; the reconnect delays that spread the storm are uniformly jittered. The
full 1,000-agent run with figures is `bench/bench_storm.py`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from storm_harness import run_storm

from z4j_core.agent import link as link_module
from z4j_core.agent.config import AgentConfig
from z4j_core.agent.link import Link
from z4j_core.agent.outbox import Outbox

AGENTS = 200


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_agent_comes_back_after_a_brain_restart(tmp_path: Path) -> None:
    result = run_storm(tmp_path, AGENTS, hosts=2, tokens=4, deadline=180)

    assert result.all_back
    assert sorted(result.reopens) == list(range(AGENTS)), "an agent never reconnected"
    # Every agent's two batches (one per session) stored exactly once: nothing lost, nothing
    # stored twice, no agent confused with another.
    assert len(result.instances) == AGENTS
    assert result.events_by_agent == dict.fromkeys(result.instances, 2)
    # The brain answered every probe from the moment it was back until after the last agent.
    after = result.probes_after_back()
    last_reopen = max(result.reopens.values())
    for route in ("/healthz", "/api/v1/tasks?limit=10"):
        during = [p for p in after if p.route == route and p.t <= last_reopen]
        assert during, f"no probe of {route} during the storm"
    assert result.unanswered_after_back() == []
    # The stopped agents say how they fared: two sessions each, every event acknowledged.
    assert len(result.finals) == AGENTS
    assert {(a["opens"], a["acked"]) for a in result.finals} == {(2, 2)}


def test_reconnect_delays_are_spread_by_full_jitter() -> None:
    """What spreads a storm: each failed attempt waits a uniform random delay in [0, bound], the
    bound doubling from BACKOFF_BASE to BACKOFF_CAP, so agents cut at one instant do not come
    back at one instant. (No clock involved: the delays asked for are recorded, not waited.)"""
    attempts = 8
    config = AgentConfig(token="t" * 43, spool_dir="/nonexistent")

    def delays_of_one_agent() -> list[float]:
        link = Link(config, lambda: None, Outbox(1000), records=None, on_command=print)
        asked: list[float] = []

        async def refused() -> None:
            raise ConnectionRefusedError("the brain is away")

        async def record(seconds: float) -> None:
            asked.append(seconds)
            if len(asked) == attempts:
                link._stopping = True

        link._connect_and_pump = refused
        link._sleep = record
        asyncio.run(link.run())
        return asked

    agents = [delays_of_one_agent() for _ in range(AGENTS)]
    for attempt in range(attempts):
        bound = min(link_module.BACKOFF_CAP, link_module.BACKOFF_BASE * 2 ** (attempt + 1))
        delays = [agent[attempt] for agent in agents]
        assert all(0 <= d <= bound for d in delays)
        # Uniform over [0, bound]: 200 agents fill both halves of it (all in one half has a
        # probability of 2**-199).
        assert min(delays) < bound / 2 < max(delays)
