"""A reconnect storm, reduced for CI: 200 simulated agents (real `Link`s, real tokens, the signed
handshake) on a real brain that is stopped with SIGTERM and started again on the same port and
database. Every agent comes back and its batches are stored once; the brain answers `/healthz`
and its API throughout (the jitter that spreads the storm is pinned in the agent's own tests).
The full 1,000-agent run with figures is `bench/bench_storm.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from z4j_core.testing.storm import run_storm

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
