"""Faults around a real Huey consumer and the scheduler: agents minutes off the brain's clock,
a worker stopped while its brain is blackholed, Postgres cut or blackholed under the leader.

Figures are printed (`-s` shows them); bench/bench_faults.py runs the same at larger counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.testing.faults.engine import clock_skew, postgres_cut, worker_stop_while_blackholed
from z4j_core.testing.faults.harness import print_figure

pytestmark = [pytest.mark.timeout(300)]

#: Postgres faults per run: a few in CI; bench/bench_faults.py does more.
PG_FAULTS = int(os.environ.get("Z4J_TEST_PG_FAULTS", "2"))


@pytest.mark.parametrize("offset", [-420.0, 420.0], ids=["7min-behind", "7min-ahead"])
def test_minutes_of_clock_skew_change_nothing(tmp_path: Path, offset: float) -> None:
    figures = clock_skew(tmp_path, offset)
    print_figure("clock skew", **figures)
    # The handshake, every signed frame and every ack worked: all events stored, once each.
    assert figures["stored"] == figures["events"] == figures["stored_rows"]
    assert figures["acked"] == figures["events"]
    # `at` is stored as the agent sent it (its own clock, for display); `stored_at` is the
    # brain's. Their difference is the skew, give or take the seconds of the trip.
    assert abs(figures["at_minus_stored_at_min_s"] - offset) < 30
    assert abs(figures["at_minus_stored_at_max_s"] - offset) < 30
    # Fires reached the skewed consumer and each ran once.
    assert figures["fires"] >= 3
    assert figures["fire_states"] == {"enqueued": figures["fires"]}
    assert figures["fires_run"] == figures["fires"] and figures["fires_run_twice"] == 0


def test_worker_shutdown_is_not_held_by_a_blackholed_brain(tmp_path: Path) -> None:
    drain_timeout = 2.0
    figures = worker_stop_while_blackholed(tmp_path, drain_timeout=drain_timeout)
    print_figure("huey consumer SIGTERM while blackholed", **figures)
    assert figures["exited"] and figures["exit_code"] == 0
    assert figures["shutdown_s"] < drain_timeout + 10


@pytest.fixture
def database() -> Iterator[str]:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("faults") as url:
        yield url


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["cut", "blackhole"])
def test_postgres_lost_under_the_leader_fires_each_slot_once(
    tmp_path: Path, database: str, mode: str
) -> None:
    faults = PG_FAULTS if mode == "cut" else max(1, PG_FAULTS // 2)
    figures = postgres_cut(tmp_path, database, faults=faults, mode=mode, outage=3.0)
    print_figure(f"postgres {mode}", **figures)
    # Every second of the window has one fire row, and each ran exactly once at the sink.
    # Each assertion names every figure, so a failure's one-line summary says what happened.
    assert figures["slots"] >= 3 * faults, figures
    assert figures["slot_gaps"] == [] and figures["slots_doubled"] == 0, figures
    assert set(figures["fire_states"]) <= {"enqueued", "duplicate"}, figures
    assert figures["runs_twice"] == 0, figures
    assert figures["never_run"] == [], figures
    assert figures["leaders_at_end"] == 1, figures
