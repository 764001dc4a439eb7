"""`z4j schedules adopt` as a user runs it, against a real brain whose inventories a
hand-driven agent filled: the dry run's side-by-side fires, the refusals (each one line, with
what to do), `--accept-differences`, `--tz`, `--args`, choosing among same-named schedules, and
the twin the brain then flags. (Adoption's fidelity to each native scheduler is proved in each
adapter's tests; a real Huey consumer goes through it in z4j-huey's.)"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from brain_helpers import ADMIN, RunningBrain, TestAgent, make_hello

from z4j_core.adapter import native_definition
from z4j_core.scheduling import CronSchedule, resolve_zone
from z4j_core.wire import Inventory, ObservedSchedule, TaskInfo

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
UTC = datetime.timezone.utc


def z4j(brain: RunningBrain, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update(Z4J_BRAIN_URL=brain.url, Z4J_ADMIN_TOKEN=ADMIN)
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", "schedules", "adopt", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )


def runs(expression: str, shift: float = 0.0) -> list[float]:
    schedule = CronSchedule(expression=expression, timezone=resolve_zone("UTC"))
    now = datetime.datetime.now(UTC)
    return [s.timestamp() + shift for s in schedule.slots(now, 10)]


def native(
    name: str, definition: dict[str, Any], shift: float = 0.0, task: str = "app.report"
) -> ObservedSchedule:
    return ObservedSchedule(
        source="celery_beat",
        name=name,
        task=task,
        kind="cron",
        expression="0 3 * * *",
        next_runs=runs("0 3 * * *", shift),
        definition=definition,
    )


CRON = {"cron": "0 3 * * *", "day_and": True}


def report(brain: RunningBrain, instance: str, app: str, schedules: list[ObservedSchedule]) -> None:
    token = brain.create_token(instance)

    async def scenario() -> None:
        agent = await TestAgent.connect(brain.ws_url, token, make_hello(instance, app=app))
        await agent.send(
            Inventory(
                engine="testengine",
                app=app,
                tasks=[TaskInfo(name="app.report")],
                schedules=schedules,
            )
        )
        await agent.ws.close()

    asyncio.run(scenario())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        inventory = brain.api("GET", f"/api/v1/inventory?agent_instance={instance}")[1]
        if inventory["inventory"]:
            return
        time.sleep(0.05)
    pytest.fail("the inventory never arrived")


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    # (the comparison may be printed before a refusal; nothing says it was created)
    assert result.returncode != 0 and "created schedule" not in result.stdout, result
    assert result.stderr.startswith("z4j: error: ") and result.stderr.count("\n") == 1, result
    assert fragment in result.stderr, result.stderr


def test_adopt_from_inventories(running_brain: RunningBrain) -> None:
    report(
        running_brain,
        "inst-shop",
        "shop",
        [
            native(
                "exact", native_definition(CRON, timezone="UTC", args=[1], options={"queue": "q"})
            ),
            native(
                "repeats",
                native_definition(CRON, timezone="UTC", unsupported=["repeat 2 more times"]),
            ),
            native("late", native_definition(CRON, timezone="UTC"), shift=3600),
            native("no-zone", native_definition(CRON, timezone=None)),
            native("secret", native_definition(CRON, timezone="UTC", kwargs={"password": "x"})),
            native("old", {}),
            native("dup", native_definition(CRON, timezone="UTC")),
        ],
    )
    report(
        running_brain,
        "inst-other",
        "other",
        [native("dup", native_definition(CRON, timezone="UTC"))],
    )

    dry = z4j(running_brain, "exact", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        dry.stdout.count(" same\n") == 10 and "adopting would create a schedule exact" in dry.stdout
    )
    assert 'args [1], kwargs {}, options {"queue": "q"}' in dry.stdout
    made = z4j(running_brain, "exact", "--name", "nightly")
    assert made.returncode == 0 and "created schedule 'nightly'" in made.stdout, made.stderr
    assert "still runs natively" in made.stderr and "beat_schedule" in made.stderr
    _, view = running_brain.api("GET", "/api/v1/schedules/nightly")
    assert (view["args"], view["options"], view["description"]) == (
        [1],
        {"queue": "q"},
        "adopted from celery_beat 'exact'",
    )
    assert [t["name"] for t in view["native_twins"]] == sorted(
        ["exact", "repeats", "late", "no-zone", "secret", "old", "dup"]
    )

    one_line_error(z4j(running_brain, "repeats"), "repeat 2 more times: z4j has no equivalent")
    accepted = z4j(running_brain, "repeats", "--accept-differences")
    assert accepted.returncode == 0 and "differs: repeat 2 more times" in accepted.stdout

    late = z4j(running_brain, "late", "--dry-run")
    assert (
        late.stdout.count(" differs\n") == 10
        and "10 of the next 10 fire times differ" in late.stdout
    )
    one_line_error(z4j(running_brain, "late"), "--accept-differences")

    one_line_error(z4j(running_brain, "no-zone"), "give the zone with --tz")
    tokyo = z4j(running_brain, "no-zone", "--tz", "Asia/Tokyo", "--dry-run", "--json")
    assert json.loads(tokyo.stdout)["schedule"]["timezone"] == "Asia/Tokyo"

    one_line_error(z4j(running_brain, "secret"), "secret-looking key 'password'")
    given = z4j(running_brain, "secret", "--kwargs", '{"password_file": "/run/pw"}', "--name", "s")
    assert given.returncode == 0, given.stderr
    assert running_brain.api("GET", "/api/v1/schedules/s")[1]["kwargs"] == {
        "password_file": "/run/pw"
    }

    one_line_error(z4j(running_brain, "old"), "predates adopt")
    one_line_error(z4j(running_brain, "dup"), "several native schedules are named 'dup'")
    picked = z4j(running_brain, "dup", "--app", "other", "--dry-run", "--json")
    assert json.loads(picked.stdout)["observed"]["app"] == "other"
    one_line_error(z4j(running_brain, "dup", "--engine", "huey"), "(--engine huey)")
