"""`z4j_core.scheduling.adopt` on its own: each refusal says why, differences and notes are
sorted apart, the comparison lines up fire times; `native_definition` withholds arguments it
must not send; the TOML writer round-trips through a TOML reader. (Each engine's adapter tests
compare adopted schedules with the native scheduler itself.)"""

from __future__ import annotations

import datetime
import sys
from typing import Any

import pytest

from z4j_core.adapter import (
    MAX_DEFINITION_ARGUMENT_BYTES,
    fixed_offset_zone,
    host_zone_name,
    native_definition,
)
from z4j_core.cli.schedule_files import to_toml, toml_value
from z4j_core.scheduling.adopt import (
    NotAdoptable,
    adopt,
    compare,
    mismatches,
    remove_hint,
    schedule_name,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def observed(
    definition: dict[str, Any], runs: list[float] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "source": "celery_beat",
        "name": "nightly",
        "task": "app.report",
        "kind": "cron",
        "expression": "0 3 * * *",
        "next_runs": runs or [],
        "definition": definition,
        **extra,
    }


def test_a_cron_definition_becomes_a_brain_schedule() -> None:
    definition = native_definition(
        {"cron": "0 3 * * *", "day_and": True},
        timezone="UTC",
        args=(1,),
        kwargs={"a": [1]},
        options={"queue": "q", "priority": None},
    )
    adoption = adopt(observed(definition), NOW)
    assert adoption.schedule["kind"] == "cron" and adoption.schedule["day_and"] is True
    assert (adoption.args, adoption.kwargs, adoption.options) == ([1], {"a": [1]}, {"queue": "q"})
    assert adoption.differences == [] and adoption.notes == []
    body = adoption.body("nightly", "celery", "shop")
    assert body["description"] == "adopted from celery_beat 'nightly'"


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({}, "carries no definition: the agent that reported it predates adopt"),
        ({"refused": "a custom function"}, "cannot be adopted: a custom function"),
        ({"cron": "0 3 * * *", "timezone": None}, "give the zone with --tz"),
        ({"every": 60, "anchor": None, "timezone": "UTC"}, "only its scheduler knows"),
        ({"at": NOW.timestamp() - 1, "timezone": "UTC"}, "which has passed"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"cron": "61 * * * *", "timezone": "UTC"}, "minute field '61'"),
        ({"nonsense": 1, "timezone": "UTC"}, "of no kind z4j knows"),
        (
            {"cron": "0 3 * * *", "timezone": "UTC", "withheld": "too big"},
            "did not send the arguments of celery_beat 'nightly': too big",
        ),
    ],
)
def test_what_cannot_be_adopted_is_refused_with_the_reason(
    definition: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(NotAdoptable, match=None) as caught:
        adopt(observed(definition), NOW)
    assert fragment in str(caught.value)


def test_given_zone_and_arguments_replace_what_is_missing() -> None:
    definition = {"cron": "0 3 * * *", "timezone": None, "withheld": "secret key"}
    adoption = adopt(observed(definition), NOW, tz="Asia/Tokyo", args=[2], kwargs={})
    assert adoption.schedule["timezone"] == "Asia/Tokyo" and adoption.args == [2]


def test_unsupported_features_options_and_solar_are_differences() -> None:
    definition = native_definition(
        {"solar": {"event": "sunrise", "latitude": 52.5, "longitude": 13.4}},
        timezone="Europe/Berlin",
        options={"routing_key": "r"},
        unsupported=["repeat 3 more times"],
    )
    differences = adopt(observed(definition), NOW).differences
    assert differences[0] == "repeat 3 more times: z4j has no equivalent"
    assert "within a minute" in differences[1]
    assert differences[2] == "option 'routing_key': z4j has no equivalent"


def test_an_interval_without_anchor_is_anchored_on_the_next_native_run() -> None:
    first = NOW.timestamp() + 30
    adoption = adopt(
        observed({"every": 60, "anchor": None, "timezone": "UTC"}, [first, first + 60]), NOW
    )
    assert adoption.schedule["anchor"] == datetime.datetime.fromtimestamp(first, UTC).isoformat()
    assert adoption.notes and not mismatches(compare(adoption, [first, first + 60], NOW))


def test_compare_lines_up_fires_and_finds_the_ones_that_differ() -> None:
    adoption = adopt(observed({"cron": "0 * * * *", "timezone": "UTC"}), NOW)
    hour = 3600.0
    base = NOW.timestamp()
    native = [base + hour, base + 2 * hour + 0.5, base + 3 * hour + 60]
    rows = compare(adoption, native, NOW)
    assert len(rows) == 10 and [r.same for r in rows[:3]] == [True, True, False]
    assert rows[3].native is None and mismatches(rows) == [rows[2]]
    # runs the agent reported before now are dropped
    assert compare(adoption, [base - hour], NOW)[0].native is None


def test_names_and_hints() -> None:
    assert schedule_name("app.tasks.report[0]") == "app.tasks.report-0"
    assert schedule_name("///") == "adopted"
    assert "beat_schedule" in remove_hint("celery_beat", "x")
    assert remove_hint("unknown_source", "x") == "remove 'x' from unknown_source"


def test_native_definition_withholds_arguments_it_must_not_send() -> None:
    timing = {"cron": "* * * * *", "day_and": False}
    assert "args" in native_definition(timing, timezone="UTC", args=[1], kwargs={"a": 1})
    secret = native_definition(timing, timezone="UTC", kwargs={"db": {"Password": "x"}})
    assert "args" not in secret and "'Password'" in secret["withheld"] and "x" not in str(secret)
    big = native_definition(timing, timezone="UTC", args=["x" * MAX_DEFINITION_ARGUMENT_BYTES])
    assert "larger than" in big["withheld"]
    odd = native_definition(timing, timezone="UTC", args=[object()])
    assert odd["withheld"] == "the arguments are not JSON"


@pytest.mark.parametrize(
    ("hours", "name"),
    [(0, "UTC"), (2, "Etc/GMT-2"), (-5, "Etc/GMT+5"), (14, "Etc/GMT-14"), (-12, "Etc/GMT+12"),
     (15, None), (5.5, None)],
)  # fmt: skip
def test_a_fixed_offset_is_named_only_in_whole_hours(hours: float, name: str | None) -> None:
    zone = fixed_offset_zone(datetime.timedelta(hours=hours))
    assert zone == name
    if zone is not None:  # the tz database's inverted sign: the zone's offset is `hours`
        from zoneinfo import ZoneInfo

        offset = ZoneInfo(zone).utcoffset(datetime.datetime(2026, 1, 1))
        assert offset == datetime.timedelta(hours=hours)


def test_host_zone_name_reads_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert host_zone_name() == "Europe/Berlin"
    monkeypatch.setenv("TZ", ":Etc/UTC")
    assert host_zone_name() == "UTC"


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'quote " back \\ slash',
        "line\nbreak\ttab\x7f\x01",
        "ünï 😀",
        1,
        -2.5,
        1e300,
        True,
        [1, [2, "x"]],
        {"a b": 1, "ok": {"nested": []}, "": 0},
    ],
)
def test_toml_values_read_back_as_written(value: Any) -> None:
    assert tomllib.loads(f"v = {toml_value(value, 'v')}")["v"] == value


def test_a_toml_file_reads_back_as_its_schedules() -> None:
    entries = [
        {"name": "n", "engine": "huey", "app": "a", "task": "t", "enabled": False,
         "description": "d", "args": [1], "kwargs": {"k": "v"}, "options": {"queue": "q"},
         "labels": {}, "schedule": {"kind": "cron", "expression": "* * * * *", "start": None}},
    ]  # fmt: skip
    read = tomllib.loads(to_toml(entries))["schedules"]
    assert read == [{**entries[0], "schedule": {"kind": "cron", "expression": "* * * * *"}}]
