"""A short soak for CI: 45 s at 1,000 events per second from two agent processes and 20 fires per
second into a real Huey consumer, on a real brain. Nothing lost, nothing stored or run twice,
and no process's memory keeps growing. The ten-minute run at full rates is `bench/soak.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from z4j_core.testing.soak import SoakPlan, run_soak

pytest.importorskip("huey", reason="the soak fires into a Huey consumer: pip install huey")

PLAN = SoakPlan(seconds=45, events_per_s=1000, emitters=2, schedules=20, sample_every=5)
#: Resident memory may grow this much over the second half whatever the first half did
#: (allocator arenas, SQLite's page cache): a leak of 1 KiB per event would exceed it.
MEMORY_FLOOR_MIB = 25.0


def growth(samples: list[dict[str, Any]], pick: Any) -> tuple[float, float]:
    """Growth of a figure over the first half of the samples and over the second."""
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    return pick(middle) - pick(first), pick(last) - pick(middle)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_short_soak_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    found = run_soak(tmp_path, PLAN)
    totals, samples = found["totals"], found["samples"]
    for sample in samples:
        sys.stderr.write(f"{sample}\n")

    expected_events = int(PLAN.events_per_s * PLAN.seconds)
    assert totals["events_sent"] == expected_events
    assert totals["events_dropped"] == 0
    assert totals["events_acked"] == expected_events
    assert totals["events_stored"] == expected_events, "an event was lost or stored twice"
    assert totals["events_stored_distinct"] == expected_events

    assert totals["fires_expected"] == PLAN.schedules * PLAN.seconds
    assert totals["fire_rows"] == totals["fires_expected"]
    assert totals["doubled"] == 0, "a slot ran twice"
    assert totals["missing"] == 0, "a slot never ran"
    assert totals["fires"] == totals["fires_expected"]

    assert len(samples) == PLAN.seconds // PLAN.sample_every
    assert all(s["brain_rss_mib"] is not None for s in samples)
    processes: list[tuple[str, Any]] = [("brain", lambda s: s["brain_rss_mib"])]
    processes += [
        (name, lambda s, i=i: s["agent_rss_mib"][i]) for i, name in enumerate(found["agents"])
    ]
    for name, pick in processes:
        early, late = growth(samples, pick)
        assert late <= max(0.5 * early, MEMORY_FLOOR_MIB), (
            f"{name}'s memory grew {late:.1f} MiB over the second half ({early:.1f} MiB over "
            "the first)"
        )
