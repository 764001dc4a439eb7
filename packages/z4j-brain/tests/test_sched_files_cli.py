"""`z4j schedules export` and `apply` as a user runs them: real `z4j` subprocesses against real
brains. A file exported from one brain and applied to a fresh one exports identically; applying
the same file twice changes nothing; `--prune` deletes; `--dry-run` changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from brain_helpers import ADMIN, RunningBrain, serving

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def z4j(brain: RunningBrain, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update(Z4J_BRAIN_URL=brain.url, Z4J_ADMIN_TOKEN=ADMIN)
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


SCHEDULES = [
    {
        "name": "nightly",
        "engine": "huey",
        "app": "shop",
        "task": "shop.tasks.report",
        "args": [1, "two", [3.5, True], {"k": "v"}],
        "kwargs": {"when": "night", "ünïcode key": 'quote " and \\ back\nslash'},
        "options": {"queue": "reports", "priority": 3},
        "labels": {"env": "prod"},
        "description": "the nightly report",
        "overlap": "skip",
        "pause_after_failures": 3,
        "result_log": "failures",
        "schedule": {
            "kind": "cron",
            "expression": "30 1 13 * 5",
            "day_and": True,
            "timezone": "America/New_York",
            "catch_up": "one",
        },
    },
    {
        "name": "every-90m",
        "engine": "rq",
        "app": "shop",
        "task": "shop.jobs.sync",
        "schedule": {"kind": "interval", "every": "90m", "anchor": "2025-03-09T00:00:00-05:00"},
    },
    {
        "name": "sunset",
        "engine": "arq",
        "app": "lights",
        "task": "lights.off",
        "enabled": False,
        "schedule": {
            "kind": "solar",
            "event": "sunset",
            "latitude": 52.52,
            "longitude": 13.405,
            "timezone": "Europe/Berlin",
            "offset": "-15m",
        },
    },
]


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_export_apply_to_a_fresh_brain_exports_identically(
    running_brain: RunningBrain, tmp_path: Path, fmt: str
) -> None:
    for item in SCHEDULES:
        status, body = running_brain.api("POST", "/api/v1/schedules", {**item, "force": True})
        assert status == 201, body
    exported = ok(z4j(running_brain, "schedules", "export", "--format", fmt))
    file = tmp_path / f"schedules.{fmt}"
    file.write_text(exported)
    with serving(tmp_path / "fresh.sqlite3") as fresh:
        dry = ok(z4j(fresh, "schedules", "apply", "--force", "-f", str(file), "--dry-run"))
        assert dry.count("\n+ ") + dry.startswith("+ ") == 3 and "nothing changed" in dry
        assert fresh.api("GET", "/api/v1/schedules")[1]["schedules"] == []
        applied = ok(z4j(fresh, "schedules", "apply", "--force", "-f", str(file)))
        assert "applied: 3 changes" in applied, applied
        assert ok(z4j(fresh, "schedules", "export", "--format", fmt)) == exported
        again = ok(z4j(fresh, "schedules", "apply", "--force", "-f", str(file)))
        assert again.strip() == "applied: 0 changes, 3 unchanged", again
        listed = {s["name"]: s for s in fresh.api("GET", "/api/v1/schedules")[1]["schedules"]}
        assert listed["sunset"]["enabled"] is False
        assert listed["nightly"]["kwargs"] == SCHEDULES[0]["kwargs"]


def test_apply_edits_pauses_and_prunes(running_brain: RunningBrain, tmp_path: Path) -> None:
    for item in SCHEDULES:
        assert running_brain.api("POST", "/api/v1/schedules", {**item, "force": True})[0] == 201
    exported = json.loads(ok(z4j(running_brain, "schedules", "export", "--format", "json")))
    by_name = {s["name"]: s for s in exported["schedules"]}
    nightly = by_name["nightly"]
    nightly["options"] = {"queue": "other"}  # priority removed
    nightly["schedule"] = {"kind": "cron", "expression": "0 2 * * *"}
    nightly["enabled"] = False
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"schedules": [nightly, by_name["sunset"]]}))
    dry = ok(
        z4j(running_brain, "schedules", "apply", "--force", "-f", str(file), "--dry-run", "--prune")
    )
    assert "~ nightly: options" in dry and "pause" in dry and "- every-90m: delete" in dry, dry
    applied = ok(z4j(running_brain, "schedules", "apply", "--force", "-f", str(file)))
    assert "1 schedules not in the file kept (--prune deletes them)" in applied, applied
    now = {s["name"]: s for s in running_brain.api("GET", "/api/v1/schedules")[1]["schedules"]}
    assert set(now) == {"nightly", "every-90m", "sunset"}
    assert now["nightly"]["options"] == {"queue": "other"}
    assert now["nightly"]["schedule"]["expression"] == "0 2 * * *"
    assert now["nightly"]["enabled"] is False
    pruned = ok(z4j(running_brain, "schedules", "apply", "--force", "-f", str(file), "--prune"))
    assert "- every-90m: delete" in pruned
    names = {s["name"] for s in running_brain.api("GET", "/api/v1/schedules")[1]["schedules"]}
    assert names == {"nightly", "sunset"}
    assert "0 changes" in ok(
        z4j(running_brain, "schedules", "apply", "--force", "-f", str(file), "--prune")
    )


def test_export_formats_for_reading(running_brain: RunningBrain) -> None:
    for item in SCHEDULES:
        assert running_brain.api("POST", "/api/v1/schedules", {**item, "force": True})[0] == 201
    crontab = ok(z4j(running_brain, "schedules", "export", "--format", "crontab"))
    assert "CRON_TZ=America/New_York\n30 1 13 * 5  # nightly [huey/shop]" in crontab, crontab
    assert "# every-90m [rq/shop]: every 1h30m" in crontab or "every-90m" in crontab
    beat = ok(z4j(running_brain, "schedules", "export", "--format", "celery-beat"))
    namespace: dict[str, object] = {}
    crontab_calls: list[dict[str, str]] = []
    exec(  # the file is Python: run it with a stand-in crontab to read what it says
        beat.replace("from celery.schedules import crontab", ""),
        {"crontab": lambda **kw: crontab_calls.append(kw) or kw},
        namespace,
    )
    schedule = namespace["beat_schedule"]
    assert isinstance(schedule, dict) and set(schedule) == {"nightly", "every-90m", "sunset"}
    assert crontab_calls == [
        {
            "minute": "30",
            "hour": "1",
            "day_of_month": "13",
            "month_of_year": "*",
            "day_of_week": "5",
        }
    ]
    assert "z4j reads it in America/New_York" in beat


@pytest.mark.parametrize(
    ("content", "suffix", "fragment"),
    [
        ("schedules = 3", ".toml", "'schedules' must be a list"),
        ("[[schedules]]\nname = 'x'\n", ".toml", "schedule 'x' needs 'engine'"),
        ("{not json", ".json", "not valid JSON"),
        ("[[schedules]\n", ".toml", "not valid TOML"),
        (
            '{"schedules": [{"name": "x", "engine": "huey", "app": "a", "task": "t", '
            '"schedule": {"kind": "cron", "expression": "61 * * * *"}}]}',
            ".json",
            "schedule 'x': cron expression '61 * * * *': minute field",
        ),
        (
            '{"schedules": [{"name": "x", "engine": "huey", "app": "a", "task": "t", '
            '"colour": 1, "schedule": {"kind": "cron", "expression": "* * * * *"}}]}',
            ".json",
            "unknown field 'colour'",
        ),
        ("[]", ".yaml", "cannot tell the format"),
    ],
)
def test_apply_refuses_a_bad_file_in_one_line(
    running_brain: RunningBrain, tmp_path: Path, content: str, suffix: str, fragment: str
) -> None:
    file = tmp_path / f"bad{suffix}"
    file.write_text(content)
    result = z4j(running_brain, "schedules", "apply", "--force", "-f", str(file))
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith("z4j: error: ") and result.stderr.count("\n") == 1
    assert fragment in result.stderr, result.stderr


def test_toml_export_refuses_a_null_argument(running_brain: RunningBrain) -> None:
    item = {**SCHEDULES[1], "name": "nulls", "args": [None]}
    assert running_brain.api("POST", "/api/v1/schedules", {**item, "force": True})[0] == 201
    result = z4j(running_brain, "schedules", "export")
    assert result.returncode != 0 and "use --format json" in result.stderr, result.stderr
    assert json.loads(ok(z4j(running_brain, "schedules", "export", "--format", "json")))


def test_a_change_the_brain_refuses_stops_apply_and_says_what_was_done(
    running_brain: RunningBrain, tmp_path: Path
) -> None:
    first = {**SCHEDULES[1], "name": "a-first"}
    past = {
        **SCHEDULES[1],
        "name": "b-past",
        "schedule": {"kind": "oneshot", "at": "2001-01-01T00:00:00Z"},
    }
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"schedules": [first, past]}))
    result = z4j(running_brain, "schedules", "apply", "--force", "-f", str(file))
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "+ b-past: " in result.stderr and "is in the past" in result.stderr
    assert "(1 changes before it were applied; fix the file and apply it again)" in result.stderr
    names = {s["name"] for s in running_brain.api("GET", "/api/v1/schedules")[1]["schedules"]}
    assert names == {"a-first"}


def test_apply_checks_what_it_creates_unless_forced(
    running_brain: RunningBrain, tmp_path: Path
) -> None:
    """A create from a file passes the checks a create does: with no agent reporting the
    engine, apply is refused and says how to keep it anyway; --force keeps it."""
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"schedules": [SCHEDULES[1]]}))
    result = z4j(running_brain, "schedules", "apply", "-f", str(file))
    assert result.returncode != 0, result.stdout
    assert "no agent of engine 'rq'" in result.stderr and "--force" in result.stderr
    assert running_brain.api("GET", "/api/v1/schedules")[1]["schedules"] == []
    assert "1 changes" in ok(z4j(running_brain, "schedules", "apply", "--force", "-f", str(file)))


def test_apply_force_covers_an_overlap_only_edit(
    running_brain: RunningBrain, tmp_path: Path
) -> None:
    """An edit that only sets cancel-previous is checked (an agent must be able to cancel);
    --force keeps it, as it keeps a create."""
    item = {**SCHEDULES[1], "force": True}
    assert running_brain.api("POST", "/api/v1/schedules", item)[0] == 201
    file = tmp_path / "s.json"
    file.write_text(json.dumps({"schedules": [{**SCHEDULES[1], "overlap": "cancel-previous"}]}))
    refused = z4j(running_brain, "schedules", "apply", "-f", str(file))
    assert refused.returncode != 0 and "--force" in refused.stderr, refused.stderr
    applied = ok(z4j(running_brain, "schedules", "apply", "--force", "-f", str(file)))
    assert "~ every-90m: overlap" in applied, applied
    shown = running_brain.api("GET", "/api/v1/schedules/every-90m")[1]
    assert shown["overlap"] == "cancel-previous"
