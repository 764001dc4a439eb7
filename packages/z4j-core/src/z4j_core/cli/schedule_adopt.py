"""`z4j schedules adopt OBSERVED_NAME`: a native schedule an agent observes becomes a brain
schedule with the same task, arguments, queue and times.

Owns finding the observed schedule in the brain's inventories (one per engine, app, source and
name, whichever agents report it), printing the adoption (the schedule, the next fire times of
both side by side, what differs) and creating it. Refuses, with the reason, what z4j cannot
express; where the schedules differ, `--dry-run` shows how and `--accept-differences` adopts
anyway. The conversion is `z4j_core.scheduling.adopt`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from z4j_core.cli import CLIError
from z4j_core.cli.http import BrainClient, add_client_arguments
from z4j_core.cli.tables import print_table

if TYPE_CHECKING:
    from z4j_core.scheduling.adopt import Adoption, Row


def register(commands: Any) -> None:
    adopt = commands.add_parser(
        "adopt", help="turn a native schedule an agent observes into a brain schedule"
    )
    adopt.add_argument("observed_name", metavar="OBSERVED_NAME", help="as `schedules list --all`")
    adopt.add_argument("--engine", help="which engine's schedule (when the name is in several)")
    adopt.add_argument("--app", help="which app's schedule (when the name is in several)")
    adopt.add_argument("--source", help="which native scheduler, e.g. celery_beat, rq_cron")
    adopt.add_argument("--name", help="the brain schedule's name (default: the observed name)")
    adopt.add_argument("--tz", metavar="ZONE", help="the zone of a host with an unnamed zone")
    adopt.add_argument("--args", metavar="JSON", help="positional arguments, as a JSON list")
    adopt.add_argument("--kwargs", metavar="JSON", help="keyword arguments, as a JSON object")
    adopt.add_argument("--paused", action="store_true", help="create it paused")
    adopt.add_argument(
        "--dry-run", action="store_true", help="print both schedules' next fires, create nothing"
    )
    adopt.add_argument(
        "--accept-differences",
        action="store_true",
        help="adopt although the dry run showed differences (it prints them again)",
    )
    adopt.add_argument("--json", action="store_true", help="print the adoption as JSON")
    adopt.set_defaults(func=_adopt)
    add_client_arguments(adopt)


def find_observed(
    inventory: list[dict[str, Any]],
    name: str,
    engine: str | None,
    app: str | None,
    source: str | None,
) -> dict[str, Any]:
    """The newest report of the one observed schedule called `name` (by engine, app and
    source); a clear error when none or several match."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in inventory:
        if engine is not None and item["engine"] != engine:
            continue
        if app is not None and item["app"] != app:
            continue
        for native in item.get("schedules") or []:
            if native.get("name") != name or (source is not None and native["source"] != source):
                continue
            key = (item["engine"], item["app"], native["source"])
            known = found.get(key)
            if known is None or item["updated_at"] > known["updated_at"]:
                found[key] = {
                    **native,
                    "engine": item["engine"],
                    "app": item["app"],
                    "updated_at": item["updated_at"],
                    "agent_instance": item["agent_instance"],
                }
    if not found:
        where = " ".join(
            f"--{k} {v}" for k, v in (("engine", engine), ("app", app), ("source", source)) if v
        )
        raise CLIError(
            f"no agent reports a native schedule named {name!r}"
            + (f" ({where})" if where else "")
            + ": see `z4j schedules list --all`"
        )
    if len(found) > 1:
        choices = ", ".join(f"--engine {e} --app {a} --source {s}" for e, a, s in sorted(found))
        raise CLIError(f"several native schedules are named {name!r}: give one of {choices}")
    return next(iter(found.values()))


def printable(value: object) -> str:
    """An application's text (a schedule's name or expression) made safe to print: control
    characters (terminal escapes, newlines) are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def _json_arg(text: str | None, option: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{option} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, kind):
        raise CLIError(f"{option} must be {'a JSON list' if kind is list else 'a JSON object'}")
    return value


def _print_comparison(adoption: Adoption, observed: dict[str, Any], rows: list[Row]) -> None:
    from z4j_core.scheduling import format_instant, schedule_from_dict

    print(
        f"{printable(observed['source'])} {observed['name']!r} "
        f"({printable(observed['engine'])}/{printable(observed['app'])}): "
        f"{printable(observed['expression'])}"
    )
    print(f"  as z4j: {schedule_from_dict(adoption.schedule).describe()}")
    print(f"  task {adoption.task}, args {json.dumps(adoption.args)}, kwargs "
          f"{json.dumps(adoption.kwargs)}, options {json.dumps(adoption.options)}")  # fmt: skip
    table = [
        [
            format_instant(r.brain) if r.brain else "-",
            format_instant(r.native) if r.native else "-",
            "same" if r.same else ("differs" if r.native is not None else "(not reported)"),
        ]
        for r in rows
    ]
    print_table(("z4j (utc)", f"{printable(observed['source'])} (utc)", ""), table)
    for note in adoption.notes:
        print(f"note: {printable(note)}")
    for difference in adoption.differences:
        print(f"differs: {printable(difference)}")


def _adopt(args: argparse.Namespace) -> int:
    from z4j_core.scheduling.adopt import NotAdoptable, adopt, compare, mismatches, schedule_name

    client = BrainClient.from_args(args)
    inventory = client.get("inventory")["inventory"]
    observed = find_observed(inventory, args.observed_name, args.engine, args.app, args.source)
    now = datetime.now(timezone.utc)
    try:
        adoption = adopt(
            observed,
            now,
            tz=args.tz,
            args=_json_arg(args.args, "--args", list),
            kwargs=_json_arg(args.kwargs, "--kwargs", dict),
        )
    except NotAdoptable as exc:
        raise CLIError(printable(exc)) from None
    rows = compare(adoption, observed.get("next_runs") or [], now)
    differing = mismatches(rows)
    differences = list(adoption.differences)
    if differing:
        source = observed["source"]
        differences.append(
            f"{len(differing)} of the next {len(rows)} fire times differ from {source}'s"
        )
    if args.json:
        print(json.dumps({
            "observed": observed, "schedule": adoption.schedule, "task": adoption.task,
            "args": adoption.args, "kwargs": adoption.kwargs, "options": adoption.options,
            "differences": differences, "notes": adoption.notes, "remove": adoption.remove,
            "fires": [{"z4j": r.brain.isoformat() if r.brain else None,
                       "native": r.native.isoformat() if r.native else None,
                       "same": r.same} for r in rows],
        }, indent=2))  # fmt: skip
    else:
        _print_comparison(adoption, observed, rows)
        if differing:
            print(f"differs: {differences[-1]}")
    if args.dry_run:
        if not args.json:
            verdict = "exact" if not differences else "with the differences above"
            print(f"dry run: adopting would create a schedule {verdict}; nothing created")
        return 0
    if differences and not args.accept_differences:
        raise CLIError(
            f"{printable(observed['source'])} {observed['name']!r} cannot be adopted exactly "
            f"({printable('; '.join(differences))}): see them with --dry-run, and pass "
            "--accept-differences to adopt it anyway"
        )
    name = args.name or schedule_name(observed["name"])
    extra: dict[str, Any] = {"enabled": False} if args.paused else {}
    created = client.post(
        "schedules", adoption.body(name, observed["engine"], observed["app"], **extra)
    )
    if not args.json:
        print(f"created schedule {created['name']!r} (id {created['id']})")
    print(
        f"warning: {printable(observed['source'])} {observed['name']!r} still runs natively, so "
        f"the task now runs twice per slot until you remove it: {printable(adoption.remove)}",
        file=sys.stderr,
    )
    return 0
