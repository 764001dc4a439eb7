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
from z4j_core.cli.http import (
    BrainClient,
    add_client_arguments,
    add_page_arguments,
    page_query,
    print_next_cursor,
)
from z4j_core.cli.tables import (
    DURATION_EXAMPLES,
    duration_seconds,
    emit_json,
    instant,
    print_table,
    timestamp,
)

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
    from z4j_core.cli.schedules import add_schedule_arguments

    add_schedule_arguments(parser, "schedule (one of)")
    parser.add_argument(
        "--catch-up", dest="catch_up", choices=("skip", "one", "all"), help="after downtime"
    )
    parser.add_argument(
        "--misfire-grace",
        metavar="DURATION",
        help=f"how late is on time (60s): {DURATION_EXAMPLES}",
    )
    parser.add_argument(
        "--jitter", metavar="DURATION", help=f"largest delay added to a slot: {DURATION_EXAMPLES}"
    )
    parser.add_argument("--max-catch-up", metavar="N", type=int, help="catch-up 'all': per tick")
    parser.add_argument("--task", help="the task's name as the engine knows it")
    parser.add_argument("--engine", help="huey, celery, rq, dramatiq, arq, taskiq")
    parser.add_argument("--app", help="the app (default: the one app running that engine)")
    parser.add_argument("--args", metavar="JSON", help="positional arguments as a JSON list")
    parser.add_argument("--kwargs", metavar="JSON", help="keyword arguments as a JSON object")
    parser.add_argument("--queue", help="the engine's queue")
    parser.add_argument("--priority", type=int, help="the engine's priority")
    parser.add_argument(
        "--expires", metavar="DURATION", help=f"expiry after enqueue: {DURATION_EXAMPLES}"
    )
    parser.add_argument("--labels", help="only agents with these labels: k=v,k2=v2")
    parser.add_argument("--description", help="free text")
    parser.add_argument(
        "--allow-past",
        dest="allow_past",
        action="store_true",
        help="one-shot: an instant already past fires once, now (refused otherwise)",
    )
    parser.add_argument(
        "--overlap",
        choices=("allow", "skip", "buffer-one", "cancel-previous"),
        help="while the previous fire's task is queued or running: allow (default) fires "
        "anyway, skip records the slot skipped, buffer-one lets at most one wait, "
        "cancel-previous fires and cancels the previous task (needs agents that can cancel)",
    )
    parser.add_argument(
        "--pause-after-failures",
        dest="pause_after_failures",
        metavar="N",
        help="pause the schedule after N consecutive failed task outcomes ('off' removes it)",
    )
    parser.add_argument(
        "--result-log",
        dest="result_log",
        choices=("all", "failures", "none"),
        help="what retention keeps of the fires' tasks (default all)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="keep it even when the engine, app or task is not among what agents reported "
        "(an app not deployed yet); its health says why it may not run",
    )


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
    add_page_arguments(history, 20)
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(func=_history)

    backfill = commands.add_parser(
        "backfill",
        help="fire every slot in a past range that has no fire yet (paced, audited)",
        description="Fire every slot of a schedule between --from and --to (both included, "
        "at most now) that has no fire yet, under the fire id the live slot gets: run twice, "
        "or racing the live leader, it never fires a slot twice.",
    )
    backfill.add_argument("name")
    backfill.add_argument(
        "--from", dest="start", required=True, metavar="INSTANT",
        help="ISO 8601 instant with offset: the range's start",
    )  # fmt: skip
    backfill.add_argument(
        "--to", dest="end", required=True, metavar="INSTANT",
        help="ISO 8601 instant with offset, at most now: the range's end",
    )  # fmt: skip
    backfill.add_argument("--dry-run", action="store_true", help="list the slots, fire nothing")
    backfill.add_argument("--json", action="store_true", help="print JSON")
    backfill.set_defaults(func=_backfill)

    for parser in (add, listing, show, edit, pause, resume, remove, trigger, history, backfill):
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
        try:
            options["expires_seconds"] = duration_seconds(args.expires, "--expires")
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if options:
        body["options"] = options
    for key in ("overlap", "result_log"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.pause_after_failures is not None:
        body["pause_after_failures"] = _failures(args.pause_after_failures)
    return body


def _failures(text: str) -> int | None:
    if text.strip().lower() in ("off", "0"):
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 1000:
        raise CLIError(f"--pause-after-failures {text!r} must be 1 to 1000, or 'off'")
    return count


def _add(args: argparse.Namespace) -> int:
    body = {"name": args.name, **_fields(args), "schedule": _spec_from(args, None)}
    for needed in ("task", "engine"):
        if needed not in body:
            raise CLIError(f"give --{needed}")
    if args.id:
        body["id"] = args.id
    if args.paused:
        body["enabled"] = False
    if args.allow_past:
        body["allow_past"] = True
    if args.force:
        body["force"] = True
    created = BrainClient.from_args(args).post("schedules", body)
    if args.json:
        emit_json(created)
        return 0
    print(f"created schedule {created['name']!r} (id {created['id']}): {_describe(created)}")
    _warn_problems(args, created)
    return 0


def _warn_problems(args: argparse.Namespace, item: dict[str, Any]) -> None:
    """After --force: say why the schedule may not run (the brain's health of it)."""
    if not args.force:
        return
    shown = BrainClient.from_args(args).get(_path(item["id"]))
    for problem in (shown.get("health") or {}).get("problems") or []:
        print(f"warning: {problem}; kept (--force), it may not run", file=sys.stderr)


def _describe(item: dict[str, Any]) -> str:
    from z4j_core.scheduling import schedule_from_dict

    try:
        return schedule_from_dict(item["schedule"]).describe()
    except Exception:  # a stored row this CLI cannot read: show it as stored
        return json.dumps(item["schedule"])


def _next_slot(item: dict[str, Any], now: datetime) -> str:
    from z4j_core.scheduling import schedule_from_dict

    if not item["enabled"] or item.get("broken"):
        return "-"
    try:
        schedule = schedule_from_dict(item["schedule"])
        after = max(datetime.fromtimestamp(item["cursor"], timezone.utc), now)
        slot = schedule.next_after(after)
    except Exception:  # the brain's leader says why in `state` once it has tried
        return "?"
    return "never" if slot is None else instant(slot)


def _state(item: dict[str, Any]) -> str:
    """The health state the brain worked out, with its note; the stored state without it."""
    health = item.get("health")
    if health:
        note = health["note"]
        return str(health["state"]) + (f": {note}" if note else "")
    if item.get("broken"):
        return f"broken: {item['broken']}"
    if item["enabled"]:
        return "active"
    return "paused" + (f" ({item['pause_note']})" if item["pause_note"] else "")


def _list(args: argparse.Namespace) -> int:
    client = BrainClient.from_args(args)
    items = client.get("schedules")["schedules"]
    observed: list[dict[str, Any]] = client.get("observed")["observed"] if args.all else []
    if args.json:
        emit_json({"schedules": items, "observed": observed} if args.all else items)
        return 0
    now = datetime.now(timezone.utc)
    rows: list[list[Any]] = [
        [
            item["name"],
            _describe(item),
            item["task"],
            f"{item['engine']}/{item['app']}",
            _state(item),
            _last_fire(item),
            (item.get("health") or {}).get("consecutive_failures", "-"),
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
                _observed_state(native),
                "-",
                "-",
                "-",
            ]
        )
    if not rows:
        print("no schedules (create one with z4j schedules add)")
        return 0
    print_table(("name", "schedule", "task", "engine/app", "state", "last fire", "failures",
                 "next"), rows)  # fmt: skip
    counts = client.get("scheduler").get("fires", {})
    lost = {state: counts.get(state, 0) for state in ("missed", "unknown")}
    if any(lost.values()):
        print(
            f"note: {lost['missed']} fires missed (no agent took them in time) and "
            f"{lost['unknown']} unknown (no answer); see z4j schedules history NAME",
            file=sys.stderr,
        )
    from z4j_core.scheduling.adopt import remove_hint

    for native in observed:
        if native["stale"]:
            print(
                f"note: observed {native['source']} schedule {native['name']!r} "
                f"({native['engine']}/{native['app']}) is stale: no connected agent reports it, "
                f"last reported {timestamp(native['last_reported_at'])}",
                file=sys.stderr,
            )
    ours = {(i["engine"], i["task"]): i["name"] for i in items}
    for native in observed:
        both = ours.get((native["engine"], native["task"]))
        if both is not None:
            print(
                f"warning: task {native['task']!r} is scheduled both natively "
                f"({native['source']} {native['name']!r}) and in z4j ({both!r}): it runs for "
                f"both; to keep only z4j's, {remove_hint(native['source'], native['name'])}",
                file=sys.stderr,
            )
    return 0


def _observed_state(native: dict[str, Any]) -> str:
    """An observed schedule: its source, how many of the agents that report it are connected
    (of how many), and STALE when none reported it for a while."""
    agents = native["agents"]
    live = sum(1 for a in agents if a["connected"])
    stale = " STALE" if native["stale"] else ""
    return f"observed ({native['source']}, read-only){stale} {live}/{len(agents)} agents"


def _last_fire(item: dict[str, Any]) -> str:
    """The newest fire: its slot, its state and its task's outcome."""
    last = (item.get("health") or {}).get("last_fire")
    if last is None:
        return "-"
    outcome = last["task_state"] or ("queued" if last["state"] == "enqueued" else None)
    return f"{timestamp(last['slot'])} {last['state']}" + (f"/{outcome}" if outcome else "")


def _show(args: argparse.Namespace) -> int:
    item = BrainClient.from_args(args).get(_path(args.name))
    if args.json:
        emit_json(item)
        return 0
    lines = [
        ("name", item["name"]),
        ("id", item["id"]),
        ("schedule", item.get("describe") or _describe(item)),
        ("task", item["task"]),
        ("engine/app", f"{item['engine']}/{item['app']}"),
        ("state", _state(item)),
        ("last fire", _last_fire(item)),
        ("failures", _failures_line(item)),
        ("next fire", (item.get("health") or {}).get("next_fire") or "-"),
        ("overlap", item.get("overlap", "allow")),
        ("result log", item.get("result_log", "all")),
        ("catch-up", item["schedule"].get("catch_up", "skip")),
        ("skipped", _skipped(item)),
        ("args", json.dumps(item["args"])),
        ("kwargs", json.dumps(item["kwargs"])),
        ("options", json.dumps(item["options"])),
        ("labels", json.dumps(item["labels"])),
        ("description", item["description"] or "-"),
        ("created", f"{timestamp(item['created_at'])} by {item['created_by']}"),
        ("updated", f"{timestamp(item['updated_at'])} by {item['updated_by']}"),
        ("next slots", ", ".join(instant(s) for s in item.get("next_slots") or []) or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    from z4j_core.cli.schedule_adopt import printable

    for twin in item.get("native_twins") or []:
        print(
            f"warning: {printable(twin['source'])} {twin['name']!r} "
            f"({printable(twin['expression'])}) still runs {item['task']!r} natively, so it "
            f"runs for both; to keep only z4j's, {printable(twin['remove'])}",
            file=sys.stderr,
        )
    return 0


def _failures_line(item: dict[str, Any]) -> str:
    count = (item.get("health") or {}).get("consecutive_failures", 0)
    limit = item.get("pause_after_failures")
    text = f"{count} in a row"
    return text + (f" (pauses after {limit})" if limit else "")


def _skipped(item: dict[str, Any]) -> str:
    """Slots catch-up decided not to fire (after downtime, per its policy)."""
    through = item.get("skipped_through")
    if through is None:
        return "-"
    return f"catch-up skipped missed slots up to {timestamp(through)}"


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
    if args.allow_past:
        changes["allow_past"] = True
    if args.force:
        changes["force"] = True
    edited = client.request("PATCH", _path(args.name), body=changes)
    if args.json:
        emit_json(edited)
        return 0
    print(f"edited schedule {edited['name']!r}: {_describe(edited)} (effective now)")
    _warn_problems(args, edited)
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
        emit_json(answer)
        return 0
    fire = answer["fire"]
    if answer["created"]:
        print(f"triggered {args.name!r}: fire {fire['fire_id']} ({fire['state']})")
    else:
        print(f"already triggered with that key: fire {fire['fire_id']} ({fire['state']})")
    return 0


def _history(args: argparse.Namespace) -> int:
    answer = BrainClient.from_args(args).get(_path(args.name, "/fires"), page_query(args))
    fires = answer["fires"]
    if args.json:
        emit_json(fires)
        print_next_cursor(answer)
        return 0
    schedule = answer["schedule"]
    if schedule.get("deleted_at") is not None:
        print(
            f"schedule {schedule['name']!r} (id {schedule['id']}) was deleted at "
            f"{timestamp(schedule['deleted_at'])} by {schedule.get('deleted_by') or '?'}"
        )
    if schedule.get("skipped_through") is not None:
        print(_skipped(schedule))
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
            f.get("decision") or "",
        ]
        for f in fires
    ]
    print_table(("slot", "fire id", "kind", "state", "agent", "native id", "task",
                 "overlap decision"), rows)  # fmt: skip
    counts: dict[str, int] = {}
    for f in fires:
        counts[f["state"]] = counts.get(f["state"], 0) + 1
    problems = {k: v for k, v in counts.items() if k in ("missed", "unknown", "failed", "rejected")}
    if problems:
        text = ", ".join(f"{v} {k}" for k, v in sorted(problems.items()))
        print(f"note: {text} among these fires (see the reason with --json)", file=sys.stderr)
    print_next_cursor(answer)
    return 0


def _backfill(args: argparse.Namespace) -> int:
    body = {"from": args.start, "to": args.end, "dry_run": args.dry_run}
    answer = BrainClient.from_args(args).post(_path(args.name, "/backfill"), body)
    if args.json:
        emit_json(answer)
        return 0
    slots = answer["slots"]
    todo = [s for s in slots if s["had_fire"] is None]
    if args.dry_run:
        rows = [
            [timestamp(s["slot"]), s["fire_id"],
             "would fire" if s["had_fire"] is None else f"has a fire ({s['had_fire']})"]
            for s in slots
        ]  # fmt: skip
        if rows:
            print_table(("slot (utc)", "fire id", "backfill"), rows)
        print(f"dry run: {len(todo)} of {len(slots)} slots in the range would fire; nothing fired")
        return 0
    print(
        f"backfilled {answer['schedule']!r}: {answer['fired']} fires written, paced, for "
        f"{len(slots)} slots in the range ({len(slots) - len(todo)} already had a fire)"
    )
    return 0
