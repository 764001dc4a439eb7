"""Adopting taskiq schedules: what `z4j schedules adopt` makes from a label or Redis schedule
fires at the minutes taskiq's own scheduler fires it (`is_cron_task_now`, asked about every
minute), with its arguments; where taskiq's reading of the wall clock differs from z4j's (a
fixed hour on a DST date), only that date differs and adopt says so."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest
from taskiq import InMemoryBroker
from taskiq.cli.scheduler.run import is_cron_task_now

from z4j_core.scheduling import schedule_from_dict
from z4j_core.scheduling.adopt import NotAdoptable, adopt, compare, mismatches
from z4j_taskiq import schedules
from z4j_taskiq.adapter import TaskiqAdapter

UTC = datetime.timezone.utc


def builtins(observed: Any) -> dict[str, Any]:
    return msgspec.to_builtins(observed)  # type: ignore[no-any-return]


def taskiq_runs(
    cron: str, offset: Any, after: datetime.datetime, count: int
) -> list[datetime.datetime]:
    """Every minute after `after` at which taskiq's scheduler fires `cron`."""
    start = after.replace(second=0, microsecond=0)
    found = []
    for minute in range(1, 120 * 24 * 60):
        moment = start + datetime.timedelta(minutes=minute)
        if is_cron_task_now(cron, moment, offset=offset):
            found.append(moment)
            if len(found) == count:
                break
    return found


CASES = [
    ("15 9 * * 1-5", None, "2026-05-01T00:00:00+00:00"),
    ("0 9 * * *", datetime.timedelta(hours=2), "2026-05-01T00:00:00+00:00"),
    ("0 0 1 * 3", None, "2026-04-28T00:00:00+00:00"),  # the 1st or a Wednesday
    ("0 0 */2 * 3", None, "2026-04-28T00:00:00+00:00"),  # `*` in a day field: AND
    ("*/20 * * * *", "Europe/Berlin", "2026-10-25T00:10:00+00:00"),  # both 02:xx run
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+00:00"),  # fixed hour on fall-back
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+00:00"),  # in spring-forward's gap
    ("0 12 * * *", "America/New_York", "2026-06-01T00:00:00+00:00"),
]


@pytest.mark.parametrize(("cron", "offset", "after"), CASES)
def test_an_adopted_cron_schedule_fires_when_taskiq_fires_it(
    cron: str, offset: Any, after: str
) -> None:
    now = datetime.datetime.fromisoformat(after)
    observed = schedules.observed(
        "taskiq_labels", "nightly", "t.report", cron=cron, cron_offset=offset,
        now=now.timestamp(), args=[1, "a"], kwargs={"k": True},
    )  # fmt: skip
    adoption = adopt(builtins(observed), now)
    assert (adoption.args, adoption.kwargs, adoption.differences) == ([1, "a"], {"k": True}, [])
    brain = schedule_from_dict(adoption.schedule).slots(now, 10)
    native = taskiq_runs(cron, offset, now, 10)
    rows = compare(adoption, observed.next_runs, now)
    if brain == native:
        assert not mismatches(rows)
        return
    # Only a fixed hour on a DST date: taskiq runs a repeated wall time twice and a skipped one
    # never; z4j once, and at the end of the gap. The note says so and the dry run shows it.
    zone = schedule_from_dict(adoption.schedule).timezone
    horizon = min(brain[-1], native[-1])
    dates = {s.astimezone(zone).date() for s in set(brain) ^ set(native) if s <= horizon}
    assert dates and dates <= {datetime.date(2026, 10, 25), datetime.date(2026, 3, 29)}, dates
    assert any("taskiq matches the wall clock" in n for n in adoption.notes)
    assert mismatches(rows)


def test_label_schedules_interval_and_time() -> None:
    broker = InMemoryBroker()
    broker.is_scheduler_process = True

    @broker.task(
        task_name="labels.report",
        schedule=[
            {"interval": 30, "args": [2]},
            {"time": datetime.datetime(2099, 1, 1, tzinfo=UTC), "kwargs": {"x": 1}},
            {"cron": "0 9 * * *", "cron_offset": datetime.timedelta(minutes=90)},
        ],
    )
    async def report() -> None:
        pass

    now = 1_800_000_000.0
    found = schedules.observe(TaskiqAdapter(broker=broker, started_at=now - 25), now=now)
    aware = datetime.datetime.fromtimestamp(now, UTC)
    every = adopt(builtins(found[0]), aware)
    assert every.args == [2] and "schedule label" in every.remove
    slots = schedule_from_dict(every.schedule).slots(aware, 3)
    assert [s.timestamp() for s in slots] == found[0].next_runs[:3] == [now + 5, now + 35, now + 65]
    once = adopt(builtins(found[1]), aware)
    assert once.schedule["kind"] == "oneshot" and once.kwargs == {"x": 1}
    with pytest.raises(NotAdoptable, match="not a whole number of hours"):
        adopt(builtins(found[2]), aware)


def test_an_interval_outside_the_scheduler_process_is_refused() -> None:
    observed = schedules.observed("taskiq_labels", "n", "t", interval=60, now=1_800_000_000.0)
    with pytest.raises(NotAdoptable, match="only its scheduler knows"):
        adopt(builtins(observed), datetime.datetime.fromtimestamp(1_800_000_000.0, UTC))
