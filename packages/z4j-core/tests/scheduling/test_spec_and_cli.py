"""Schedules as plain data, zone validation, purity, and `z4j schedules preview` as a process."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import z4j_core.scheduling
from z4j_core.cli import main
from z4j_core.scheduling import ScheduleError, resolve_zone, schedule_from_dict

UTC = timezone.utc

ROUND_TRIP = [
    {"kind": "cron", "expression": "30 1 * * *", "timezone": "America/New_York"},
    {
        "kind": "cron",
        "expression": "0 0 13 * 5",
        "day_and": True,
        "catch_up": "all",
        "max_catch_up": 5,
        "jitter": "30s",
        "misfire_grace": "5m",
    },
    {
        "kind": "interval",
        "every": "90m",
        "anchor": "2025-03-09T00:00:00-05:00",
        "start": "2025-03-09T00:00:00Z",
        "end": "2026-01-01T00:00:00+01:00",
    },
    {"kind": "oneshot", "at": "2026-01-01T09:00:00+01:00", "timezone": "Europe/Paris"},
    {
        "kind": "solar",
        "event": "dusk",
        "latitude": 52.52,
        "longitude": 13.405,
        "depression": "nautical",
        "offset": "-15m",
        "elevation": 34,
        "timezone": "Europe/Berlin",
    },
]


@pytest.mark.parametrize("data", ROUND_TRIP)
def test_dict_round_trip(data: dict[str, Any]) -> None:
    schedule = schedule_from_dict(data)
    again = schedule_from_dict(json.loads(json.dumps(schedule.to_dict())))
    assert again == schedule
    assert again.to_dict() == schedule.to_dict()
    after = datetime(2025, 6, 1, tzinfo=UTC)
    assert again.slots(after, 3) == schedule.slots(after, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"kind": "cron", "expression": "0 0 * * *", "timezone": "Europe/Berln"},
            "unknown time zone 'Europe/Berln' (did you mean Europe/Berlin?)",
        ),
        (
            {"kind": "cron", "expression": "0 0 * * *", "timezone": "europe/berlin"},
            "did you mean Europe/Berlin?",
        ),
        ({"kind": "cron", "expression": "0 0 * * *", "timzone": "UTC"}, "unknown field 'timzone'"),
        ({"kind": "weekly"}, "unknown schedule kind 'weekly'"),
        ({"kind": "cron"}, "needs 'expression'"),
        ({"kind": "interval", "every": "0m"}, "interval '0m' is empty"),
        ({"kind": "interval", "every": "soon"}, "interval 'soon' is not a duration"),
        ({"kind": "oneshot", "at": "2026-01-01T09:00:00"}, "has no time zone"),
        ({"kind": "oneshot", "at": "tomorrow"}, "not an ISO 8601 instant"),
        (
            {"kind": "solar", "event": "sunset", "latitude": -91, "longitude": 0},
            "latitude -91.0 is outside -90..90",
        ),
        (
            {"kind": "cron", "expression": "0 0 * * *", "catch_up": "some"},
            "unknown catch-up policy 'some'",
        ),
        ({"kind": "cron", "expression": "0 0 * * *", "max_catch_up": 0}, "max_catch_up"),
        (
            {
                "kind": "cron",
                "expression": "0 0 * * *",
                "start": "2026-01-01T00:00:00Z",
                "end": "2025-01-01T00:00:00Z",
            },
            "is before start",
        ),
    ],
)
def test_bad_dicts_name_the_bad_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        schedule_from_dict(data)


def test_resolve_zone_accepts_iana_names() -> None:
    assert resolve_zone("Australia/Lord_Howe").key == "Australia/Lord_Howe"
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        resolve_zone("Mars/Olympus")


def test_scheduling_never_reads_the_clock() -> None:
    """No clock call appears anywhere in the package's source."""
    package = pathlib.Path(z4j_core.scheduling.__file__).parent
    forbidden = re.compile(
        r"\b(datetime\.now|datetime\.utcnow|date\.today|time\.time|time\.monotonic|"
        r"time\.perf_counter|today\(|now\()"
    )
    for source in package.glob("*.py"):
        for number, line in enumerate(source.read_text().splitlines(), 1):
            code = line.split("#")[0]
            assert not forbidden.search(code), f"{source.name}:{number}: {line.strip()}"


def test_core_and_cli_import_without_loading_the_scheduler() -> None:
    code = (
        "import sys, z4j_core, z4j_core.cli;"
        "z4j_core.cli.build_parser();"
        "heavy = [m for m in ('croniter', 'astral', 'z4j_core.scheduling') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def z4j(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", "schedules", "preview", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_preview_cron_json_through_a_fall_back() -> None:
    result = z4j(
        "--cron",
        "30 1 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2025-11-01T12:00:00Z",
        "--count",
        "3",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["utc"] for r in rows] == [
        "2025-11-02T05:30:00Z",
        "2025-11-03T06:30:00Z",
        "2025-11-04T06:30:00Z",
    ]
    assert rows[0]["local"] == "2025-11-02T01:30:00-04:00" and "first occurrence" in rows[0]["note"]


def test_preview_table_marks_a_gap_and_says_the_schedule_in_words() -> None:
    result = z4j(
        "--cron",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2025-03-08T12:00:00Z",
        "--count",
        "2",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Schedule: at 02:30 every day, America/New_York"
    assert "2025-03-09T07:00:00Z" in lines[2] and "DST gap" in lines[2]
    assert "2025-03-10T06:30:00Z" in lines[3] and "DST" not in lines[3]


def test_preview_interval_one_shot_and_solar() -> None:
    interval = z4j(
        "--every",
        "90m",
        "--anchor",
        "2025-03-09T00:00:00-05:00",
        "--tz",
        "America/New_York",
        "--after",
        "2025-03-09T00:00:00-05:00",
        "--count",
        "3",
        "--json",
    )
    assert [r["utc"] for r in json.loads(interval.stdout)] == [
        "2025-03-09T06:30:00Z",
        "2025-03-09T08:00:00Z",
        "2025-03-09T09:30:00Z",
    ]
    once = z4j("--at", "2026-01-01T09:00:00+01:00", "--after", "2025-01-01T00:00:00Z", "--json")
    assert [r["utc"] for r in json.loads(once.stdout)] == ["2026-01-01T08:00:00Z"]
    solar = z4j(
        "--solar",
        "sunset",
        "--lat",
        "52.52",
        "--lon",
        "13.405",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2025-06-20T00:00:00Z",
        "--count",
        "5",
    )
    assert solar.returncode == 0, solar.stderr
    assert solar.stdout.count("2025-06-2") == 10  # five rows, UTC and local each
    polar = z4j(
        "--solar",
        "sunrise",
        "--lat",
        "78.22",
        "--lon",
        "15.65",
        "--tz",
        "Arctic/Longyearbyen",
        "--after",
        "2025-11-01T00:00:00Z",
        "--json",
        "--count",
        "1",
    )
    assert json.loads(polar.stdout)[0]["utc"].startswith("2026-02")


def test_preview_after_defaults_to_now() -> None:
    before = datetime.now(UTC)
    result = z4j("--every", "1h", "--json", "--count", "1")
    slot = datetime.fromisoformat(json.loads(result.stdout)[0]["utc"].replace("Z", "+00:00"))
    assert before < slot <= datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "minute field '61'"),
        (["--cron", "0 0 * * *", "--tz", "Europe/Berln"], "did you mean Europe/Berlin?"),
        (["--solar", "sunset", "--lat", "95", "--lon", "0"], "latitude 95.0 is outside -90..90"),
        (["--solar", "sunset", "--lat", "north", "--lon", "0"], "--lat 'north' is not a number"),
        (["--every", "0s"], "interval '0s' is empty"),
        (["--every", ""], "interval '' is not a duration"),
        (["--cron", "* * * * *", "--after", "2025-01-01T00:00:00"], "has no time zone"),
        (["--cron", "* * * * *", "--count", "x"], "--count 'x'"),
        ([], "give exactly one of"),
        (["--cron", "* * * * *", "--every", "5m"], "give exactly one of"),
        (["--spec", "{not json"], "--spec is not valid JSON"),
    ],
)
def test_preview_bad_input_is_one_line_without_traceback(args: list[str], message: str) -> None:
    result = z4j(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("z4j: error: "), result.stderr
    assert message in lines[0]


def test_preview_spec_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    spec = json.dumps({"kind": "cron", "expression": "@daily", "timezone": "Asia/Tokyo"})
    code = main(
        [
            "schedules",
            "preview",
            "--spec",
            spec,
            "--after",
            "2025-01-01T00:00:00Z",
            "--count",
            "2",
            "--json",
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["utc"] for r in rows] == ["2025-01-01T15:00:00Z", "2025-01-02T15:00:00Z"]
