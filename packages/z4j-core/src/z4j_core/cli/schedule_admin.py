"""`z4j schedules add|list|show|edit|pause|resume|rm|trigger|history`: the brain's schedules,
through its HTTP API.

Owns turning options into the API's schedule shape (the schedule part is built by the same
code as `preview`) and showing schedules, fires and the native schedules agents observe.
Reads the clock only to show each schedule's next slot; the scheduler core loads only when a
subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from z4j_core.cli import CLIError
from z4j_core.cli.http import BrainClient, add_client_arguments
from z4j_core.cli.tables import print_table, timestamp

_KIND_OPTIONS = ("cron", "every", "at", "solar", "spec")
_SPEC_OVERRIDES = {
    "catch_up": "catch_up",
    "misfire_grace": "misfire_grace",
    "jitter": "jitter",
    "max_catch_up": "max_catch_up",
    "start": "start",
    "end": "end",
}


def _schedule_options(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_argument_group("schedule (one of)")
    kind.add_argument("--cron", metavar="EXPR", help='cron expression, e.g. "*/10 * * * * *"')
    kind.add_argument("--every", metavar="INTERVAL", help="interval, e.g. 30s, 15m, 2h")
    kind.add_argument("--at", metavar="INSTANT", help="one-shot ISO 8601 instant with offset")
    kind.add_argument("--solar", metavar="EVENT", help="sunrise, sunset, dawn, dusk, noon...")
    kind.add_argument("--spec", metavar="JSON", help="a whole schedule as JSON")
    parser.add_argument("--tz", metavar="ZONE", help="IANA time zone (default UTC)")
    parser.add_argument("--day-and", action="store_true", help="cron: day-of-month AND weekday")
    parser.add_argument("--anchor", metavar="INSTANT", help="interval: the first slot")
    parser.add_argument("--lat", metavar="DEG", help="solar: latitude")
    parser.add_argument("--lon", metavar="DEG", help="solar: longitude")
    parser.add_argument("--elevation", metavar="M", help="solar: elevation in metres")
    parser.add_argument("--depression", metavar="KIND", help="solar: civil, nautical...")
    parser.add_argument("--offset", metavar="DURATION", help="solar: shift, e.g. -30m")
    parser.add_argument("--start", metavar="INSTANT", help="no slot before this instant")
    parser.add_argument("--end", metavar="INSTANT", help="no slot after this instant")
    parser.add_argument(
        "--catch-up", dest="catch_up", choices=("skip", "one", "all"), help="after downtime"
    )
    parser.add_argument("--misfire-grace", metavar="DURATION", help="how late is on time (60s)")
    parser.add_argument("--jitter", metavar="DURATION", help="largest delay added to a slot")
    parser.add_argument("--max-catch-up", metavar="N", type=int, help="catch-up 'all': per tick")
    parser.add_argument("--task", help="the task's name as the engine knows it")
    parser.add_argument("--engine", help="huey, celery, rq, dramatiq, arq, taskiq")
    parser.add_argument("--app", help="the app (default: the one app running that engine)")
    parser.add_argument("--args", metavar="JSON", help="positional arguments as a JSON list")
    parser.add_argument("--kwargs", metavar="JSON", help="keyword arguments as a JSON object")
    parser.add_argument("--queue", help="the engine's queue")
    parser.add_argument("--priority", type=int, help="the engine's priority")
    parser.add_argument("--expires", metavar="SECONDS", type=float, help="expiry after enqueue")
    parser.add_argument("--labels", help="only agents with these labels: k=v,k2=v2")
    parser.add_argument("--description", help="free text")


def register(commands: Any) -> None:
    """Add the brain-backed subcommands to `z4j schedules`."""
    add = commands.add_parser("add", help="create a schedule in the brain")
    add.add_argument("name")
    _schedule_options(add)
    add.add_argument("--id", help="the immutable id (default: generated)")
    add.add_argument("--paused", action="store_true", help="create it paused")
    add.add_argument("--json", action="store_true", help="print the schedule as JSON")
    add.set_defaults(func=_add)

    listing = commands.add_parser("list", help="list the brain's schedules")
    listing.add_argument(
        "--all", action="store_true", help="also the native schedules agents observe"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="show one schedule and its next slots")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)

    edit = commands.add_parser("edit", help="change a schedule, live")
    edit.add_argument("name")
    edit.add_argument("--rename", metavar="NEW", help="a new name (the id never changes)")
    _schedule_options(edit)
    edit.add_argument("--json", action="store_true", help="print the schedule as JSON")
    edit.set_defaults(func=_edit)

    pause = commands.add_parser("pause", help="pause a schedule")
    pause.add_argument("name")
    pause.add_argument("--note", help="why (shown in list and show)")
    pause.set_defaults(func=_pause)

    resume = commands.add_parser("resume", help="resume a schedule (missed slots do not fire)")
    resume.add_argument("name")
    resume.set_defaults(func=_resume)

    remove = commands.add_parser("rm", help="delete a schedule (its history stays)")
    remove.add_argument("name")
    remove.set_defaults(func=_remove)

    trigger = commands.add_parser("trigger", help="fire a schedule now, cadence unchanged")
    trigger.add_argument("name")
    trigger.add_argument(
        "--idempotency-key", metavar="KEY", help="a retry with the same key triggers once"
    )
    trigger.add_argument("--json", action="store_true", help="print the fire as JSON")
    trigger.set_defaults(func=_trigger)

    history = commands.add_parser("history", help="a schedule's fires and their tasks' outcomes")
    history.add_argument("name")
    history.add_argument("--limit", type=int, default=20, help="how many fires (20)")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(func=_history)

    for parser in (add, listing, show, edit, pause, resume, remove, trigger, history):
        add_client_arguments(parser)


def _path(name: str, suffix: str = "") -> str:
    return f"schedules/{quote(name, safe='')}{suffix}"


def _json_arg(text: str | None, option: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{option} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, kind):
        wanted = "a JSON list" if kind is list else "a JSON object"
        raise CLIError(f"{option} must be {wanted}, got {text!r}")
    return value


def _spec_from(args: argparse.Namespace, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schedule part: built from a kind option, or the current one with overrides."""
    from z4j_core.cli.schedules import _schedule_data

    has_kind = any(getattr(args, k) is not None for k in _KIND_OPTIONS)
    spec: dict[str, Any]
    if has_kind:
        spec = {k: v for k, v in _schedule_data(args).items() if v is not None}
        if spec.get("kind") == "cron" and not spec.get("day_and"):
            spec.pop("day_and", None)
        if current is not None:
            for key in ("catch_up", "misfire_grace", "jitter", "max_catch_up"):
                if key in current and key not in spec:
                    spec[key] = current[key]
    elif current is not None:
        spec = dict(current)
        if args.tz is not None:
            spec["timezone"] = args.tz
        for name in ("start", "end"):
            if getattr(args, name) is not None:
                spec[name] = getattr(args, name)
    else:
        raise CLIError("give the schedule: --cron, --every, --at, --solar or --spec")
    for option, key in _SPEC_OVERRIDES.items():
        value = getattr(args, option, None)
        if value is not None and option not in ("start", "end"):
            spec[key] = value
    return spec if (has_kind or spec != current) else None


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    from z4j_core.cli.tokens import parse_labels

    body: dict[str, Any] = {}
    for key in ("task", "engine", "app", "description"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.args is not None:
        body["args"] = _json_arg(args.args, "--args", list)
    if args.kwargs is not None:
        body["kwargs"] = _json_arg(args.kwargs, "--kwargs", dict)
    if args.labels is not None:
        body["labels"] = parse_labels(args.labels)
    options = {}
    if args.queue is not None:
        options["queue"] = args.queue
    if args.priority is not None:
        options["priority"] = args.priority
    if args.expires is not None:
        options["expires_seconds"] = args.expires
    if options:
        body["options"] = options
    return body


def _add(args: argparse.Namespace) -> int:
    body = {"name": args.name, **_fields(args), "schedule": _spec_from(args, None)}
    for needed in ("task", "engine"):
        if needed not in body:
            raise CLIError(f"give --{needed}")
    if args.id:
        body["id"] = args.id
    if args.paused:
        body["enabled"] = False
    created = BrainClient.from_args(args).post("schedules", body)
    if args.json:
        print(json.dumps(created, indent=2))
        return 0
    print(f"created schedule {created['name']!r} (id {created['id']}): {_describe(created)}")
    return 0


def _describe(item: dict[str, Any]) -> str:
    from z4j_core.scheduling import ScheduleError, schedule_from_dict

    try:
        return schedule_from_dict(item["schedule"]).describe()
    except ScheduleError:
        return json.dumps(item["schedule"])


def _next_slot(item: dict[str, Any], now: datetime) -> str:
    from z4j_core.scheduling import ScheduleError, format_instant, schedule_from_dict

    if not item["enabled"]:
        return "-"
    try:
        schedule = schedule_from_dict(item["schedule"])
    except ScheduleError:
        return "?"
    after = max(datetime.fromtimestamp(item["cursor"], timezone.utc), now)
    slot = schedule.next_after(after)
    return "never" if slot is None else format_instant(slot)


def _list(args: argparse.Namespace) -> int:
    client = BrainClient.from_args(args)
    items = client.get("schedules")["schedules"]
    observed: list[dict[str, Any]] = []
    if args.all:
        for inventory in client.get("inventory")["inventory"]:
            for native in inventory.get("schedules") or []:
                observed.append(
                    {
                        **native,
                        "engine": inventory["engine"],
                        "app": inventory["app"],
                        "agent_instance": inventory["agent_instance"],
                    }
                )
    if args.json:
        print(json.dumps({"schedules": items, "observed": observed} if args.all else items,
                         indent=2))  # fmt: skip
        return 0
    now = datetime.now(timezone.utc)
    rows: list[list[Any]] = [
        [
            item["name"],
            _describe(item),
            item["task"],
            f"{item['engine']}/{item['app']}",
            "active" if item["enabled"] else f"paused {item['pause_note']}".strip(),
            _next_slot(item, now),
        ]
        for item in items
    ]
    for native in observed:
        rows.append(
            [
                native["name"],
                native["expression"],
                native["task"],
                f"{native['engine']}/{native['app']}",
                f"observed ({native['source']}, read-only, agent {native['agent_instance']})",
                "-",
            ]
        )
    if not rows:
        print("no schedules (create one with z4j schedules add)")
        return 0
    print_table(("name", "schedule", "task", "engine/app", "state", "next"), rows)
    counts = client.get("scheduler").get("fires", {})
    lost = {state: counts.get(state, 0) for state in ("missed", "unknown")}
    if any(lost.values()):
        print(
            f"note: {lost['missed']} fires missed (no agent took them in time) and "
            f"{lost['unknown']} unknown (no answer); see z4j schedules history NAME",
            file=sys.stderr,
        )
    ours = {(i["engine"], i["task"]): i["name"] for i in items}
    for native in observed:
        both = ours.get((native["engine"], native["task"]))
        if both is not None:
            print(
                f"warning: task {native['task']!r} is scheduled both natively "
                f"({native['source']} {native['name']!r}) and in z4j ({both!r}): it runs for both",
                file=sys.stderr,
            )
    return 0


def _show(args: argparse.Namespace) -> int:
    item = BrainClient.from_args(args).get(_path(args.name))
    if args.json:
        print(json.dumps(item, indent=2))
        return 0
    state = (
        "active"
        if item["enabled"]
        else "paused" + (f" ({item['pause_note']})" if item["pause_note"] else "")
    )
    lines = [
        ("name", item["name"]),
        ("id", item["id"]),
        ("schedule", item.get("describe") or _describe(item)),
        ("task", item["task"]),
        ("engine/app", f"{item['engine']}/{item['app']}"),
        ("state", state),
        ("catch-up", item["schedule"].get("catch_up", "skip")),
        ("args", json.dumps(item["args"])),
        ("kwargs", json.dumps(item["kwargs"])),
        ("options", json.dumps(item["options"])),
        ("labels", json.dumps(item["labels"])),
        ("description", item["description"] or "-"),
        ("created", f"{timestamp(item['created_at'])} by {item['created_by']}"),
        ("updated", f"{timestamp(item['updated_at'])} by {item['updated_by']}"),
        ("next slots", ", ".join(item.get("next_slots") or []) or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _edit(args: argparse.Namespace) -> int:
    client = BrainClient.from_args(args)
    current = client.get(_path(args.name))
    changes = _fields(args)
    spec = _spec_from(args, current["schedule"])
    if spec is not None:
        changes["schedule"] = spec
    if args.rename:
        changes["name"] = args.rename
    if not changes:
        raise CLIError("nothing to change: give at least one option (see --help)")
    edited = client.request("PATCH", _path(args.name), body=changes)
    if args.json:
        print(json.dumps(edited, indent=2))
        return 0
    print(f"edited schedule {edited['name']!r}: {_describe(edited)} (effective now)")
    return 0


def _pause(args: argparse.Namespace) -> int:
    BrainClient.from_args(args).post(_path(args.name, "/pause"), {"note": args.note or ""})
    print(f"paused schedule {args.name!r}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    BrainClient.from_args(args).post(_path(args.name, "/resume"), {})
    print(f"resumed schedule {args.name!r}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    BrainClient.from_args(args).delete(_path(args.name))
    print(f"deleted schedule {args.name!r}")
    return 0


def _trigger(args: argparse.Namespace) -> int:
    body = {"idempotency_key": args.idempotency_key} if args.idempotency_key else {}
    answer = BrainClient.from_args(args).post(_path(args.name, "/trigger"), body)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    fire = answer["fire"]
    if answer["created"]:
        print(f"triggered {args.name!r}: fire {fire['fire_id']} ({fire['state']})")
    else:
        print(f"already triggered with that key: fire {fire['fire_id']} ({fire['state']})")
    return 0


def _history(args: argparse.Namespace) -> int:
    answer = BrainClient.from_args(args).get(_path(args.name, "/fires"), {"limit": args.limit})
    fires = answer["fires"]
    if args.json:
        print(json.dumps(fires, indent=2))
        return 0
    if not fires:
        print(f"schedule {args.name!r} has not fired yet")
        return 0
    rows = [
        [
            timestamp(f["slot"]),
            f["fire_id"],
            f["kind"],
            f["state"],
            f["agent_instance"],
            f["native_id"],
            f["task_state"] or ("-" if f["state"] != "enqueued" else "queued"),
        ]
        for f in fires
    ]
    print_table(("slot (utc)", "fire id", "kind", "state", "agent", "native id", "task"), rows)
    counts: dict[str, int] = {}
    for f in fires:
        counts[f["state"]] = counts.get(f["state"], 0) + 1
    problems = {k: v for k, v in counts.items() if k in ("missed", "unknown", "failed", "rejected")}
    if problems:
        text = ", ".join(f"{v} {k}" for k, v in sorted(problems.items()))
        print(f"note: {text} among these fires (see the reason with --json)", file=sys.stderr)
    return 0
