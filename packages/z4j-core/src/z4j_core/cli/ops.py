"""Operator commands over the brain's HTTP API: `z4j agents`, `z4j tasks` (list, `show`,
`run`; `retry` and `cancel` live in `z4j_core.cli.actions`) and `z4j events tail`.

Owns what each prints: readable tables by default, `--json` on every listing (the API's own
objects, times as ISO 8601 strings), one line per event when tailing. Talks to the brain only
through ``BrainClient``, so each works against a remote brain; every failure is one line and a
non-zero exit. Filters with a closed set of values (task states) refuse anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Final

from z4j_core.cli import CLIError
from z4j_core.cli.http import (
    EXIT_FAILED,
    BrainClient,
    add_client_arguments,
    add_page_arguments,
    page_query,
    print_next_cursor,
)
from z4j_core.cli.parser import LazyChoices
from z4j_core.cli.tables import (
    DURATION_EXAMPLES,
    age,
    duration_seconds,
    emit_json,
    labels_text,
    print_table,
    seconds_text,
    timestamp,
)

#: Seconds one long poll of `events tail` waits for new events (the API allows up to 30).
TAIL_WAIT_SECONDS: Final = 20
TASK_COLUMNS: Final = (
    *("name", "state", "engine", "app", "queue", "worker"),
    *("task id", "updated", "runtime", "failure"),
)
#: `z4j agents` shows agents connected or seen this recently (seconds) unless --all.
RECENT_SECONDS: Final = 86400
#: `tasks run`: statuses that mean the engine has the job.
ENQUEUED_STATUSES: Final = ("enqueued",)
#: `events tail` prints this many stored events before following, like `tail`.
DEFAULT_TAIL_LINES: Final = 10
#: `events tail -n N` looks back at most this many stored events for N that match its filters.
TAIL_LOOKBACK_MAX: Final = 100_000
#: Events per page when `events tail` reads the store.
TAIL_PAGE: Final = 1000


def _states() -> list[str]:
    # A task's state is the kind of its latest lifecycle event: one closed set, the wire's.
    from z4j_core.wire import LifecycleKind

    return [kind.value for kind in LifecycleKind]


#: The values `--state` takes, loaded only when one is checked or listed.
TASK_STATES: Final = LazyChoices(_states)


def register(subparsers: Any) -> None:
    agents = subparsers.add_parser("agents", help="agents connected now and recently seen")
    which = agents.add_mutually_exclusive_group()
    which.add_argument("--connected", action="store_true", help="only those connected now")
    which.add_argument(
        "--all", action="store_true", help="every agent ever seen (default: the last day)"
    )
    agents.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(agents)
    agents.set_defaults(func=_agents)

    tasks = subparsers.add_parser("tasks", help="tasks' latest states; `run` one, `show` one")
    _task_filters(tasks)
    tasks.set_defaults(func=_tasks)
    actions = tasks.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="latest state per task (the default)")
    _task_filters(listing)
    listing.set_defaults(func=_tasks)

    show = actions.add_parser(
        "show", help="one task: every field, its arguments (redacted), traceback and events"
    )
    show.add_argument("task_id")
    show.add_argument("--engine", help="the engine, when two engines share a task id")
    show.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(show)
    show.set_defaults(func=_show)

    from z4j_core.cli.actions import register_task_actions

    register_task_actions(actions)

    run = actions.add_parser("run", help="enqueue a task now through a connected agent")
    run.add_argument("name", help="task name as the engine knows it")
    run.add_argument("--engine", required=True, help="engine: celery, rq, huey, ...")
    run.add_argument("--app", help="the application (default: the only one serving the engine)")
    run.add_argument("--args", default="[]", help="positional arguments as a JSON list")
    run.add_argument("--kwargs", default="{}", help="keyword arguments as a JSON object")
    run.add_argument("--queue", help="queue to enqueue on (default: the task's own)")
    run.add_argument("--labels", help="only agents with these labels: k=v,k2=v2")
    run.add_argument("--deadline", type=float, help="seconds the agent has to answer (30)")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_client_arguments(run)
    run.set_defaults(func=_run)

    events = subparsers.add_parser("events", help="the event stream")
    event_actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    tail = event_actions.add_parser(
        "tail",
        help="print the last stored events, then follow new ones",
        description=(
            f"Print the last {DEFAULT_TAIL_LINES} stored events (-n), then each new one as it is "
            "stored, until interrupted (--no-follow: stop after the stored ones). Filters apply "
            "to both."
        ),
    )
    start = tail.add_mutually_exclusive_group()
    start.add_argument(
        "-n",
        "--lines",
        type=int,
        metavar="N",
        help=f"first print the last N stored events that match ({DEFAULT_TAIL_LINES}; 0: none)",
    )
    start.add_argument("--after", type=int, help="start after this position")
    start.add_argument("--from-start", action="store_true", help="start at the oldest stored")
    tail.add_argument("--engine", help="only this engine's events")
    tail.add_argument("--app", help="only this app's events")
    tail.add_argument("--task", metavar="NAME", help="only events of tasks with this name")
    tail.add_argument(
        "--state",
        choices=TASK_STATES,
        metavar="STATE",
        help="only events of this kind: %(choices)s",
    )
    tail.add_argument("--count", type=int, help="stop after printing this many events")
    tail.add_argument("--no-follow", action="store_true", help="print what is stored, then stop")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    add_client_arguments(tail)
    tail.set_defaults(func=_tail)


def _task_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        choices=TASK_STATES,
        metavar="STATE",
        help="only tasks in this state: %(choices)s",
    )
    parser.add_argument("--name", help="only this task name")
    parser.add_argument("--engine", help="only this engine")
    parser.add_argument("--app", help="only this app")
    parser.add_argument("--since", help=f"only tasks updated within this long: {DURATION_EXAMPLES}")
    add_page_arguments(parser, 50)
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(parser)


def _emit_json(value: Any) -> None:
    emit_json(value)


# -- agents ------------------------------------------------------------------------------------


def _agents(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {}
    if args.connected:
        query["connected"] = "1"
    elif not args.all:
        query["seen_within"] = RECENT_SECONDS
    agents = BrainClient.from_args(args).get("agents", query)["agents"]
    if args.json:
        _emit_json(agents)
        return 0
    if not agents:
        which = " connected" if args.connected else "" if args.all else " seen in the last day"
        print(f"no agents{which}", file=sys.stderr)
        return 0
    now = time.time()
    print_table(
        ["app", "state", "engines", "labels", "host", "pid", "version", "last seen", "dropped"],
        [
            (
                a["app"],
                "connected" if a["connected"] else "gone",
                ",".join(_engine_text(e) for e in a["engines"]),
                labels_text(a["labels"]),
                a["host"],
                a["pid"],
                a["agent_version"],
                "now" if a["connected"] else age(a["last_seen_at"], now),
                a["dropped_total"],
            )
            for a in agents
        ],
    )
    return 0


def _engine_text(engine: dict[str, Any]) -> str:
    """`rq 2.1.0 (retry cancel purge)`: the engine, its version and the actions it runs."""
    text = f"{engine['name']} {engine.get('version') or ''}".strip()
    actions = engine.get("actions") or []
    return f"{text} ({' '.join(actions)})" if actions else text


# -- tasks -------------------------------------------------------------------------------------


def _tasks(args: argparse.Namespace) -> int:
    query = {
        "state": args.state,
        "name": args.name,
        "engine": args.engine,
        "app": args.app,
        **page_query(args),
    }
    if args.since is not None:
        try:
            query["since"] = time.time() - duration_seconds(args.since, "--since")
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    answer = BrainClient.from_args(args).get("tasks", query)
    tasks = answer["tasks"]
    if args.json:
        _emit_json(tasks)
        print_next_cursor(answer)
        return 0
    if not tasks:
        print("no tasks match", file=sys.stderr)
        return 0
    print_table(
        TASK_COLUMNS,
        [
            (
                t["name"],
                t["state"],
                t["engine"],
                t["app"],
                t["queue"],
                t["worker"],
                t["task_id"],
                timestamp(t["updated_at"]),
                seconds_text(t["runtime"]),
                _failure(t),
            )
            for t in tasks
        ],
    )
    print_next_cursor(answer)
    return 0


def _failure(task: dict[str, Any]) -> str:
    if not task.get("exception"):
        return ""
    message = task.get("message") or ""
    return f"{task['exception']}: {message}" if message else str(task["exception"])


def _show(args: argparse.Namespace) -> int:
    client = BrainClient.from_args(args)
    tasks = client.get("tasks", {"task_id": args.task_id, "engine": args.engine, "limit": 10})
    found = tasks["tasks"]
    if not found:
        raise CLIError(f"no task {args.task_id!r} is stored (see z4j tasks)", EXIT_FAILED)
    if len(found) > 1:
        engines = ", ".join(sorted(t["engine"] for t in found))
        raise CLIError(f"task id {args.task_id!r} exists in several engines ({engines}): --engine")
    task = found[0]
    from urllib.parse import quote

    path = f"tasks/{quote(args.task_id, safe='')}/events"
    events = client.get(path, {"engine": task["engine"]})["events"]
    arguments = _arguments(events)
    if args.json:
        _emit_json({**task, **arguments, "events": events})
        return 0
    fields = [
        ("task id", task["task_id"]),
        ("name", task["name"]),
        ("state", task["state"]),
        ("engine", task["engine"]),
        ("app", task["app"]),
        ("queue", task["queue"]),
        ("worker", task["worker"]),
        ("enqueued", timestamp(task["enqueued_at"])),
        ("received", timestamp(task["received_at"])),
        ("started", timestamp(task["started_at"])),
        ("finished", timestamp(task["finished_at"])),
        ("runtime", seconds_text(task["runtime"])),
        ("retries", task["retries"]),
        ("args", arguments["args"]),
        ("kwargs", arguments["kwargs"]),
        ("result", arguments["result"]),
        ("failure", _failure(task) or None),
        ("fire id", task["fire_id"]),
        ("retry of", task.get("retry_of")),
        ("retried as", ", ".join(task.get("retried_as") or []) or None),
    ]
    for label, value in fields:
        print(f"{label + ':':<10} {'-' if value is None else value}")
    if any(arguments.values()):
        print("(arguments and result as the agent sent them, redacted before they left)")
    if task.get("traceback"):
        print("traceback (redacted by the agent):")
        print(task["traceback"].rstrip())
    print(f"events ({len(events)}):")
    for event in events:
        print("  " + _event_line(event))
    return 0


def _arguments(events: list[dict[str, Any]]) -> dict[str, str | None]:
    """The task's arguments and result from its events (the latest event that carries each):
    the agent redacted and cut them before they left the worker."""
    found: dict[str, str | None] = {"args": None, "kwargs": None, "result": None}
    for event in events:
        for key in found:
            if event.get(key) is not None:
                found[key] = event[key]
    return found


def _run(args: argparse.Namespace) -> int:
    task_args = _json_arg(args.args, "--args", list, "a JSON list, e.g. '[1, 2]'")
    task_kwargs = _json_arg(args.kwargs, "--kwargs", dict, "a JSON object, e.g. '{\"x\": 1}'")
    labels: dict[str, str] = {}
    if args.labels:
        from z4j_core.cli.tokens import parse_labels

        labels = parse_labels(args.labels)
    if args.deadline is not None and args.deadline <= 0:
        raise CLIError("--deadline must be a positive number of seconds")
    client = BrainClient.from_args(args)
    app = args.app or _only_app(client, args.engine)
    body: dict[str, Any] = {
        "kind": "enqueue",
        "engine": args.engine,
        "app": app,
        "task": args.name,
        "args": task_args,
        "kwargs": task_kwargs,
        "labels": labels,
    }
    if args.queue:
        body["options"] = {"queue": args.queue}
    if args.deadline is not None:
        body["deadline"] = args.deadline
    wait = (args.deadline or 30.0) + 10.0
    status, outcome = client.request(
        "POST", "commands", body=body, timeout=max(wait, args.timeout), expected=(409,)
    )
    if status == 409:
        raise CLIError(f"not enqueued: {outcome['error']}", EXIT_FAILED)
    if args.json:
        _emit_json(outcome)
    elif outcome["status"] in ENQUEUED_STATUSES:
        print(
            f"enqueued {args.name} on {args.engine} (app {app}) as {outcome['native_id']} "
            f"by agent {outcome['agent_instance']}"
        )
    else:
        reason = f": {outcome['reason']}" if outcome.get("reason") else ""
        print(f"not enqueued: {outcome['status']}{reason}", file=sys.stderr)
    return 0 if outcome["status"] in ENQUEUED_STATUSES else EXIT_FAILED


def _only_app(client: BrainClient, engine: str) -> str:
    agents = client.get("agents", {"connected": "1"})["agents"]
    apps = sorted({a["app"] for a in agents if any(e["name"] == engine for e in a["engines"])})
    if len(apps) == 1:
        return str(apps[0])
    if not apps:
        raise CLIError(f"no connected agent serves engine {engine!r} (see z4j agents)", EXIT_FAILED)
    raise CLIError(f"several apps serve engine {engine!r} ({', '.join(apps)}): pass --app")


def _json_arg(text: str, option: str, kind: type, example: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        raise CLIError(f"{option} is not valid JSON; give {example}") from None
    if not isinstance(value, kind):
        raise CLIError(f"{option} must be {example}")
    return value


# -- events ------------------------------------------------------------------------------------


def _event_line(e: dict[str, Any]) -> str:
    parts = [
        timestamp(e["at"]),
        f"{e['kind']:<10}",
        e["engine"],
        e["task_name"],
        e["task_id"],
        f"app={e['app']}",
    ]
    for key in ("queue", "worker"):
        if e.get(key):
            parts.append(f"{key}={e[key]}")
    if e.get("runtime") is not None:
        parts.append(f"runtime={seconds_text(e['runtime'])}")
    if e.get("exception"):
        parts.append(f"failure={e['exception']}")
    return " ".join(str(p) for p in parts)


def _matches(args: argparse.Namespace) -> Any:
    """The filter `events tail` applies to each event (engine, app, task name, state)."""
    wanted = {
        "engine": args.engine,
        "app": args.app,
        "task_name": args.task,
        "kind": args.state,
    }
    wanted = {k: v for k, v in wanted.items() if v is not None}

    def matches(event: dict[str, Any]) -> bool:
        return all(event.get(k) == v for k, v in wanted.items())

    return matches


def _pages(client: BrainClient, after: int, through: int | None) -> Any:
    """Stored events after ``after`` (up to ``through`` when given), page by page."""
    while through is None or after < through:
        page = client.get("events", {"after": after, "limit": TAIL_PAGE})
        events = [e for e in page["events"] if through is None or e["position"] <= through]
        yield from events
        if not page["events"] or len(events) < len(page["events"]):
            return
        after = page["next_after"]


def _last_stored(client: BrainClient, lines: int, matches: Any) -> tuple[list[Any], int]:
    """The last ``lines`` stored events that match, and the position they end at. Looks back
    a growing window (at most ``TAIL_LOOKBACK_MAX`` events) so a rare match is still found."""
    latest = int(client.get("events", {"limit": 0})["latest"])
    if lines == 0 or latest == 0:
        return [], latest
    window = max(lines * 4, TAIL_PAGE)
    while True:
        start = max(0, latest - window)
        found = [e for e in _pages(client, start, latest) if matches(e)]
        if len(found) >= lines or start == 0 or window >= TAIL_LOOKBACK_MAX:
            return found[-lines:], latest
        window *= 4


def _tail(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CLIError("--count must be at least 1")
    if args.lines is not None and args.lines < 0:
        raise CLIError("-n/--lines must be 0 or more")
    client = BrainClient.from_args(args)
    matches = _matches(args)
    printed = 0

    def show(event: dict[str, Any]) -> bool:
        """Print one event; True when --count is reached."""
        nonlocal printed
        if args.json:
            emit_json(event, indent=None)
        else:
            print(_event_line(event), flush=True)
        printed += 1
        return args.count is not None and printed >= args.count

    if args.from_start or args.after is not None:
        after = 0 if args.from_start else args.after
    else:
        lines = DEFAULT_TAIL_LINES if args.lines is None else args.lines
        backlog, after = _last_stored(client, lines, matches)
        for event in backlog:
            if show(event):
                return 0
    wait = 0 if args.no_follow else TAIL_WAIT_SECONDS
    while True:
        page = client.get(
            "events",
            {"after": after, "limit": TAIL_PAGE, "wait": wait},
            timeout=max(args.timeout, wait + 15),
        )
        for event in page["events"]:
            if matches(event) and show(event):
                return 0
        after = page["next_after"]
        if args.no_follow and not page["events"]:
            return 0
