"""How the operator CLI shows things: aligned tables, times, ages, durations, JSON.

Owns the look of every listing (headers in capitals, columns padded to their widest cell, the
table fitted to the terminal's width with long cells cut by an ellipsis), the one time format
(ISO 8601 with an explicit offset, in the zone chosen by ``--tz`` / ``Z4J_TZ``, UTC by default)
in tables and ``--json`` alike, and the parsing of user-typed durations. Reads no clock itself
(``now`` is passed in); the display zone is set once per run by ``z4j_core.cli.main``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any, Final, TextIO

#: How every duration option's help spells the grammar.
DURATION_EXAMPLES: Final = "90s, 15m, 2h, 1d, 1w, 1h30m, 250ms or plain seconds"
#: Widest a cell is shown before it is cut when the output is not a terminal (a pipe, a file).
MAX_CELL: Final = 48
#: Narrowest a column is cut to when the table must shrink to fit the terminal.
MIN_COLUMN: Final = 6
#: The environment variable and the option that choose the zone times are shown in.
ENV_TZ: Final = "Z4J_TZ"
#: ``--tz local``: the zone of the machine the command runs on.
LOCAL_ZONE: Final = "local"
#: Keys of the brain's answers whose numbers are epoch seconds (``*_at`` keys are too).
TIME_KEYS: Final = frozenset({"at", "slot", "cursor", "skipped_through", "deliver_by", "next_runs"})


def duration_seconds(text: str, option: str) -> float:
    """A user-typed duration in seconds, in the one grammar of every z4j duration (the
    scheduling core's ``parse_duration``: ``90s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m``,
    plain seconds); ValueError names ``option`` and the bad text. Loads the scheduling core
    only when called."""
    from z4j_core.scheduling.instants import parse_duration

    return parse_duration(text, f"{option} duration").total_seconds()


def cell(value: Any, width: int = MAX_CELL) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split("\n"))
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def fit_widths(natural: Sequence[int], headers: Sequence[str], total: int | None) -> list[int]:
    """Column widths that fit ``total`` characters (two spaces between columns): the widest
    column is narrowed first, one character at a time, none below ``MIN_COLUMN`` (or its
    header). ``total`` None keeps every column at its natural width."""
    widths = list(natural)
    if total is None:
        return widths
    floors = [
        min(w, max(MIN_COLUMN, min(len(h), 12))) for w, h in zip(widths, headers, strict=True)
    ]
    budget = total - 2 * (len(widths) - 1)
    while sum(widths) > budget:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floors[i])
        if widths[widest] <= floors[widest]:
            break  # as narrow as it can be: the terminal wraps the rest
        widths[widest] -= 1
    return widths


def terminal_width(stream: TextIO | None = None) -> int | None:
    """How wide tables may be: ``$COLUMNS`` when set, else the terminal's width when the output
    is a terminal, else None (a pipe or file keeps whole rows for scripts)."""
    target = stream or sys.stdout
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return int(os.environ["COLUMNS"])
    try:
        if not target.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None
) -> str:
    """The table, cells cut to fit ``width`` characters in all (None: each cell at most
    ``MAX_CELL``). Full values are in every command's ``--json``."""
    limit = MAX_CELL if width is None else max(width, MIN_COLUMN)
    cells = [[cell(v, limit) for v in row] for row in rows]
    natural = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            natural[i] = max(natural[i], len(text))
    widths = fit_widths(natural, headers, width)
    head = [cell(h.upper(), w) for h, w in zip(headers, widths, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += [
        "  ".join(cell(t, w).ljust(w) for t, w in zip(row, widths, strict=True)) for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO | None = None
) -> None:
    out = stream or sys.stdout
    print(format_table(headers, rows, terminal_width(out)), file=out)


# -- times -------------------------------------------------------------------------------------

_display_zone: tzinfo | None = timezone.utc


def resolve_display_zone(name: str | None) -> tzinfo | None:
    """The zone ``--tz`` / ``Z4J_TZ`` names: ``local`` (None: this machine's zone at each
    instant), ``UTC``, or an IANA name; an unknown name raises ValueError with a suggestion."""
    if name is None or not name.strip() or name.strip().upper() == "UTC":
        return timezone.utc
    if name.strip().lower() == LOCAL_ZONE:
        return None
    from z4j_core.scheduling import ScheduleError
    from z4j_core.scheduling.zones import resolve_zone

    try:
        return resolve_zone(name.strip())
    except ScheduleError as exc:
        raise ValueError(f"--tz: {exc} (or 'local', or UTC)") from None


def set_display_zone(zone: tzinfo | None) -> None:
    """Show every time in ``zone`` from now on (None: the local zone). Set once per run."""
    global _display_zone
    _display_zone = zone


def instant(value: float | str | datetime | None) -> str:
    """An instant (epoch seconds, an ISO 8601 string or an aware datetime) as ISO 8601 with an
    explicit offset in the display zone, to the second: ``2026-12-06T15:00:00+00:00``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            return value  # not an instant this CLI knows: show it as given
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    else:
        moment = datetime.fromtimestamp(float(value), timezone.utc)
    shown = moment.astimezone(_display_zone)
    return shown.isoformat(timespec="seconds")


def timestamp(epoch: float | None) -> str:
    """An epoch time in the one display format (see ``instant``)."""
    return instant(epoch)


def json_times(value: Any, key: str | None = None, verbatim: frozenset[str] = frozenset()) -> Any:
    """``value`` with every epoch time (keys in ``TIME_KEYS`` or ending in ``_at``) turned into
    an ISO 8601 string in the display zone; other values unchanged, and the values of keys in
    ``verbatim`` left exactly as the brain sent them."""
    if key is not None and key in verbatim:
        return value
    is_time = key is not None and (key in TIME_KEYS or key.endswith("_at"))
    if isinstance(value, dict):
        return {k: json_times(v, k, verbatim) for k, v in value.items()}
    if isinstance(value, list):
        return [json_times(v, key, verbatim) for v in value]
    if is_time and isinstance(value, (int, float)) and not isinstance(value, bool):
        return instant(value)
    return value


def emit_json(
    value: Any,
    *,
    indent: int | None = 2,
    stream: TextIO | None = None,
    verbatim: tuple[str, ...] = (),
) -> None:
    """Print ``value`` as JSON for ``--json``: times as ISO 8601 strings (see ``json_times``),
    except under the keys in ``verbatim`` (records shown as stored, e.g. what an audit row's
    HMAC covers)."""
    converted = json_times(value, verbatim=frozenset(verbatim))
    print(json.dumps(converted, indent=indent), file=stream or sys.stdout, flush=True)


def age(epoch: float | None, now: float) -> str:
    """How long ago: ``4s ago``, ``3m ago``, ``2h ago``, ``5d ago``."""
    if epoch is None:
        return "-"
    seconds = max(0.0, now - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def binding_text(app: str | None, engine: str | None) -> str:
    """What a token may present: ``unbound (any app)``, ``billing`` or ``billing/celery``."""
    if app is None:
        return "unbound (any app)"
    return app if engine is None else f"{app}/{engine}"


def print_operators(items: Sequence[dict[str, Any]], stream: TextIO | None = None) -> None:
    """The operator listing (``z4j operators list``)."""
    print_table(
        ["name", "role", "apps", "status", "created", "expires"],
        [
            (
                o["name"],
                o["role"],
                ",".join(o["apps"]),
                o["status"],
                timestamp(o["created_at"]),
                timestamp(o["expires_at"]) if o.get("expires_at") else "never",
            )
            for o in items
        ],
        stream,
    )


def print_tokens(items: Sequence[dict[str, Any]], stream: TextIO | None = None) -> None:
    """The token listing (``z4j tokens list``, either mode)."""
    print_table(
        ["name", "status", "created", "expires", "bound to", "labels"],
        [
            (
                t["name"],
                t["status"],
                timestamp(t["created_at"]),
                timestamp(t["expires_at"]) if t.get("expires_at") else "never",
                binding_text(t.get("app"), t.get("engine")),
                labels_text(t.get("labels")),
            )
            for t in items
        ],
        stream,
    )
