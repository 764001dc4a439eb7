"""Scheduler hardening on a real brain process (SQLite) with a real Huey consumer: no schedule
value can stall the leader, one schedule that raises hurts no other, edits never fire slots
from before the edit, references mean one schedule, and every CLI error is one line.

Each test here reproduces a failure seen by hand on the previous release.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from z4j_brain import schedules as sched
from z4j_brain.store import Store
from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.sink import SINK_TASK, Sink, fires, live_agents, make_brain, schedule_body
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _call(brain: BrainProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded body) of an API call, whatever the status."""
    request = urllib.request.Request(
        f"{brain.http_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _one_line_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in named:
        assert text in lines[0], lines[0]


@pytest.fixture
def brain(tmp_path: Path) -> Any:
    process = make_brain(tmp_path / "brain")
    process.start()
    yield process
    process.stop()


def test_out_of_range_values_are_refused_by_name_and_the_leader_keeps_firing(
    brain: BrainProcess, tmp_path: Path
) -> None:
    url = ("--brain-url", brain.http_url)
    base = ("schedules", "add", "p1", "--task", "t", "--engine", "huey", "--app", "a", *url)
    for extra, named in (
        (("--at", "9999-12-31T23:59:59Z", "--jitter", "1h"), "at"),
        (("--every", "0.000001"), "interval"),
        (("--every", "1e300"), "interval"),
        (("--every", "10s", "--jitter", "100000000000000000000"), "jitter"),
        (("--every", "10s", "--misfire-grace", "99999999999d"), "misfire_grace"),
        (("--every", "10s", "--start", "9999-12-31T23:59:59-12:00"), "start"),
        (("--every", "10s", "--tz", "localtime"), "localtime"),
        (("--every", "10s", "--tz", "posixrules"), "posixrules"),
        (("--cron", "30 2/24 8-14 3 0", "--day-and", "--tz", "America/New_York"), "28 years"),
        (("--at", "2020-01-01T00:00:00Z"), "in the past"),
    ):
        _one_line_error(brain.cli(*base, *extra, check=False), *([named] if named else []))
    # The same values through the API: 400 naming the field, never a 500.
    for spec, named in (
        ({"kind": "interval", "every": 1e300}, "interval"),
        ({"kind": "interval", "every": "10s", "jitter": 1e20}, "jitter"),
        ({"kind": "interval", "every": "10s", "misfire_grace": "99999999999d"}, "misfire_grace"),
        ({"kind": "interval", "every": "10s", "start": "9999-12-31T23:59:59-12:00"}, "start"),
        ({"kind": "oneshot", "at": "9999-12-31T23:59:59Z", "jitter": "1h"}, "at"),
        ({"kind": "interval", "every": "10s", "max_catch_up": 10**12}, "max_catch_up"),
        ({"kind": "cron", "expression": "0 9 * * *", "timezone": ""}, "time zone"),
    ):
        status, answer = _call(brain, "POST", "/api/v1/schedules", schedule_body("p2", spec))
        assert status == 400 and named in answer["error"], (spec, status, answer)
    preview = brain.cli("schedules", "preview", "--every", "1h", "--after",
                        "9999-12-31T23:59:59-12:00", check=False)  # fmt: skip
    _one_line_error(preview, "--after", "out of range")
    assert brain.api("GET", "/api/v1/schedules")["schedules"] == []


def test_a_schedule_that_raises_is_set_aside_and_the_others_fire_on_time(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("sink")
    sink = Sink(tmp_path / "sink", brain.url, token)
    try:
        wait_for(lambda: live_agents(brain), 30, "the sink's agent")
        # Rows the API would refuse, put into the store directly: an unreadable spec, and one
        # whose timing the core refuses when the leader reads it.
        store = Store.open(brain.database)
        try:
            with store.transaction():
                bad_rows = (
                    ("bad1", {"kind": "weekly"}),
                    ("bad2", {"kind": "oneshot", "at": "9999-12-31T23:59:59Z", "jitter": 3600}),
                )
                for sid, spec in bad_rows:
                    store.conn.execute(
                        "INSERT INTO schedules (schedule_id, name, task, engine, app, spec, "
                        "cursor, created_at, created_by, updated_at, updated_by) "
                        "VALUES (?, ?, ?, 'huey', 'sink', ?, ?, ?, 't', ?, 't')",
                        (sid, f"{sid}-name", SINK_TASK, json.dumps(spec), time.time(),
                         time.time(), time.time()),
                    )  # fmt: skip
        finally:
            store.close()
        spec = {"kind": "interval", "every": "1s"}
        brain.api("POST", "/api/v1/schedules", schedule_body("healthy", spec))
        started = time.time()
        wait_for(
            lambda: all(
                item["state"] == "broken"
                for item in brain.api("GET", "/api/v1/schedules")["schedules"]
                if item["id"].startswith("bad")
            ),
            15,
            "both bad rows to be marked broken",
        )
        time.sleep(4)
        slots = [f["slot"] for f in fires(brain, "healthy") if f["state"] == "enqueued"]
        expected = {float(s) for s in range(int(started) + 2, int(time.time()) - 1)}
        assert expected <= set(slots), (sorted(expected - set(slots)), brain_log(brain))

        shown = {i["id"]: i for i in brain.api("GET", "/api/v1/schedules")["schedules"]}
        assert "unknown schedule kind 'weekly'" in shown["bad1"]["broken"]
        assert "at" in shown["bad2"]["broken"] and shown["bad2"]["broken_at"]
        status, refused = _call(brain, "POST", "/api/v1/schedules/bad1/trigger", {})
        assert status == 409 and "cannot be read" in refused["error"], (status, refused)
        one = brain.api("GET", "/api/v1/schedules/bad2")  # answers, not a 500
        assert one["state"] == "broken" and one["next_slots"] == []
        listing = brain.cli("schedules", "list", "--brain-url", brain.http_url)
        assert "broken: unknown schedule kind" in listing.stdout, listing.stdout
        shown_cli = brain.cli("schedules", "show", "bad2-name", "--brain-url", brain.http_url)
        assert "broken:" in shown_cli.stdout
        metrics = urllib.request.urlopen(f"{brain.http_url}/metrics", timeout=5).read().decode()
        assert re.search(r"^z4j_schedules_broken 2(\.0)?$", metrics, re.M), metrics
        assert brain_log(brain).count("is broken and set aside") == 2  # logged once each

        # An edit clears it: the leader tries again, and it fires.
        brain.api("PATCH", "/api/v1/schedules/bad1", {"schedule": spec})
        wait_for(lambda: fires(brain, "bad1"), 10, "the mended schedule to fire")
        assert brain.api("GET", "/api/v1/schedules/bad1")["state"] == "active"
    finally:
        sink.stop()


def brain_log(brain: BrainProcess) -> str:
    return brain.log_path.read_text(errors="replace")


def test_an_edit_never_fires_the_slots_before_it(brain: BrainProcess, tmp_path: Path) -> None:
    token = brain.create_token("sink")
    sink = Sink(tmp_path / "sink", brain.url, token)
    try:
        wait_for(lambda: live_agents(brain), 30, "the sink's agent")
        yearly = {"kind": "cron", "expression": "0 0 1 1 *"}
        brain.api("POST", "/api/v1/schedules", schedule_body("edited", yearly))
        time.sleep(6)  # slots of a per-second schedule would lie here, before the edit
        edited_at = time.time()
        edited = brain.api("PATCH", "/api/v1/schedules/edited",
                           {"schedule": {"kind": "interval", "every": "1s"}})  # fmt: skip
        assert edited["cursor"] >= edited_at - 0.01
        wait_for(lambda: len(fires(brain, "edited")) >= 3, 10, "fires after the edit")
        slots = [f["slot"] for f in fires(brain, "edited")]
        assert min(slots) > edited_at - 0.01, (edited_at, slots[:5])
    finally:
        sink.stop()


def test_references_mean_one_schedule(brain: BrainProcess, tmp_path: Path) -> None:
    url = ("--brain-url", brain.http_url)
    spec = {"kind": "interval", "every": "1h"}
    a = brain.api("POST", "/api/v1/schedules", schedule_body("a", spec))
    b = brain.api("POST", "/api/v1/schedules", schedule_body("b", spec))
    # Idempotency keys belong to their schedule.
    first = brain.api("POST", "/api/v1/schedules/a/trigger", {"idempotency_key": "k1"})
    other = brain.api("POST", "/api/v1/schedules/b/trigger", {"idempotency_key": "k1"})
    again = brain.api("POST", "/api/v1/schedules/a/trigger", {"idempotency_key": "k1"})
    assert first["created"] and other["created"] and not again["created"]
    assert other["fire"]["schedule_id"] == b["id"] != a["id"]
    assert again["fire"]["fire_id"] == first["fire"]["fire_id"] != other["fire"]["fire_id"]

    # A name may not be another schedule's id, nor an id another's name.
    brain.api("POST", "/api/v1/schedules", schedule_body("test1", spec))
    shadow = brain.cli(
        "schedules",
        "add",
        "shadow",
        "--id",
        "test1",
        "--every",
        "1h",
        "--task",
        "t",
        "--engine",
        "huey",
        "--app",
        "sink",
        *url,
        check=False,
    )
    _one_line_error(shadow, "test1", "name of another schedule")
    status, answer = _call(brain, "POST", "/api/v1/schedules", schedule_body(a["id"], spec))
    assert status == 409 and "id of another schedule" in answer["error"]
    status, answer = _call(brain, "PATCH", "/api/v1/schedules/b", {"name": a["id"]})
    assert status == 409
    brain.cli("schedules", "rm", "test1", *url)
    assert {i["name"] for i in brain.api("GET", "/api/v1/schedules")["schedules"]} == {"a", "b"}

    # A deleted schedule's history stays, by its id and its last name; its id is never reused.
    brain.cli("schedules", "rm", "a", *url)
    for ref in (a["id"], "a"):
        history = brain.api("GET", f"/api/v1/schedules/{ref}/fires")
        assert history["schedule"]["state"] == "deleted"
        assert [f["fire_id"] for f in history["fires"]] == [first["fire"]["fire_id"]]
    shown = brain.cli("schedules", "history", "a", *url).stdout
    assert "was deleted" in shown and first["fire"]["fire_id"] in shown
    status, answer = _call(brain, "POST", "/api/v1/schedules",
                           {**schedule_body("a-again", spec), "id": a["id"]})  # fmt: skip
    assert status == 409 and "never reused" in answer["error"]


def test_a_past_one_shot_fires_once_only_when_allowed(brain: BrainProcess, tmp_path: Path) -> None:
    token = brain.create_token("sink")
    sink = Sink(tmp_path / "sink", brain.url, token)
    try:
        wait_for(lambda: live_agents(brain), 30, "the sink's agent")
        past = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(microsecond=0)
        base = ("schedules", "add", "late", "--at", past.isoformat(), "--task",
                SINK_TASK, "--engine", "huey", "--app", "sink", "--force",
                "--brain-url", brain.http_url)  # fmt: skip
        _one_line_error(brain.cli(*base, check=False), "in the past", "--allow-past")
        brain.cli(*base, "--allow-past")
        wait_for(lambda: sum(sink.counts().values()) == 1, 15, "the one fire to run")
        time.sleep(3)
        assert [f["slot"] for f in fires(brain, "late")] == [past.timestamp()]
        assert sum(sink.counts().values()) == 1
    finally:
        sink.stop()


def test_cli_output_into_a_closed_pipe_is_quiet(brain: BrainProcess) -> None:
    spec = {"kind": "interval", "every": "1h"}
    # More than a pipe's buffer (64 KiB), so the writer meets the closed end.
    for n in range(500):
        brain.api("POST", "/api/v1/schedules", schedule_body(f"s{n:03d}", spec))
    command = (f"{sys.executable} -m z4j_core.cli schedules list --brain-url {brain.http_url} "
               "| head -1; exit ${PIPESTATUS[0]}")  # fmt: skip
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            env=brain.env, timeout=60, check=False)  # fmt: skip
    assert result.stdout.startswith("NAME"), result.stdout
    assert result.stderr == "", result.stderr
    assert result.returncode in (0, 141)


def test_sigterm_stops_a_busy_brain_within_its_drain_timeout(tmp_path: Path) -> None:
    brain = make_brain(tmp_path / "brain")
    brain.start()
    try:
        spec = {"kind": "interval", "every": "1s", "misfire_grace": "7d"}
        brain.api("POST", "/api/v1/schedules", schedule_body("tick", spec))
        # A thousand fires waiting for an agent that never comes (no agent serves app 'sink').
        store = Store.open(brain.database)
        try:
            with store.transaction():
                row = sched.get(store, "tick")
                now = time.time()
                sched.insert_fires(store, row, [
                    sched.NewFire(f"{row.schedule_id}_pending{n}", row.schedule_id, "trigger",
                                  now - n, now, now + 86400)
                    for n in range(1000)
                ], now)  # fmt: skip
        finally:
            store.close()
        wait_for(lambda: len(fires(brain, "tick")) >= 1003, 10, "the per-second fires on top")
        assert brain.process is not None
        sent = time.monotonic()
        brain.process.send_signal(signal.SIGTERM)
        # uvicorn's graceful shutdown (5 s) plus the brain's own stop (at most 5 s to record it):
        # well within 30 s, or something spins.
        code = brain.process.wait(30)
        took = time.monotonic() - sent
        assert code == 0, brain_log(brain)
        print(f"stopped {took:.2f} s after SIGTERM")
    finally:
        brain.stop()


def test_a_schedule_changed_in_the_store_by_another_process_is_held_without_a_wake_up(
    brain: BrainProcess,
) -> None:
    """The leader's idle poll reads the store's change count, not every schedule's version: a
    change made by another process, which wakes nobody, must still reach it within seconds,
    and so must a pause and a delete (a paused schedule firing on is the failure)."""

    def held() -> int:
        return int(brain.api("GET", "/api/v1/scheduler")["schedules_held"] or 0)

    wait_for(lambda: brain.api("GET", "/api/v1/scheduler")["leader"], 30, "the leader")
    assert held() == 0
    store = Store.open(brain.database)
    try:
        with store.transaction():
            row = sched.create(
                store,
                {"name": "written-elsewhere", "task": SINK_TASK, "engine": "huey",
                 "app": "sink", "force": True, "schedule": {"kind": "interval", "every": "1h"}},
                actor="test", now=time.time(),
            )  # fmt: skip
        wait_for(lambda: held() == 1, 10, "the leader to hold the schedule written elsewhere")
        with store.transaction():
            store.pause_schedule(row.schedule_id, "paused elsewhere", actor="test",
                                 now=time.time())  # fmt: skip
        wait_for(lambda: held() == 0, 10, "the leader to drop the schedule paused elsewhere")
        with store.transaction():
            store.resume_schedule(row.schedule_id, actor="test", now=time.time())
        wait_for(lambda: held() == 1, 10, "the leader to hold it again once resumed")
        with store.transaction():
            sched.delete(store, row.schedule_id, actor="test", now=time.time())
        wait_for(lambda: held() == 0, 10, "the leader to drop the schedule deleted elsewhere")
    finally:
        store.close()
