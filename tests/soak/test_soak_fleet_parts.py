"""The fleet soak's own logic, without services: the fault timeline, the event ledger and the
memory verdict (z4j_core/testing/soak_fleet.py). The soak itself is test_soak_fleet.py."""

from __future__ import annotations

from z4j_core.testing.soak_fleet import FLAT_FLOOR_MIB, EventLedger, FaultPlan, memory_verdict


def test_issue_26_periods_for_an_hour_and_every_kind_in_a_short_run() -> None:
    hour = FaultPlan.for_run(3600)
    assert (hour.leader_kill_every, hour.restart_every, hour.cut_every) == (300, 420, 180)
    kinds = [kind for _, kind in hour.timeline(3600)]
    assert kinds.count("leader_kill") == 11  # +5 .. +55 min
    assert kinds.count("brain_restart") == 8  # +7 .. +56 min
    assert kinds.count("link_cut") == 19  # +3 .. +57 min

    for seconds in (60, 90, 120, 300):
        timeline = FaultPlan.for_run(seconds).timeline(seconds)
        assert {kind for _, kind in timeline} == {"leader_kill", "brain_restart", "link_cut"}
        assert all(0 < at < seconds for at, _ in timeline)
        assert [at for at, _ in timeline] == sorted(at for at, _ in timeline)


def test_the_ledger_tells_once_twice_never_and_foreign() -> None:
    ledger = EventLedger({"e0": 6, "e1": 3})  # e0: tasks 0-1, e1: task 0 (3 kinds each)
    for kind in ("received", "started", "succeeded"):
        ledger.add("e0-000000000", kind)
    ledger.add("e0-000000001", "received")
    ledger.add("e0-000000001", "received")  # stored twice
    ledger.add("e1-000000000", "started")
    ledger.add("e9-000000000", "started")  # no such emitter
    ledger.add("e1-000000007", "started")  # beyond what e1 sent
    ledger.add("e1-000000000", "retried")  # a kind the emitters never send
    assert ledger.tally() == {"stored_once": 4, "stored_twice": 1, "never_stored": 4}
    assert ledger.foreign == 3


def test_the_memory_verdict_tells_a_leak_from_noise_and_skips_short_lives() -> None:
    every_10s = range(0, 1200, 10)
    flat = [(t, 60.0 + (3.0 if (t // 10) % 2 else 0.0)) for t in every_10s]  # 3 MiB of noise
    leak = [(t, 60.0 + t / 30) for t in every_10s]  # 2 MiB a minute
    restarted = [(t, 50.0 + (20.0 if t < 650 else 0.0)) for t in range(600, 1200, 10)]
    brief = [(t, 40.0) for t in range(900, 960, 10)]  # killed soon after its start
    found = memory_verdict(
        {"flat[1]": flat, "leak[2]": leak, "brain[3]": restarted, "horse[4]": brief},
        warm_up=300,
        seconds=1200,
    )
    assert found["flat[1]"]["flat"] is True
    assert abs(found["flat[1]"]["slope_mib_per_min"]) < 0.1
    assert found["leak[2]"]["flat"] is False
    assert abs(found["leak[2]"]["slope_mib_per_min"] - 2.0) < 1e-6
    assert found["leak[2]"]["growth_mib"] > FLAT_FLOOR_MIB
    # A process started during the run warms up for a minute from its first sample.
    assert found["brain[3]"]["from_s"] == 660 and found["brain[3]"]["flat"] is True
    assert "horse[4]" not in found
