"""`z4j schedules export|apply`: the brain's schedules as a file, and a file made true.

Owns the file format (a list of schedules by name, each with the fields an operator sets:
`FILE_FIELDS`), writing it as JSON or TOML (and, for reading only by people or other tools, as
a crontab or a celery beat schedule), reading it back, and the diff `apply` prints and carries
out through the brain's API (create, edit, pause, resume, and with `--prune` delete). Ids,
cursors and states are the brain's and never in a file, so a file applied to another brain
makes the same schedules there. Applying a file twice changes nothing the second time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from z4j_core.cli import CLIError
from z4j_core.cli.http import BrainClient, add_client_arguments

#: The fields of one schedule in a file, in the order they are written.
FILE_FIELDS = (
    "name",
    "engine",
    "app",
    "task",
    "enabled",
    "description",
    "args",
    "kwargs",
    "options",
    "labels",
    "schedule",
    "overlap",
    "pause_after_failures",
    "result_log",
)
#: Fields `apply` edits in place (`enabled` is pause/resume; `name` is the key).
_EDITED = (
    "engine",
    "app",
    "task",
    "description",
    "args",
    "kwargs",
    "options",
    "labels",
    "overlap",
    "pause_after_failures",
    "result_log",
)
_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "description": "",
    "args": [],
    "kwargs": {},
    "options": {},
    "labels": {},
    "overlap": "allow",
    "pause_after_failures": None,  # never; left out of a file (TOML has no null)
    "result_log": "all",
}
WRITE_FORMATS = ("json", "toml", "crontab", "celery-beat")
READ_FORMATS = ("json", "toml")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="write the brain's schedules to a file (json, toml, crontab, celery-beat)"
    )
    export.add_argument("--format", choices=WRITE_FORMATS, default="toml", help="(toml)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    export.set_defaults(func=_export)

    apply = commands.add_parser(
        "apply", help="make the brain's schedules match a file (create, edit, --prune delete)"
    )
    apply.add_argument("-f", "--file", required=True, metavar="FILE", help="json or toml")
    apply.add_argument("--format", choices=READ_FORMATS, help="(default: from the file's name)")
    apply.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    apply.add_argument(
        "--prune", action="store_true", help="delete the brain's schedules the file does not name"
    )
    apply.add_argument(
        "--force",
        action="store_true",
        help="keep schedules whose engine, app or task no agent has reported yet",
    )
    apply.set_defaults(func=_apply)
    for parser in (export, apply):
        add_client_arguments(parser)


# -- the file's schedules ------------------------------------------------------------------------


def file_entry(item: Mapping[str, Any]) -> dict[str, Any]:
    """One schedule from the API as a file writes it."""
    return {
        field: item.get(field, _DEFAULTS.get(field))
        for field in FILE_FIELDS
        if item.get(field, _DEFAULTS.get(field)) is not None
    }


def normalized_spec(spec: Any, where: str) -> dict[str, Any]:
    """The schedule part as the brain stores it (every field, defaults filled in), so a file
    that leaves a default out equals the brain's copy."""
    from z4j_core.scheduling import ScheduleError, schedule_from_dict

    if not isinstance(spec, Mapping):
        raise CLIError(f'{where}: schedule must be a table/object, e.g. {{kind = "cron", ...}}')
    try:
        return schedule_from_dict(spec).to_dict()
    except ScheduleError as exc:
        raise CLIError(f"{where}: {exc}") from None


def read_entries(data: Any, source: str) -> list[dict[str, Any]]:
    """The schedules of a parsed file, checked: known fields, a name each, names unique."""
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"schedules"})
        if unknown:
            raise CLIError(f"{source}: unknown top-level key {unknown[0]!r} (expected 'schedules')")
        data = data.get("schedules", [])
    if not isinstance(data, list):
        raise CLIError(f"{source}: 'schedules' must be a list of schedules")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(data):
        where = f"{source}: schedule {index + 1}"
        if not isinstance(raw, Mapping):
            raise CLIError(f"{where} is not a table/object")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise CLIError(f"{where} has no 'name'")
        where = f"{source}: schedule {name!r}"
        unknown = sorted(set(raw) - set(FILE_FIELDS))
        if unknown:
            raise CLIError(
                f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FILE_FIELDS)})"
            )
        for needed in ("engine", "app", "task", "schedule"):
            if raw.get(needed) in (None, ""):
                raise CLIError(f"{where} needs {needed!r}")
        if name in seen:
            raise CLIError(f"{where} appears twice: names are unique")
        seen.add(name)
        entry = {**_DEFAULTS, **raw}
        for field, kind in (("args", list), ("kwargs", dict), ("options", dict), ("labels", dict)):
            if not isinstance(entry[field], kind):
                raise CLIError(f"{where}: {field} must be a {'list' if kind is list else 'table'}")
        if not isinstance(entry["enabled"], bool):
            raise CLIError(f"{where}: enabled must be true or false")
        entry["schedule"] = normalized_spec(entry["schedule"], where)
        entries.append(entry)
    return entries


def load_file(path: str, fmt: str | None) -> list[dict[str, Any]]:
    file = Path(path)
    if fmt is None:
        suffix = file.suffix.lower()
        if suffix not in (".json", ".toml"):
            raise CLIError(f"cannot tell the format of {path!r} from its name: give --format")
        fmt = suffix[1:]
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CLIError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    else:
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CLIError(f"{path}: not valid TOML: {exc}") from None
    return read_entries(data, path)


# -- writing -------------------------------------------------------------------------------------


def _toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def toml_value(value: Any, where: str) -> str:
    """A value as TOML (tables inline). TOML has no null: a None is refused."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # TOML spells inf, -inf and nan as Python does
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        items = [f"{_toml_key(str(k))} = {toml_value(v, where)}" for k, v in value.items()]
        return "{" + ", ".join(items) + "}"
    if value is None:
        raise CLIError(f"{where} holds a null, which TOML cannot write: use --format json")
    raise CLIError(f"{where} holds a {type(value).__name__}, which TOML cannot write")


def to_toml(entries: list[dict[str, Any]]) -> str:
    lines = ["# z4j schedules: apply with `z4j schedules apply -f FILE`", ""]
    for entry in entries:
        where = f"schedule {entry['name']!r}"
        lines.append("[[schedules]]")
        for field in FILE_FIELDS:
            if field == "schedule" or field not in entry:  # left out: null, its default
                continue
            lines.append(f"{field} = {toml_value(entry[field], f'{where}: {field}')}")
        lines.append("[schedules.schedule]")
        for key, value in entry["schedule"].items():
            if value is not None:  # the core's default for every field it leaves null
                lines.append(f"{_toml_key(key)} = {toml_value(value, f'{where}: {key}')}")
        lines.append("")
    return "\n".join(lines)


def to_json(entries: list[dict[str, Any]]) -> str:
    return json.dumps({"schedules": entries}, indent=2) + "\n"


def _call(args: list[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)


def to_crontab(entries: list[dict[str, Any]]) -> str:
    """A crontab to read: a cron schedule as its line (`CRON_TZ` before a change of zone), the
    command a comment naming the task; any other kind as a comment saying why it is not."""
    from z4j_core.scheduling import schedule_from_dict

    lines = ["# z4j schedules as crontab lines (for reading; `apply` takes json or toml)"]
    zone = None
    for entry in entries:
        spec = entry["schedule"]
        schedule = schedule_from_dict(spec)
        call = f"{entry['task']}({_call(entry['args'], entry['kwargs'])})"
        label = f"{entry['name']} [{entry['engine']}/{entry['app']}]"
        if spec["kind"] != "cron":
            lines.append(f"# {label}: {schedule.describe()}: not a cron schedule; {call}")
            continue
        if spec.get("timezone", "UTC") != zone:
            zone = spec.get("timezone", "UTC")
            lines.append(f"CRON_TZ={zone}")
        note = "  (day-of-month AND day-of-week)" if spec.get("day_and") else ""
        paused = "# (paused) " if not entry["enabled"] else ""
        lines.append(f"{paused}{spec['expression']}  # {label}: {call}{note}")
    return "\n".join(lines) + "\n"


def to_celery_beat(entries: list[dict[str, Any]]) -> str:
    """A celery `beat_schedule` to read or paste: cron as `crontab(...)`, intervals as
    seconds; each difference from z4j's meaning is a comment on the entry."""
    from z4j_core.scheduling import schedule_from_dict

    lines = [
        "# z4j schedules as a celery beat_schedule (for reading; `apply` takes json or toml)",
        "from celery.schedules import crontab",
        "",
        "beat_schedule = {",
    ]
    for entry in entries:
        spec = entry["schedule"]
        notes: list[str] = []
        if entry["engine"] != "celery":
            notes.append(f"a {entry['engine']} task in z4j")
        if not entry["enabled"]:
            notes.append("paused in z4j")
        if spec["kind"] == "cron":
            fields = spec["expression"].split()
            if fields[0].startswith("@") or len(fields) != 5:
                notes.append(f"cron {spec['expression']!r} has no crontab() spelling")
                timing = repr(spec["expression"])
            else:
                names = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
                timing = (
                    "crontab("
                    + ", ".join(f"{n}={v!r}" for n, v in zip(names, fields, strict=True))
                    + ")"
                )
                if not spec.get("day_and") and "*" not in fields[2] + fields[4]:
                    notes.append("celery requires both day fields to match (z4j: either)")
            if spec.get("timezone", "UTC") != "UTC":
                notes.append(f"z4j reads it in {spec['timezone']}; celery in the app's timezone")
        elif spec["kind"] == "interval":
            timing = repr(schedule_from_dict(spec).every.total_seconds())  # type: ignore[attr-defined]
            notes.append("celery counts an interval from the last run, z4j from its anchor")
        else:
            timing = "None"
            notes.append(f"{spec['kind']} schedules have no celery beat spelling")
        options = {k: v for k, v in entry["options"].items() if k in ("queue", "priority")}
        if "expires_seconds" in entry["options"]:
            options["expires"] = entry["options"]["expires_seconds"]
        for note in notes:
            lines.append(f"    # {entry['name']}: {note}")
        lines.append(f"    {entry['name']!r}: {{")
        lines.append(f"        'task': {entry['task']!r},")
        lines.append(f"        'schedule': {timing},")
        lines.append(f"        'args': {tuple(entry['args'])!r},")
        lines.append(f"        'kwargs': {entry['kwargs']!r},")
        lines.append(f"        'options': {options!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(entries: list[dict[str, Any]], fmt: str) -> str:
    writer = {
        "json": to_json,
        "toml": to_toml,
        "crontab": to_crontab,
        "celery-beat": to_celery_beat,
    }[fmt]
    return writer(entries)


def _export(args: argparse.Namespace) -> int:
    items = BrainClient.from_args(args).get("schedules")["schedules"]
    entries = sorted((file_entry(i) for i in items), key=lambda e: e["name"])
    text = render(entries, args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CLIError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
        print(f"wrote {len(entries)} schedules to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# -- apply ---------------------------------------------------------------------------------------


class Change:
    """One step of an apply: what it prints and the API calls that carry it out."""

    def __init__(self, mark: str, name: str, text: str) -> None:
        self.mark, self.name, self.text = mark, name, text
        self.calls: list[tuple[str, str, Any]] = []

    def line(self) -> str:
        return f"{self.mark} {self.name}: {self.text}"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def plan(
    wanted: list[dict[str, Any]],
    current: list[dict[str, Any]],
    prune: bool,
    force: bool = False,
) -> list[Change]:
    """The changes that make `current` (the API's schedules) match `wanted` (a file's);
    `force` keeps an engine, app or task the agents have not reported (an app not deployed
    yet)."""
    by_name = {item["name"]: item for item in current}
    changes: list[Change] = []
    for entry in wanted:
        name = entry["name"]
        path = f"schedules/{quote(name, safe='')}"
        have = by_name.get(name)
        if have is None:
            change = Change("+", name, "create")
            body = {k: v for k, v in entry.items() if k != "enabled"}
            if not entry["enabled"]:
                body["enabled"] = False
            if force:
                body["force"] = True
            change.calls.append(("POST", "schedules", body))
            changes.append(change)
            continue
        edits: dict[str, Any] = {}
        diffs: list[str] = []
        for field in _EDITED:
            if entry[field] != have.get(field, _DEFAULTS.get(field)):
                diffs.append(f"{field} {_short(have.get(field))} -> {_short(entry[field])}")
                edits[field] = entry[field]
        if "options" in edits:  # an edit merges options: a key left out is sent as null
            edits["options"] = {
                **dict.fromkeys(have["options"]),
                **entry["options"],
            }
        if entry["schedule"] != have["schedule"]:
            diffs.append(f"schedule {_short(have['schedule'])} -> {_short(entry['schedule'])}")
            edits["schedule"] = entry["schedule"]
        if entry["enabled"] != have["enabled"]:
            diffs.append("resume" if entry["enabled"] else "pause")
        if not diffs:
            continue
        change = Change("~", name, "; ".join(diffs))
        if edits:
            if force:  # the edit's checks (a new target, cancel-previous) are forced too
                edits["force"] = True
            change.calls.append(("PATCH", path, edits))
        if entry["enabled"] != have["enabled"]:
            action = "resume" if entry["enabled"] else "pause"
            change.calls.append(("POST", f"{path}/{action}", {}))
        changes.append(change)
    if prune:
        names = {entry["name"] for entry in wanted}
        for item in current:
            if item["name"] not in names:
                change = Change("-", item["name"], "delete (not in the file)")
                change.calls.append(("DELETE", f"schedules/{quote(item['name'], safe='')}", None))
                changes.append(change)
    return changes


def _apply(args: argparse.Namespace) -> int:
    wanted = load_file(args.file, args.format)
    client = BrainClient.from_args(args)
    current = client.get("schedules")["schedules"]
    changes = plan(wanted, current, args.prune, args.force)
    for change in changes:
        print(change.line())
    unchanged = len(wanted) - sum(1 for c in changes if c.mark != "-")
    extra = len(current) - (len(wanted) - sum(1 for c in changes if c.mark == "+"))
    summary = f"{len(changes)} changes, {unchanged} unchanged"
    if extra > 0 and not args.prune:
        summary += f"; {extra} schedules not in the file kept (--prune deletes them)"
    if args.dry_run:
        print(f"dry run: {summary}; nothing changed")
        return 0
    for done, change in enumerate(changes):
        try:
            for method, path, body in change.calls:
                if method == "DELETE":
                    client.delete(path)
                else:
                    client.request(method, path, body=body)
        except CLIError as exc:
            raise CLIError(
                f"{change.mark} {change.name}: {exc} ({done} changes before it were applied; "
                "fix the file and apply it again)",
                exc.exit_code,
            ) from None
    print(f"applied: {summary}")
    return 0
