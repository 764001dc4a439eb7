"""Adopting Huey periodic tasks: the brain schedule `z4j schedules adopt` makes from what the
adapter observes fires exactly when Huey's own `crontab` function says the task runs; and the
whole path once through a real consumer, a real brain and the `z4j` command."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey, crontab
from huey_harness import start_consumer

from z4j_core.scheduling import schedule_from_dict
from z4j_core.scheduling.adopt import NotAdoptable, adopt, compare, mismatches
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.conformance import WorkerContext
from z4j_huey import schedules

UTC = datetime.timezone.utc
# (crontab fields, how many runs to compare: rare ones fewer, as Huey is asked minute by minute)
CRONTABS = [
    ({"minute": "*/15", "hour": "9-17", "day_of_week": "1-5"}, 10),
    ({"minute": "30", "hour": "3", "day": "1"}, 10),
    ({"minute": "0", "hour": "0", "day": "13", "day_of_week": "5"}, 3),  # Friday the 13th (AND)
    ({"minute": "0", "hour": "12", "day": "28-29", "month": "2"}, 4),
    ({"minute": "59", "hour": "23", "day": "31", "day_of_week": "0,6"}, 3),
    ({"minute": "5,10", "hour": "*/6", "month": "1,7"}, 10),
]


def huey_runs(validate: Any, after: datetime.datetime, count: int) -> list[datetime.datetime]:
    """Huey's own answer: every minute after `after` (naive UTC) its crontab function accepts,
    found by asking it about each minute (whole days it rejects are skipped by asking it about
    each of the day's minutes too, so nothing is assumed about its fields)."""
    found: list[datetime.datetime] = []
    moment = after.replace(second=0, microsecond=0)
    for _ in range(20 * 366 * 24 * 60):
        moment += datetime.timedelta(minutes=1)
        if validate(moment):
            found.append(moment.replace(tzinfo=UTC))
            if len(found) == count:
                break
    return found


@pytest.mark.parametrize(("fields", "count"), CRONTABS, ids=[str(i) for i in range(len(CRONTABS))])
def test_an_adopted_periodic_task_fires_when_huey_runs_it(
    fields: dict[str, str], count: int
) -> None:
    huey = MemoryHuey("adopt", utc=True)
    validate = crontab(**fields)

    @huey.periodic_task(validate, priority=7)
    def job() -> None:
        pass

    now = datetime.datetime(2026, 2, 27, 11, 7, 30)
    (observed,) = schedules.observe(huey, now)
    aware = now.replace(tzinfo=UTC)
    adoption = adopt(observed_dict(observed), aware)
    assert adoption.task == observed.task and adoption.args == [] and adoption.kwargs == {}
    assert adoption.options == {"priority": 7} and adoption.differences == []
    assert "@periodic_task" in adoption.remove
    brain = schedule_from_dict(adoption.schedule).slots(aware, count)
    assert brain == huey_runs(validate, now, count)
    rows = compare(adoption, observed.next_runs, aware)
    assert len(rows) == 10 and not mismatches(rows)


def observed_dict(observed: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(observed)  # type: ignore[no-any-return]


def test_a_custom_validate_function_is_refused_with_the_reason() -> None:
    huey = MemoryHuey("adopt", utc=True)

    def every_ten(moment: datetime.datetime) -> bool:
        return moment.minute % 10 == 0

    @huey.periodic_task(every_ten)
    def custom() -> None:
        pass

    (observed,) = schedules.observe(huey, datetime.datetime(2026, 1, 1))
    with pytest.raises(NotAdoptable, match=r"validate_datetime is a function .*every_ten"):
        adopt(observed_dict(observed), datetime.datetime(2026, 1, 1, tzinfo=UTC))


def test_local_time_huey_without_a_named_zone_asks_for_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedules, "host_zone_name", lambda: None)
    huey = MemoryHuey("adopt", utc=False)

    @huey.periodic_task(crontab(minute="0", hour="2"))
    def nightly() -> None:
        pass

    (observed,) = schedules.observe(huey, datetime.datetime(2026, 1, 1))
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(NotAdoptable, match="give the zone with --tz"):
        adopt(observed_dict(observed), now)
    adoption = adopt(observed_dict(observed), now, tz="Europe/Berlin")
    assert adoption.schedule["timezone"] == "Europe/Berlin"
    assert any("fall-back" in note for note in adoption.notes)


# -- end to end ---------------------------------------------------------------------------------


def z4j(brain: BrainProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", *args, "--brain-url", brain.http_url],
        capture_output=True,
        text=True,
        env=brain.env,
        timeout=60,
    )


@pytest.mark.timeout(120)
def test_adopt_through_a_real_consumer_brain_and_cli(tmp_path: Path) -> None:
    with BrainProcess(tmp_path / "brain") as brain:
        token = brain.create_token("huey")
        env = {
            "Z4J_BRAIN_URL": brain.url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(tmp_path / "spool"),
        }
        storage = f"sqlite:{tmp_path / 'huey.db'}"
        worker = start_consumer("thread", storage, WorkerContext(brain, env, tmp_path))
        try:
            name = "huey_conformance_app.monthly"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                inventory = brain.api("GET", "/api/v1/inventory")["inventory"]
                if any(s["name"] == name for i in inventory for s in i["schedules"]):
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the consumer never reported its periodic tasks:\n" + worker.output())
            dry = z4j(brain, "schedules", "adopt", name, "--dry-run")
            assert dry.returncode == 0, dry.stderr
            assert dry.stdout.count(" same\n") == 10, dry.stdout
            assert "as z4j: at 03:30 on day 1 of every month" in dry.stdout or "03:30" in dry.stdout
            assert "adopting would create a schedule exact" in dry.stdout
            assert brain.api("GET", "/api/v1/schedules")["schedules"] == []

            made = z4j(brain, "schedules", "adopt", name, "--name", "monthly")
            assert made.returncode == 0, made.stderr
            assert "created schedule 'monthly'" in made.stdout
            assert "still runs natively" in made.stderr and "@periodic_task" in made.stderr
            (created,) = brain.api("GET", "/api/v1/schedules")["schedules"]
            assert (created["engine"], created["task"]) == ("huey", name)
            assert created["schedule"]["expression"] == "30 3 1 * *"
            assert created["schedule"]["day_and"] is True
            assert created["schedule"]["timezone"] == "UTC"

            listed = z4j(brain, "schedules", "list", "--all")
            assert "it runs for both; to keep only z4j's, turn @periodic_task" in listed.stderr
            # The brain flags the schedule while its native twin is observed.
            (twin,) = brain.api("GET", "/api/v1/schedules/monthly")["native_twins"]
            assert (twin["source"], twin["name"]) == ("huey_periodic", name)
            assert twin["agents"] and "@periodic_task" in twin["remove"]
            shown = z4j(brain, "schedules", "show", "monthly")
            assert shown.returncode == 0 and "still runs 'huey_conformance_app.monthly'" in (
                shown.stderr
            ), shown.stderr
            other = {
                "name": "other",
                "engine": "huey",
                "app": created["app"],
                "task": "huey_conformance_app.succeed",
                "schedule": created["schedule"],
            }
            brain.api("POST", "/api/v1/schedules", other)
            assert brain.api("GET", "/api/v1/schedules/other")["native_twins"] == []

            again = z4j(brain, "schedules", "adopt", name, "--name", "monthly")
            assert again.returncode != 0 and "already exists" in again.stderr
            missing = z4j(brain, "schedules", "adopt", "no.such.schedule")
            assert missing.returncode != 0
            assert "no agent reports a native schedule named 'no.such.schedule'" in missing.stderr
            as_json = json.loads(
                z4j(brain, "schedules", "adopt", name, "--dry-run", "--json").stdout
            )
            assert as_json["differences"] == [] and len(as_json["fires"]) == 10
        finally:
            worker.stop()
