"""The fire-latency benchmarks' own checks: how slots, missing and doubled runs are counted,
and that `bench/bench_fire_latency.py` writes the report's JSON with every slot fired once.

Behaviour only: no figure is compared with a threshold.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from z4j_core.testing.fire import expected_slots, lateness, result, tally

BENCH = Path(__file__).resolve().parents[2] / "bench"


def fire(sid: str, slot: float, state: str = "enqueued", answered: float | None = None,
         native: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "fire_id": f"{sid}@{slot}", "schedule_id": sid, "kind": "scheduled", "slot": slot,
        "due_at": slot, "state": state, "native_id": native or f"{sid}@{slot}",
        "created_at": slot + 0.001, "sent_at": slot + 0.002,
        "answered_at": answered if answered is not None else slot + 0.010,
    }  # fmt: skip


def test_expected_slots_of_an_interval_inside_a_window() -> None:
    assert expected_slots(0.5, 1.0, 10.0, 13.0) == [10.5, 11.5, 12.5]
    assert expected_slots(10.0, 1.0, 10.0, 12.0) == [10.0, 11.0]  # the start is inside
    assert expected_slots(0.0, 60.0, 10.0, 130.0) == [60.0, 120.0]


def test_tally_counts_missing_doubled_and_executions() -> None:
    slots = {"a": [10.0, 11.0, 12.0], "b": [10.5, 11.5]}
    rows = [
        fire("a", 10.0), fire("a", 11.0, answered=11.25), fire("a", 12.0, state="unknown"),
        fire("b", 10.5), fire("b", 11.5), fire("b", 13.5),  # outside the window: ignored
    ]  # fmt: skip
    runs = Counter({"a@10.0": 1, "a@11.0": 2, "b@10.5": 1})
    counted = tally(rows, slots, runs)
    assert counted.slots == 5
    assert counted.fires == 5
    assert counted.missing == 1  # a@12 was never enqueued
    assert counted.executed_twice == 1 and counted.doubled == 1  # a@11 ran twice
    assert counted.not_executed == 1  # b@11.5 enqueued, never ran
    assert sorted(round(x) for x in counted.latencies_ms) == [10, 10, 10, 250]


def test_tally_counts_two_fires_of_one_slot_as_doubled() -> None:
    rows = [fire("a", 10.0), {**fire("a", 10.0), "fire_id": "other"}]
    counted = tally(rows, {"a": [10.0]}, None)
    assert (counted.missing, counted.doubled, len(counted.latencies_ms)) == (0, 1, 1)


def test_classic_runs_are_bucketed_by_their_own_due_instant() -> None:
    # One schedule every second from 0.0; its runs drift: due 1.0, 2.5, 4.0 leave slot 3
    # without a run (missing), and a repeated due 5.5 doubles slot 5.
    runs = [(0, 1.0, 1.01), (0, 2.5, 2.51), (0, 4.0, 4.02), (0, 5.5, 5.55), (0, 5.5, 5.56)]
    samples, slots, missing, doubled = lateness(runs, [0.0], 1.0, 1.0, 6.0)
    assert slots == 5  # 1, 2, 3, 4, 5
    assert missing == 1
    assert doubled == 1
    assert [round(x) for x in samples] == [10, 10, 20, 50, 60]


def test_result_has_the_report_schema() -> None:
    entry = result({"engine": "huey"}, [3.0, 1.0, 2.0], 0, 0)
    assert set(entry) == {"metric", "config", "unit", "median", "min", "max", "p99", "count",
                          "missing", "doubled", "samples"}  # fmt: skip
    assert (entry["median"], entry["min"], entry["max"], entry["count"]) == (2.0, 1.0, 3.0, 3)


@pytest.mark.redis
def test_bench_fires_every_slot_once_into_huey_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "fire.json"
    # In a session of its own: on a timeout its brain and worker go down with it.
    bench = subprocess.Popen(
        [sys.executable, str(BENCH / "bench_fire_latency.py"), "--engine", "huey",
         "--rate", "10", "--seconds", "3", "--json", str(out)],
        cwd=BENCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(), start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = bench.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        os.killpg(bench.pid, signal.SIGKILL)
        stdout, stderr = bench.communicate()
        raise AssertionError(f"the bench did not finish in 110 s:\n{stdout}{stderr}") from None
    done = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["bench"] == "fire_latency"
    assert set(doc["machine"]) == {"cpus", "loadavg_start", "loadavg_end", "python"}
    (entry,) = doc["results"]
    assert entry["metric"] == "fire_latency" and entry["unit"] == "ms"
    assert entry["config"] == {"engine": "huey", "schedules": 10, "rate_per_s": 10,
                               "seconds": 3}  # fmt: skip
    assert (entry["count"], entry["missing"], entry["doubled"]) == (30, 0, 0)
    assert len(entry["samples"]) == 30
    assert "executions: once 30, never 0, more than once 0" in done.stdout
