"""Editing is live: edit, pause, resume, trigger (idempotent) and delete take effect without a
restart, on a real brain with a real Huey consumer; bad values are named; one brain per SQLite
file."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path

import pytest

from z4j_core.testing.sink import (
    SINK_NATIVE_TASK,
    Sink,
    fires,
    live_agents,
    make_brain,
    schedule_body,
)
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _applied(brain: object, item: dict[str, object]) -> bool:
    answer = brain.api(  # type: ignore[attr-defined]
        "GET",
        f"/api/v1/scheduler/applied?schedule_id={item['id']}&version={item['version']}&timeout=2",
    )
    return bool(answer["applied"])


def test_edit_pause_resume_trigger_delete_without_restart(tmp_path: Path) -> None:
    brain = make_brain(tmp_path / "brain")
    token = brain.create_token("sink")
    brain.start()
    sink = Sink(tmp_path / "sink", brain.url, token)
    try:
        wait_for(lambda: live_agents(brain), 30, "the sink's agent")
        anchor = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        spec = {"kind": "interval", "every": "1s", "anchor": anchor}
        created = brain.api("POST", "/api/v1/schedules", schedule_body("live", spec))
        assert created["version"] == 1 and created["enabled"]
        wait_for(lambda: len(fires(brain, "live")) >= 2, 10, "fires every second")

        edited = brain.api("PATCH", "/api/v1/schedules/live", {"schedule": {**spec, "every": "2s"}})
        assert _applied(brain, edited)
        edited_at = time.time()
        time.sleep(5)
        after_edit = [f["slot"] for f in fires(brain, "live") if f["slot"] > edited_at]
        assert len(after_edit) >= 2
        assert all(b - a == 2 for a, b in pairwise(after_edit)), after_edit

        paused = brain.api("POST", "/api/v1/schedules/live/pause", {"note": "maintenance"})
        assert paused["pause_note"] == "maintenance" and _applied(brain, paused)
        paused_at = time.time()
        time.sleep(3)
        resumed = brain.api("POST", "/api/v1/schedules/live/resume")
        assert _applied(brain, resumed)
        resumed_at = time.time()
        wait_for(
            lambda: any(f["slot"] > resumed_at for f in fires(brain, "live")), 6, "fires again"
        )
        assert not [f for f in fires(brain, "live") if paused_at + 0.5 < f["slot"] < resumed_at]

        first = brain.api("POST", "/api/v1/schedules/live/trigger", {"idempotency_key": "k1"})
        again = brain.api("POST", "/api/v1/schedules/live/trigger", {"idempotency_key": "k1"})
        assert first["created"] and not again["created"]
        assert first["fire"]["fire_id"] == again["fire"]["fire_id"]
        trigger_id = first["fire"]["fire_id"]

        deleted = brain.api("POST", "/api/v1/schedules", schedule_body("gone", spec))
        wait_for(lambda: fires(brain, "gone"), 5, "the second schedule's fires")
        brain.api("DELETE", "/api/v1/schedules/gone")
        deleted_at = time.time()
        assert deleted["id"]
        time.sleep(2)
        late = brain.api("GET", "/api/v1/scheduler")
        assert late["leader"]
        rows = brain.cli("schedules", "list", "--brain-url", brain.http_url).stdout
        assert "gone" not in rows and "live" in rows

        wait_for(lambda: trigger_id in sink.counts(), 10, "the triggered fire to run")
        history = fires(brain, "live")
        states = {f["fire_id"]: f["state"] for f in history}
        assert [f for f in history if f["kind"] == "trigger"] == [
            f for f in history if f["fire_id"] == trigger_id
        ]
        wait_for(
            lambda: set(sink.counts()) >= {f for f, s in states.items() if s == "enqueued"},
            10,
            "every enqueued fire to run",
        )
        time.sleep(0.5)
        counts = sink.counts()
        assert all(n == 1 for n in counts.values()), counts
        # The native periodic task is listed beside z4j's schedules, read-only; scheduling the
        # same task in z4j too is warned about.
        nightly = schedule_body("nightly-too", {"kind": "cron", "expression": "0 4 * * *"})
        brain.api("POST", "/api/v1/schedules", {**nightly, "task": SINK_NATIVE_TASK})
        listing = brain.cli("schedules", "list", "--all", "--brain-url", brain.http_url)
        assert "observed (huey_periodic, read-only" in listing.stdout
        assert f"warning: task '{SINK_NATIVE_TASK}' is scheduled both natively" in listing.stderr
        cli = brain.cli("schedules", "history", "live", "--brain-url", brain.http_url).stdout
        assert "succeeded" in cli and trigger_id in cli
        assert deleted_at  # deleted schedules leave their history
    finally:
        sink.stop()
        brain.stop()


def test_bad_values_are_named_in_one_line(tmp_path: Path) -> None:
    brain = make_brain(tmp_path / "brain")
    brain.start()
    try:
        base = ("schedules", "add", "bad", "--task", "t", "--engine", "huey", "--app", "a",
                "--force", "--brain-url", brain.http_url)  # fmt: skip
        for extra, named in (
            (("--cron", "61 * * * *"), "61"),
            (("--every", "30s", "--tz", "Europe/Berln"), "Europe/Berln"),
            (("--every", "soon"), "soon"),
            (("--every", "30s", "--args", "{"), "--args"),
        ):
            result = brain.cli(*base, *extra, check=False)
            assert result.returncode != 0
            assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
                result.stderr
            )
            assert "Traceback" not in result.stderr
        brain.cli(*base, "--every", "30s")
        taken = brain.cli(*base, "--every", "30s", check=False)
        assert taken.returncode == 1 and "already exists" in taken.stderr
        missing = brain.cli("schedules", "pause", "nope", "--brain-url", brain.http_url,
                            check=False)  # fmt: skip
        assert missing.returncode == 1 and "no schedule named 'nope'" in missing.stderr
    finally:
        brain.stop()


def test_a_second_brain_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    first = make_brain(tmp_path / "brain")
    first.start()
    second = make_brain(tmp_path / "brain")
    try:
        with pytest.raises(RuntimeError) as refused:
            second.start(timeout=20)
        assert "another brain" in str(refused.value) and "is already running" in str(refused.value)
    finally:
        second.stop()
        first.stop()
    again = make_brain(tmp_path / "brain")  # the lock goes with the brain
    again.start()
    again.stop()
