"""Agent <-> brain faults with real processes and a TCP proxy between them: a link cut mid-batch,
a half-open (blackholed) link, a brain frozen with SIGSTOP, and the host's side of a blackholed
brain (task latency, shutdown). Every event is counted in the brain's database by task id.

Recovery and detection times are printed (`-s` shows them), never asserted beyond generous
deadlines; bench/bench_faults.py runs the same scenarios at larger counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from z4j_core.agent.outbox import SEGMENT_EVENTS
from z4j_core.testing.faults.harness import print_figure
from z4j_core.testing.faults.link import (
    blackhole,
    brain_stopped,
    cut_mid_batch,
    host_latency,
    shutdown_while_blackholed,
)

pytestmark = [pytest.mark.timeout(240)]

MEMORY_EVENTS = 1000  # the smallest bound the agent accepts: the spool surely takes over
#: A small window and batch announced by the brain keep the in-flight share of memory small.
WINDOW, BATCH = 2, 500
BRAIN_LIMITS = {"Z4J_WINDOW": str(WINDOW), "Z4J_MAX_BATCH_EVENTS": str(BATCH)}
#: Events an agent may hold in memory: its bound, a window of batches in flight, one segment.
IN_MEMORY_BOUND = MEMORY_EVENTS + WINDOW * BATCH + SEGMENT_EVENTS


def test_link_cut_mid_batch_stores_every_event_exactly_once(tmp_path: Path) -> None:
    figures = cut_mid_batch(tmp_path, count=10_000, rate=2000, cuts=2)
    print_figure("cut mid-batch", **figures)
    assert all(n > 0 for n in figures["unacked_at_cut"]), "no batch was in flight at a cut"
    assert figures["agent_dropped"] == 0 and figures["agent_errors"] == 0
    assert figures["lost"] == 0, f"{figures['lost']} events never reached the store"
    assert figures["stored_twice"] == 0, "a resent batch was stored twice"
    assert figures["acked"] == figures["events"]


def test_half_open_link_is_detected_and_nothing_is_lost(tmp_path: Path) -> None:
    env = {"Z4J_MAX_MEMORY_EVENTS": str(MEMORY_EVENTS)}
    figures = blackhole(
        tmp_path, count=20_000, rate=2500, hole_seconds=6, extra_env=env, brain_env=BRAIN_LIMITS
    )
    print_figure("blackhole", **figures)
    # (detection itself is asserted inside: the agent must drop the link within the deadline)
    assert figures["lost"] == 0 and figures["stored_twice"] == 0
    assert figures["agent_dropped"] == 0 and figures["agent_errors"] == 0
    assert figures["spooled_bytes_in_hole"] > 0, "the hole never pushed events to the spool"
    # In the hole, memory held at most the bound, the window of batches in flight and the
    # segment being filled, however much piled up; the rest waited in the spool.
    assert figures["emitted_in_hole"] > IN_MEMORY_BOUND, "too little piled up to test the bound"
    assert figures["max_pending_in_hole"] <= IN_MEMORY_BOUND


def test_half_open_link_past_every_bound_counts_and_reports_its_drops(tmp_path: Path) -> None:
    env = {"Z4J_MAX_MEMORY_EVENTS": str(MEMORY_EVENTS), "Z4J_MAX_SPOOL_BYTES": "200000"}
    figures = blackhole(
        tmp_path, count=12_000, rate=1500, hole_seconds=6, extra_env=env, brain_env=BRAIN_LIMITS
    )
    print_figure("blackhole past the spool bound", **figures)
    assert figures["agent_dropped"] > 0, "the spool bound was never reached"
    # Nothing lost silently: every missing event is one the agent counted and told the brain.
    assert figures["lost"] == figures["agent_dropped"]
    assert figures["brain_dropped_total"] == figures["agent_dropped"]
    assert figures["stored_twice"] == 0
    assert figures["max_pending_in_hole"] <= IN_MEMORY_BOUND


def test_brain_that_stops_answering_without_closing(tmp_path: Path) -> None:
    figures = brain_stopped(tmp_path, count=10_000, rate=1000, stop_seconds=6)
    print_figure("brain SIGSTOP", **figures)
    assert figures["lost"] == 0 and figures["stored_twice"] == 0
    assert figures["agent_dropped"] == 0 and figures["agent_errors"] == 0


@pytest.mark.parametrize("hole", [False, True], ids=["healthy", "blackholed"])
def test_tasks_run_on_while_the_brain_blackholes_the_agent(tmp_path: Path, hole: bool) -> None:
    figures = host_latency(tmp_path, tasks=1000, hole=hole)
    print_figure("worker loop", **figures)
    # Every task ran to completion with the agent attached and the brain unreachable: emit
    # returned each time (a blocking emit would hang the loop until the host's deadline).
    assert figures["tasks"] == 1000
    assert figures["agent_errors"] == 0 and figures["agent_dropped"] == 0
    assert figures["stop_s"] < 5 + 10  # the default drain timeout, generously


@pytest.mark.parametrize("drain_timeout", [0.5, 2.0])
def test_stop_while_blackholed_returns_within_the_drain_timeout_and_keeps_events(
    tmp_path: Path, drain_timeout: float
) -> None:
    figures = shutdown_while_blackholed(tmp_path, drain_timeout=drain_timeout)
    print_figure("stop while blackholed", **figures)
    assert figures["stop_s"] < drain_timeout + 10
    assert figures["pending_at_stop"] > 0, "nothing was pending: the stop drained nothing"
    # What could not be sent was spooled and a later agent of the host delivered it.
    assert figures["lost"] == 0 and figures["stored_twice"] == 0
    assert figures["agent_dropped"] == 0
