"""`z4j schedules ...`: schedule commands. `preview` is pure and needs no brain.

Owns the `schedules` parser and its subcommands; each subcommand registers itself beside
`preview` (commands that talk to the brain over HTTP belong here too). Must stay light to
import: the scheduler core loads only when a subcommand runs.
`preview` is the one place in the scheduler's code that may read the clock, for `--after`.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from z4j_core.cli import CLIError

if TYPE_CHECKING:
    from z4j_core.scheduling import Schedule

MAX_PREVIEW_COUNT = 1000


def register(subparsers: Any) -> None:
    schedules = subparsers.add_parser(
        "schedules", help="work with schedules (preview fire times, ...)"
    )
    commands = schedules.add_subparsers(dest="schedules_command", metavar="SUBCOMMAND")
    schedules.set_defaults(func=lambda args: _print_help(schedules))
    _register_preview(commands)
    from z4j_core.cli import schedule_admin, schedule_adopt, schedule_files

    schedule_admin.register(commands)
    schedule_adopt.register(commands)
    schedule_files.register(commands)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def add_schedule_arguments(parser: argparse.ArgumentParser, kind_title: str) -> None:
    """The options that spell a schedule, declared once for `preview`, `add` and `edit`
    (``_schedule_data`` turns them into the API's schedule shape)."""
    from z4j_core.cli.tables import DURATION_EXAMPLES

    # Values are taken as strings and checked in the handler, so every bad value gets the
    # one-line `z4j: error: ...` that names it.
    kind = parser.add_argument_group(kind_title)
    kind.add_argument(
        "--cron",
        metavar="EXPR",
        help=(
            'cron: "minute hour day month weekday", e.g. "30 1 * * *" (01:30 daily); an optional '
            'sixth field, written last, is the second: "*/10 * * * * 30" fires at second 30 of '
            'every tenth minute, "*/10 * * * * *" at every second of every tenth minute, and '
            '"* * * * * */10" every ten seconds'
        ),
    )
    kind.add_argument("--every", metavar="INTERVAL", help=f"interval: {DURATION_EXAMPLES}")
    kind.add_argument("--at", metavar="INSTANT", help="one-shot ISO 8601 instant with offset")
    kind.add_argument(
        "--solar", metavar="EVENT", help="sunrise, sunset, dawn, dusk, noon or midnight"
    )
    kind.add_argument("--spec", metavar="JSON", help="a whole schedule as JSON (as the API takes)")
    parser.add_argument("--tz", metavar="ZONE", help="IANA time zone (default UTC)")
    parser.add_argument("--day-and", action="store_true", help="cron: day-of-month AND weekday")
    parser.add_argument("--anchor", metavar="INSTANT", help="interval: the first slot")
    parser.add_argument("--lat", metavar="DEG", help="solar: latitude -90..90")
    parser.add_argument("--lon", metavar="DEG", help="solar: longitude -180..180")
    parser.add_argument("--elevation", metavar="M", help="solar: elevation in metres")
    parser.add_argument(
        "--depression", metavar="KIND", help="solar dawn/dusk: civil, nautical, astronomical"
    )
    parser.add_argument("--offset", metavar="DURATION", help="solar: shift, e.g. -30m or 10m")
    parser.add_argument("--start", metavar="INSTANT", help="no slot before this instant")
    parser.add_argument("--end", metavar="INSTANT", help="no slot after this instant")


def _register_preview(commands: Any) -> None:
    preview = commands.add_parser(
        "preview",
        help="print the next fire instants of a schedule (pure: needs no brain)",
        description=(
            "Print the next fire instants of a schedule given on the command line. "
            "Give exactly one of --cron, --every, --at, --solar or --spec."
        ),
    )
    add_schedule_arguments(preview, "schedule (exactly one)")
    preview.add_argument(
        "--after", metavar="INSTANT", help="start after this instant (default now)"
    )
    preview.add_argument("--count", metavar="N", default="5", help="how many fires (default 5)")
    preview.add_argument("--json", action="store_true", help="print a JSON list")
    preview.set_defaults(func=_run_preview)


def _schedule_data(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [
        name for name in ("cron", "every", "at", "solar", "spec") if getattr(args, name) is not None
    ]
    if len(chosen) != 1:
        given = ", ".join(f"--{name}" for name in chosen) or "none"
        raise CLIError(
            f"give exactly one of --cron, --every, --at, --solar or --spec (got {given})"
        )
    data: dict[str, Any]
    if args.spec is not None:
        try:
            data = json.loads(args.spec)
        except json.JSONDecodeError as exc:
            raise CLIError(f"--spec is not valid JSON: {exc.msg} at character {exc.pos}") from None
        if not isinstance(data, dict):
            raise CLIError(f"--spec must be a JSON object, got {type(data).__name__}")
    elif args.cron is not None:
        data = {"kind": "cron", "expression": args.cron, "day_and": bool(args.day_and)}
    elif args.every is not None:
        data = {"kind": "interval", "every": args.every, "anchor": args.anchor}
    elif args.at is not None:
        data = {"kind": "oneshot", "at": args.at}
    else:
        if args.lat is None or args.lon is None:
            raise CLIError("--solar needs --lat and --lon")
        data = {
            "kind": "solar",
            "event": args.solar,
            "latitude": _float(args.lat, "--lat"),
            "longitude": _float(args.lon, "--lon"),
        }
        if args.elevation is not None:
            data["elevation"] = _float(args.elevation, "--elevation")
        if args.depression is not None:
            data["depression"] = args.depression
        if args.offset is not None:
            data["offset"] = args.offset
    if args.tz is not None:
        data["timezone"] = args.tz
    elif args.spec is None and args.at is not None:
        data["timezone"] = "UTC"
    for name in ("start", "end"):
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    return data


def _float(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CLIError(f"{option} {text!r} is not a number") from None


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise CLIError(f"--count {text!r} is not a whole number") from None
    if not 1 <= count <= MAX_PREVIEW_COUNT:
        raise CLIError(f"--count {count} is outside 1..{MAX_PREVIEW_COUNT}")
    return count


def _dst_note(schedule: Schedule, slot: datetime) -> str:
    """A mark for fires on a DST fold or moved out of a gap."""
    from z4j_core.scheduling import CronSchedule

    local = slot.astimezone(schedule.timezone)
    other = local.replace(fold=1 - local.fold)
    if other.utcoffset() != local.utcoffset():
        # The wall time exists twice (a fall-back): say which occurrence this is.
        if local.fold == 1:
            return "DST fall-back: second occurrence of this wall time"
        if other.astimezone(timezone.utc).astimezone(schedule.timezone).fold == 1:
            return "DST fall-back: first occurrence of this wall time"
    if isinstance(schedule, CronSchedule) and not schedule.rule.matches_wall(
        local.replace(tzinfo=None)
    ):
        return "DST gap: the scheduled wall time was skipped; fires at the first instant after"
    return ""


def preview(
    data: dict[str, Any], after: datetime, count: int
) -> tuple[Schedule, list[dict[str, Any]]]:
    """The schedule ``data`` spells and its next ``count`` fires after ``after``, each with its
    UTC and local times and a DST note: what `z4j schedules preview` prints, and what the
    console's schedule form shows while it is typed. Raises ``ScheduleError``."""
    from z4j_core.scheduling import (
        OneShotSchedule,
        check_fires_within,
        format_instant,
        schedule_from_dict,
    )

    schedule = schedule_from_dict(data)
    if not isinstance(schedule, OneShotSchedule):
        check_fires_within(schedule, after)
    rows = []
    for slot in schedule.slots(after, count):
        local = slot.astimezone(schedule.timezone)
        offset = local.utcoffset() or timedelta(0)
        rows.append(
            {
                "utc": format_instant(slot),
                "local": local.isoformat(),
                "utc_offset": local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:],
                "offset_seconds": int(offset.total_seconds()),
                "fold": local.fold,
                "note": _dst_note(schedule, slot),
            }
        )
    return schedule, rows


def _run_preview(args: argparse.Namespace) -> int:
    from z4j_core.scheduling import ScheduleError, format_instant, parse_instant

    count = _count(args.count)
    try:
        data = _schedule_data(args)
        if args.after is not None:
            after = parse_instant(args.after, "--after")
        else:
            after = datetime.now(timezone.utc)
        schedule, rows = preview(data, after, count)
        described = schedule.describe()
    except ScheduleError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Schedule: {described}")
    if not rows:
        print(f"No fire after {format_instant(after)}.")
        return 0
    zone = str(schedule.timezone.key)
    header = ("#", "UTC", f"local ({zone})", "note")
    table = [
        (str(i), str(row["utc"]), str(row["local"]), str(row["note"]))
        for i, row in enumerate(rows, 1)
    ]
    widths = [max(len(header[c]), *(len(r[c]) for r in table)) for c in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(header[:3], widths, strict=True)) + "  " + header[3])
    for row in table:
        cells = "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
        print((cells + "  " + ("* " + row[3] if row[3] else "")).rstrip())
    if len(rows) < count:
        print(f"(the schedule ends after {len(rows)} fire{'s' if len(rows) != 1 else ''})")
    return 0
