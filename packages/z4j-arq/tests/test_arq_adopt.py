"""Adopting arq cron jobs: the brain schedule `z4j schedules adopt` makes from what the adapter
observes fires when arq's own `next_cron` runs the job (to the second: arq adds its
microsecond offset), in the worker's zone; arq options z4j lacks are differences."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from arq.cron import cron

from z4j_arq import schedules
from z4j_core.scheduling import schedule_from_dict
from z4j_core.scheduling.adopt import adopt, compare, mismatches

UTC = datetime.timezone.utc


async def job_a(ctx: dict[str, Any]) -> None:
    pass


def builtins(observed: Any) -> dict[str, Any]:
    return msgspec.to_builtins(observed)  # type: ignore[no-any-return]


def arq_runs(job: Any, after: datetime.datetime, count: int) -> list[datetime.datetime]:
    """arq's worker arithmetic: calculate_next from now, then from each run."""
    runs = []
    job.calculate_next(after)
    for _ in range(count):
        runs.append(job.next_run)
        job.calculate_next(job.next_run)
    return runs


OPTIONS: list[dict[str, Any]] = [
    {"minute": {0, 30}},
    {"hour": 3, "minute": 0, "weekday": "fri"},
    {"day": 13, "weekday": "fri", "hour": 0, "minute": 0},  # arq ANDs: Friday the 13th
    {"day": 31, "hour": 12, "minute": 0},
    {"second": {10, 40}, "minute": {5}},
    {"month": {1, 7}, "day": 1, "hour": {0, 12}, "minute": 0, "microsecond": 0},
    {"weekday": {5, 6}, "hour": 9, "minute": 15},
]
ZONES = [
    UTC,
    ZoneInfo("UTC"),
    ZoneInfo("Asia/Kolkata"),
    datetime.timezone(datetime.timedelta(hours=-5)),
]


@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("options", OPTIONS, ids=[str(i) for i in range(len(OPTIONS))])
def test_an_adopted_cron_job_fires_when_arq_runs_it(options: dict[str, Any], zone: Any) -> None:
    now = datetime.datetime(2026, 1, 30, 23, 59, 58, 500_000, tzinfo=zone)
    (observed,) = schedules.observe([cron(job_a, **options)], zone, now)
    adoption = adopt(builtins(observed), now)
    assert adoption.task == "cron:job_a" and adoption.differences == []
    assert "WorkerSettings.cron_jobs" in adoption.remove
    brain = schedule_from_dict(adoption.schedule).slots(now, 10)
    native = arq_runs(cron(job_a, **options), now, 10)
    assert [b.timestamp() for b in brain] == [n.replace(microsecond=0).timestamp() for n in native]
    assert not mismatches(compare(adoption, observed.next_runs, now))


def test_the_fixed_offset_zone_becomes_etc_gmt() -> None:
    zone = datetime.timezone(datetime.timedelta(hours=-5))
    (observed,) = schedules.observe([cron(job_a, minute=0)], zone)
    assert adopt(builtins(observed), datetime.datetime.now(UTC)).schedule["timezone"] == "Etc/GMT+5"


def test_arq_options_z4j_lacks_are_differences() -> None:
    job = cron(job_a, minute=0, run_at_startup=True, timeout=30, max_tries=2)
    (observed,) = schedules.observe([job], UTC)
    differences = adopt(builtins(observed), datetime.datetime.now(UTC)).differences
    assert differences == [
        "run_at_startup=True: z4j has no equivalent",
        "timeout_s=30: z4j has no equivalent",
        "max_tries=2: z4j has no equivalent",
    ]


def test_a_dst_zone_is_adopted_with_a_note() -> None:
    zone = ZoneInfo("Europe/Berlin")
    now = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=zone)
    (observed,) = schedules.observe([cron(job_a, hour=3, minute=0)], zone, now)
    adoption = adopt(builtins(observed), now)
    assert adoption.schedule["timezone"] == "Europe/Berlin"
    assert any("DST" in note for note in adoption.notes)
    assert not mismatches(compare(adoption, observed.next_runs, now))
