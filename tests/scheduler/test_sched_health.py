"""Schedules an operator can trust, on a real brain process (SQLite) with real Huey consumers:
create and edit are checked against what the agents reported (with a did-you-mean, and
``--force`` for an app not deployed yet), each schedule's health says what is wrong, a schedule
pauses itself after N failures, the overlap policies hold on real task runs, and a native
schedule two agents report is listed once.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.sink import (
    SINK_FAIL_TASK,
    SINK_NATIVE_TASK,
    SINK_SLOW_TASK,
    SINK_TASK,
    Sink,
    fires,
    live_agents,
    make_brain,
)
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def brain(tmp_path: Path) -> Any:
    process = make_brain(tmp_path / "brain")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def sink(brain: BrainProcess, tmp_path: Path) -> Any:
    running = Sink(tmp_path / "sink", brain.url, brain.create_token("sink"))
    try:
        wait_for(lambda: live_agents(brain), 30, "the sink's agent")
        wait_for(lambda: _reported(brain, SINK_TASK), 30, "the sink's inventory")
        yield running
    finally:
        running.stop()


def _reported(brain: BrainProcess, task: str) -> bool:
    inventories = brain.api("GET", "/api/v1/inventory")["inventory"]
    return any(task in {t["name"] for t in i["tasks"]} for i in inventories)


def _z4j(brain: BrainProcess, *args: str, check: bool = True) -> Any:
    return brain.cli(*args, "--brain-url", brain.http_url, check=check)


def _add(brain: BrainProcess, name: str, task: str, *extra: str, check: bool = True) -> Any:
    return _z4j(brain, "schedules", "add", name, "--task", task, "--engine", "huey", "--app",
                "sink", *extra, check=check)  # fmt: skip


def _one_line(result: Any) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return str(lines[0])


def _show(brain: BrainProcess, name: str) -> dict[str, Any]:
    shown: dict[str, Any] = brain.api("GET", f"/api/v1/schedules/{name}")
    return shown


def test_unknown_task_is_refused_with_a_suggestion_and_force_shows_why(
    brain: BrainProcess, sink: Sink
) -> None:
    typo = SINK_TASK + "d"
    line = _one_line(_add(brain, "typo", typo, "--every", "1h", check=False))
    assert f"unknown task '{typo}' for huey/sink; did you mean {SINK_TASK}?" in line, line
    assert "--force" in line
    line = _one_line(_z4j(brain, "schedules", "add", "typo", "--task", SINK_TASK, "--engine",
                          "hueyy", "--app", "sink", "--every", "1h", check=False))  # fmt: skip
    assert "unknown engine 'hueyy'; did you mean huey?" in line, line
    line = _one_line(_z4j(brain, "schedules", "add", "typo", "--task", SINK_TASK, "--engine",
                          "huey", "--app", "snk", "--every", "1h", check=False))  # fmt: skip
    assert "unknown app 'snk' for huey; did you mean sink?" in line, line
    assert brain.api("GET", "/api/v1/schedules")["schedules"] == []
    forced = _add(brain, "typo", typo, "--every", "1h", "--force")
    assert f"warning: unknown task '{typo}'" in forced.stderr, forced.stderr
    health = _show(brain, "typo")["health"]
    assert health["problems"] and "did you mean" in health["problems"][0], health
    listing = _z4j(brain, "schedules", "list").stdout
    assert "active: unknown task" in listing, listing  # the table cuts long cells
    shown = _z4j(brain, "schedules", "show", "typo").stdout
    assert f"did you mean {SINK_TASK}?" in shown, shown
    # An edit to a task the agents know is taken, and the problem goes.
    _z4j(brain, "schedules", "edit", "typo", "--task", SINK_TASK)
    assert _show(brain, "typo")["health"]["problems"] == []


def test_a_failing_schedule_shows_failing_then_pauses_itself_with_a_note(
    brain: BrainProcess, sink: Sink
) -> None:
    _add(brain, "fails", SINK_FAIL_TASK, "--every", "1s")
    _add(brain, "stops", SINK_FAIL_TASK, "--every", "1s", "--pause-after-failures", "3")
    failing = wait_for(
        lambda: (h := _show(brain, "fails")["health"])["state"] == "failing" and h,
        30,
        "'fails' to show failing",
    )
    assert failing["consecutive_failures"] >= 1 and failing["last_fire"] is not None
    paused = wait_for(lambda: not (s := _show(brain, "stops"))["enabled"] and s, 30,
                      "'stops' to pause itself")  # fmt: skip
    # Outcomes arrive in batches: the count that crossed the threshold may already be past it.
    note = re.match(r"paused after (\d+) consecutive failures: fire ", paused["pause_note"])
    assert note and int(note[1]) >= 3, paused
    assert "failed: RuntimeError" in paused["pause_note"]
    assert paused["health"]["state"] == "paused"
    assert paused["health"]["consecutive_failures"] >= 3
    audit = brain.api("GET", "/api/v1/audit?limit=1000")["audit"]
    pauses = [r for r in audit if r["action"] == "schedule.pause" and r["target"] == "stops"]
    assert [r["actor"] for r in pauses] == ["scheduler"], pauses
    listing = _z4j(brain, "schedules", "list").stdout
    assert f"paused: paused after {note[1]} consecutive failures" in listing, listing
    assert "failing: its last" in listing, listing
    shown = _z4j(brain, "schedules", "show", "stops").stdout
    assert "(pauses after 3)" in shown, shown
    _z4j(brain, "schedules", "pause", "fails")
    # A resume starts the count again: it is not paused at once by the old failures.
    _z4j(brain, "schedules", "resume", "stops")
    time.sleep(1.5)
    assert _show(brain, "stops")["enabled"] is True
    line = _one_line(_z4j(brain, "schedules", "edit", "stops", "--pause-after-failures", "many",
                          check=False))  # fmt: skip
    assert "--pause-after-failures 'many' must be 1 to 1000, or 'off'" in line, line
    _z4j(brain, "schedules", "edit", "stops", "--pause-after-failures", "off")
    assert _show(brain, "stops")["pause_after_failures"] is None


def test_no_agent_shows_and_a_missed_fire_is_logged_by_name(brain: BrainProcess) -> None:
    _z4j(brain, "schedules", "add", "ghostly", "--task", "ghost.task", "--engine", "huey",
         "--app", "ghost", "--every", "1s", "--misfire-grace", "1s", "--force")  # fmt: skip
    health = _show(brain, "ghostly")["health"]
    assert health["state"] == "no agent" and "no connected agent" in health["note"], health
    wait_for(lambda: "schedule ghostly missed its slot" in brain.log_path.read_text(), 40,
             "the missed fire in the brain's log")  # fmt: skip


def _runs(brain: BrainProcess, name: str) -> list[tuple[float, float]]:
    """(start, finish) of each finished task run of the schedule, by start."""
    runs = [(f["task_finished_at"] - f["task_runtime"], f["task_finished_at"])
            for f in fires(brain, name) if f["task_state"] == "succeeded"]  # fmt: skip
    return sorted(runs)


def test_overlap_skip_and_buffer_one_on_real_runs(brain: BrainProcess, sink: Sink) -> None:
    for name, policy in (("skipper", "skip"), ("buffered", "buffer-one")):
        _add(brain, name, SINK_SLOW_TASK, "--every", "1s", "--kwargs", '{"seconds": 2.5}',
             "--overlap", policy)  # fmt: skip
    wait_for(lambda: len(_runs(brain, "skipper")) >= 3 and len(_runs(brain, "buffered")) >= 3,
             60, "three runs of each")  # fmt: skip
    for name in ("skipper", "buffered"):
        _z4j(brain, "schedules", "pause", name)
    for name in ("skipper", "buffered"):
        runs = _runs(brain, name)
        # Four consumer threads could run them side by side; the policy keeps them one at a
        # time (the runtime is measured inside the task, so allow a little slack around it).
        for (_, finished), (started, _) in itertools.pairwise(runs):
            assert started >= finished - 0.3, (name, runs)
    skipper = fires(brain, "skipper")
    skipped = [f for f in skipper if f["state"] == "skipped"]
    assert skipped and all(f["decision"].startswith("previous fire still ")
                           for f in skipped), skipper  # fmt: skip
    history = _z4j(brain, "schedules", "history", "skipper", "--limit", "100").stdout
    assert "skipped" in history and "previous fire still" in history, history
    buffered = fires(brain, "buffered")
    # History keeps each slot's decision: a buffered fire that was later enqueued says so.
    waited = [f for f in buffered
              if f["decision"].startswith("waits for the previous fire to finish")]  # fmt: skip
    assert any(f["state"] == "enqueued" for f in waited), buffered
    assert all(f["decision"].endswith("overlap buffer-one") for f in waited)
    assert any(f["state"] == "skipped" and f["decision"].startswith("one already waits")
               for f in buffered)  # fmt: skip
    assert all(f["decision"] == "" for f in buffered if f["state"] == "enqueued"
               and f not in waited)  # fmt: skip


def test_overlap_cancel_previous_on_real_runs(brain: BrainProcess, tmp_path: Path) -> None:
    """One consumer thread: the first run of a slow task cannot be stopped (huey cancels only
    queued tasks, it does not advertise terminate), so the next fire queues behind it; each
    later slot cancels the queued one before it. Each slot's decision is in history, and each
    cancel is an audited action of the scheduler."""
    sink = Sink(tmp_path / "one", brain.url, brain.create_token("one"), workers=1)
    try:
        wait_for(lambda: _reported(brain, SINK_SLOW_TASK), 30, "the sink's inventory")
        _add(brain, "canceller", SINK_SLOW_TASK, "--every", "1s", "--kwargs",
             '{"seconds": 4}', "--overlap", "cancel-previous")  # fmt: skip

        def cancelled() -> list[dict[str, Any]]:
            return [f for f in fires(brain, "canceller")
                    if f["decision"].startswith("cancel-previous: cancelled task ")]  # fmt: skip

        try:
            wait_for(lambda: len(cancelled()) >= 2, 60, "two previous runs cancelled")
        except AssertionError:
            decided = [(f["state"], f["task_state"], f["decision"])
                       for f in fires(brain, "canceller")]  # fmt: skip
            raise AssertionError(f"no two cancels in {decided}") from None
        _z4j(brain, "schedules", "pause", "canceller")
        history = fires(brain, "canceller")
        stuck = [f for f in history if "is running and could not be stopped" in f["decision"]]
        assert stuck and "'terminate'" in stuck[0]["decision"], history
        assert all(f["state"] != "skipped" for f in history), history  # every slot fired
        # The cancelled task is the one of the fire just before, and it never ran.
        by_task = {f["native_id"]: f for f in history if f["native_id"]}
        for fire in cancelled():
            task_id = fire["decision"].split()[3]
            victim = by_task[task_id]
            assert victim["slot"] < fire["slot"], (victim, fire)
            assert victim["task_state"] != "succeeded", victim
        audit = brain.api("GET", "/api/v1/audit?limit=1000")["audit"]
        cancels = [r for r in audit if r["action"] == "task.cancel"]
        assert len(cancels) >= 2 and {r["actor"] for r in cancels} == {"scheduler"}, cancels
        shown = _z4j(brain, "schedules", "history", "canceller", "--limit", "100").stdout
        assert "cancel-previous: cancelled task" in shown, shown
    finally:
        sink.stop()


def test_a_native_schedule_two_agents_report_is_listed_once(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("sinks")
    sinks = [Sink(tmp_path / f"sink{n}", brain.url, token) for n in (1, 2)]
    try:
        wait_for(lambda: live_agents(brain) >= 2, 30, "both agents")

        def native() -> list[dict[str, Any]]:
            listed = brain.api("GET", "/api/v1/observed")["observed"]
            return [o for o in listed if o["task"] == SINK_NATIVE_TASK]

        both = wait_for(lambda: (n := native()) and len(n[0]["agents"]) == 2 and n, 30,
                        "both agents' reports")  # fmt: skip
        assert len(both) == 1 and not both[0]["stale"], both
        listing = _z4j(brain, "schedules", "list", "--all").stdout
        lines = [line for line in listing.splitlines() if SINK_NATIVE_TASK in line]
        assert len(lines) == 1, listing
        assert "observed (huey_periodic, read-only) 2/2 agents" in lines[0], listing
        sinks[1].stop()
        wait_for(lambda: live_agents(brain) == 1, 30, "one agent gone")
        one = native()
        assert len(one) == 1 and [a["connected"] for a in one[0]["agents"]].count(True) == 1
        assert json.dumps(one)  # the JSON form of the listing is what --json prints
    finally:
        for sink in sinks:
            sink.stop()


def test_backfill_fires_each_missing_slot_once_paced_and_audited(
    brain: BrainProcess, sink: Sink
) -> None:
    created = datetime.now(timezone.utc).replace(microsecond=0)
    anchor = (created - timedelta(minutes=5)).isoformat()  # slots before the schedule was made
    _add(brain, "back", SINK_TASK, "--every", "1s", "--anchor", anchor)
    wait_for(lambda: len(fires(brain, "back")) >= 3, 30, "live fires")
    start = created - timedelta(seconds=20)  # 20 slots before the schedule existed
    end = created + timedelta(seconds=2)  # and some the live leader fired
    span = ("--from", start.isoformat(), "--to", end.isoformat())
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    line = _one_line(_z4j(brain, "schedules", "backfill", "back", "--from", start.isoformat(),
                          "--to", future, check=False))  # fmt: skip
    assert "is after now" in line, line
    dry = json.loads(_z4j(brain, "schedules", "backfill", "back", *span, "--dry-run",
                          "--json").stdout)  # fmt: skip
    assert len(dry["slots"]) == 23 and dry["fired"] == 0
    todo = [s["fire_id"] for s in dry["slots"] if s["had_fire"] is None]
    # The 20 before `created`, and those between it and the moment the CLI made the schedule.
    before = {s["fire_id"] for s in dry["slots"] if datetime.fromisoformat(s["slot"]) < created}
    assert len(before) == 20 and before <= set(todo), dry["slots"]
    assert not any(f["kind"] == "backfill" for f in fires(brain, "back"))  # nothing fired

    # Two backfills at once, racing each other and the live leader: each slot fires once.
    def run(_: int) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(
            _z4j(brain, "schedules", "backfill", "back", *span, "--json").stdout
        )
        return answer

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(run, range(2)))
    assert sum(r["fired"] for r in runs) == len(todo), runs
    wait_for(lambda: set(todo) <= set(sink.counts()), 60, "every backfilled slot to run")
    _z4j(brain, "schedules", "pause", "back")
    again = json.loads(_z4j(brain, "schedules", "backfill", "back", *span, "--json").stdout)
    assert again["fired"] == 0
    time.sleep(1.0)
    counts = sink.counts()
    assert all(counts[fid] == 1 for fid in todo), {fid: counts[fid] for fid in todo}
    backfilled = [f for f in fires(brain, "back") if f["kind"] == "backfill"]
    assert sorted(f["fire_id"] for f in backfilled) == sorted(todo)
    sent = sorted(f["sent_at"] for f in backfilled)
    # Paced 0.2 s apart (delivery takes them by the second): never all at once.
    assert sent[-1] - sent[0] >= (len(todo) - 1) * 0.2 - 1.0, sent
    audit = brain.api("GET", "/api/v1/audit?limit=1000")["audit"]
    rows = [r for r in audit if r["action"] == "schedule.backfill"]
    assert sum(r["after"]["fired"] for r in rows) == len(todo), rows


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_overlap_decisions_hold_across_a_leader_kill(tmp_path: Path) -> None:
    from z4j_core.testing.postgres import temporary_database
    from z4j_core.testing.sink import is_leader

    with temporary_database("overlap") as database:
        brains = [make_brain(tmp_path / name, database) for name in ("a", "b")]
        token = brains[0].create_token("sink")
        sink: Sink | None = None
        try:
            for process in brains:
                process.start()
            sink = Sink(tmp_path / "sink", brains[1].url, token)
            wait_for(lambda: live_agents(brains[1]), 30, "the sink's agent")
            wait_for(lambda: _reported(brains[1], SINK_SLOW_TASK), 30, "the sink's inventory")
            for name, policy in (("skipper", "skip"), ("buffered", "buffer-one")):
                _add(brains[1], name, SINK_SLOW_TASK, "--every", "1s", "--kwargs",
                     '{"seconds": 2}', "--overlap", policy)  # fmt: skip
            wait_for(lambda: len(_runs(brains[1], "skipper")) >= 2, 60, "runs before the kill")
            leader = wait_for(lambda: next((b for b in brains if is_leader(b)), None), 15,
                              "a leader")  # fmt: skip
            killed_at = time.time()
            leader.kill()
            follower = next(b for b in brains if b is not leader)
            wait_for(lambda: is_leader(follower), 15, "the follower to take the lead")
            leader.start()
            wait_for(lambda: live_agents(brains[1]), 60, "the agent on brain b")
            wait_for(lambda: len([r for r in _runs(follower, "skipper") if r[0] > killed_at])
                     >= 2, 60, "runs after the kill")  # fmt: skip
            for name in ("skipper", "buffered"):
                _z4j(follower, "schedules", "pause", name)
            time.sleep(3.0)  # the last runs finish
            for name in ("skipper", "buffered"):
                runs = _runs(follower, name)
                for (_, finished), (started, _) in itertools.pairwise(runs):
                    assert started >= finished - 0.3, (name, runs)
                decided = [f for f in fires(follower, name) if f["decision"]]
                assert any(f["created_at"] > killed_at for f in decided), (name, decided)
            counts = sink.counts()
            assert all(n == 1 for n in counts.values()), counts
        finally:
            if sink is not None:
                sink.stop()
            for process in brains:
                process.stop()
