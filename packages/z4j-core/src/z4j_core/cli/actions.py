"""Operator actions over the brain's HTTP API (docs/actions.md): `z4j tasks retry`,
`z4j tasks cancel` (one task, or every task matching a filter), `z4j queues` and
`z4j queues purge`.

Owns what each prints and its exit code: 0 only when every action ended `done`. A bulk action
counts first and acts only with `--yes` (`--dry-run` only counts); it then follows the bulk's
progress until it ends. Talks to the brain only through ``BrainClient``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Final
from urllib.parse import quote

from z4j_core.cli import CLIError
from z4j_core.cli.http import EXIT_FAILED, BrainClient, add_client_arguments
from z4j_core.cli.tables import (
    DURATION_EXAMPLES,
    age,
    duration_seconds,
    emit_json,
    print_table,
)

#: How often a bulk action's progress is read, in seconds.
BULK_POLL_SECONDS: Final = 1.0
QUEUE_COLUMNS: Final = ("engine", "app", "queue", "ready", "scheduled", "running", "failed", "age")


def register_task_actions(actions: Any) -> None:
    """`tasks retry` and `tasks cancel`, under the `tasks` subcommand's parsers."""
    retry = actions.add_parser(
        "retry",
        help="run a failed task again with its original arguments (or every task matching "
        "--state ...)",
    )
    retry.add_argument(
        "--force", action="store_true", help="also retry a finished task that did not fail"
    )
    _action_arguments(retry)
    retry.set_defaults(func=_retry)

    cancel = actions.add_parser(
        "cancel", help="cancel a queued or scheduled task (or every task matching --state ...)"
    )
    cancel.add_argument("--terminate", action="store_true", help="also stop it if it is running")
    _action_arguments(cancel)
    cancel.set_defaults(func=_cancel)


def _action_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_id", nargs="?", help="the task (omit it to act on a filter)")
    parser.add_argument("--engine", help="the task's engine (needed when ids are shared)")
    parser.add_argument("--app", help="the task's app")
    parser.add_argument(
        "--state", action="append", help="bulk: tasks in this state (repeat or comma-separate)"
    )
    parser.add_argument("--task", help="bulk: only tasks of this name")
    parser.add_argument("--since", help=f"bulk: only tasks updated within ({DURATION_EXAMPLES})")
    parser.add_argument("--dry-run", action="store_true", help="bulk: only count the tasks")
    parser.add_argument("--yes", action="store_true", help="bulk: act without asking")
    parser.add_argument(
        "--per-second", type=float, help="bulk: actions sent per second (default 100)"
    )
    parser.add_argument("--deadline", type=float, help="seconds each agent has to answer (30)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(parser)


def register(subparsers: Any) -> None:
    queues = subparsers.add_parser("queues", help="queue depths; `purge` a queue")
    _queue_filters(queues)
    queues.set_defaults(func=_queues)
    sub = queues.add_subparsers(dest="queue_action", metavar="ACTION")
    listing = sub.add_parser("list", help="each queue's depth (the default)")
    _queue_filters(listing)
    listing.set_defaults(func=_queues)
    purge = sub.add_parser("purge", help="remove a queue's ready messages")
    purge.add_argument("queue")
    purge.add_argument("--engine", required=True, help="the queue's engine")
    purge.add_argument("--app", help="the queue's app (default: the only one reporting it)")
    purge.add_argument("--yes", action="store_true", help="required: purging cannot be undone")
    purge.add_argument("--deadline", type=float, help="seconds the agent has to answer (30)")
    purge.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(purge)
    purge.set_defaults(func=_purge)


def _queue_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", help="only this engine")
    parser.add_argument("--app", help="only this app")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_client_arguments(parser)


# -- one task, or a filter ---------------------------------------------------------------------


def _retry(args: argparse.Namespace) -> int:
    return _act(args, "retry", {"force": args.force})


def _cancel(args: argparse.Namespace) -> int:
    return _act(args, "cancel", {"terminate": args.terminate})


def _act(args: argparse.Namespace, action: str, flags: dict[str, bool]) -> int:
    if args.deadline is not None and args.deadline <= 0:
        raise CLIError("--deadline must be a positive number of seconds")
    bulk_only = [
        name
        for name, given in (
            ("--state", args.state),
            ("--task", args.task),
            ("--since", args.since),
            ("--dry-run", args.dry_run),
            ("--per-second", args.per_second),
        )
        if given
    ]
    if args.task_id is not None:
        if bulk_only:
            raise CLIError(
                f"{', '.join(bulk_only)} select tasks in bulk: give either a TASK_ID or "
                "--state ..., not both"
            )
        return _one(args, action, flags)
    if not args.state:
        raise CLIError(
            f"say which task to {action}: z4j tasks {action} TASK_ID, or every task matching "
            f"a filter: z4j tasks {action} --state failed [--task NAME] [--since 1h] --dry-run"
        )
    return _bulk(args, action, flags)


def _one(args: argparse.Namespace, action: str, flags: dict[str, bool]) -> int:
    client = BrainClient.from_args(args)
    body: dict[str, Any] = {"engine": args.engine, "app": args.app, **flags}
    if args.deadline is not None:
        body["deadline"] = args.deadline
    body = {k: v for k, v in body.items() if v is not None}
    wait = (args.deadline or 30.0) + 10.0
    status, result = client.request(
        "POST",
        f"tasks/{quote(args.task_id, safe='')}/{action}",
        body=body,
        timeout=max(wait, args.timeout),
        expected=(404,),
    )
    if status == 404:
        raise CLIError(f"not {_past(action)}: {result['error']}", EXIT_FAILED)
    if args.json:
        emit_json(result)
    else:
        print(_result_line(result), file=sys.stdout if result["status"] == "done" else sys.stderr)
    return 0 if result["status"] == "done" else EXIT_FAILED


def _past(action: str) -> str:
    return {"retry": "retried", "cancel": "cancelled", "purge": "purged"}[action]


def _result_line(result: dict[str, Any]) -> str:
    what = result.get("task_id") or result.get("queue")
    where = f"{result['engine']}/{result['app']}"
    if result["status"] == "done":
        if result["action"] == "retry":
            return f"retried {what} ({where}) as {result['new_task_id']}"
        if result["action"] == "purge":
            return f"purged {what} ({where}): {result['count']} messages removed"
        return f"cancelled {what} ({where})"
    reason = f": {result['reason']}" if result.get("reason") else ""
    return f"not {_past(result['action'])} {what} ({where}): {result['status']}{reason}"


def _bulk(args: argparse.Namespace, action: str, flags: dict[str, bool]) -> int:
    states = [s.strip() for value in args.state for s in value.split(",") if s.strip()]
    if not states:
        raise CLIError("--state needs a state, e.g. --state failed")
    body: dict[str, Any] = {
        "states": states,
        "task": args.task,
        "engine": args.engine,
        "app": args.app,
        **flags,
    }
    if args.since:
        try:
            body["since"] = duration_seconds(args.since, "--since")
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.per_second is not None:
        if not 0 < args.per_second <= 1000:
            raise CLIError("--per-second must be above 0 and at most 1000")
        body["per_second"] = args.per_second
    if args.deadline is not None:
        body["deadline"] = args.deadline
    body = {k: v for k, v in body.items() if v is not None}
    client = BrainClient.from_args(args)
    counted = client.post(f"tasks/{action}", {**body, "dry_run": True})
    matched = counted["matched"]
    if args.dry_run:
        if args.json:
            emit_json(counted)
        else:
            print(f"{matched} tasks match; nothing was done (dry run)")
        return 0
    if not args.yes:
        raise CLIError(
            f"{matched} tasks match: pass --yes to {action} them (or --dry-run to only count)"
        )
    if matched == 0:
        print(f"no task matches; nothing to {action}")
        return 0
    started = client.post(f"tasks/{action}", body)
    bulk_id = started["bulk_id"]
    if not args.json:
        print(f"{action} of {started['matched']} tasks started (bulk {bulk_id})", flush=True)
    while True:
        summary = client.get(f"bulk/{bulk_id}")
        if summary["finished"]:
            break
        if not args.json:
            done = sum(summary["counts"].values())
            print(f"  {done}/{summary['matched']} answered", flush=True)
        time.sleep(BULK_POLL_SECONDS)
    counts = summary["counts"]
    if args.json:
        emit_json(summary)
    else:
        spelled = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        print(f"bulk {bulk_id} finished: {spelled}")
        print(f"each task's answer: GET /api/v1/actions?bulk_id={bulk_id}")
    return 0 if set(counts) <= {"done"} else EXIT_FAILED


# -- queues ------------------------------------------------------------------------------------


def _queues(args: argparse.Namespace) -> int:
    rows = BrainClient.from_args(args).get("queues", {"engine": args.engine, "app": args.app})[
        "queues"
    ]
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        print(
            "no queue depths reported (agents report them when their adapter supports "
            "queue_depth: see z4j agents --json)",
            file=sys.stderr,
        )
        return 0
    now = time.time()
    print_table(
        QUEUE_COLUMNS,
        [
            (
                r["engine"], r["app"], r["queue"], r["ready"], r["scheduled"], r["running"],
                r["failed"], age(r["updated_at"], now),
            )
            for r in rows
        ],
    )  # fmt: skip
    return 0


def _purge(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CLIError(
            f"purging removes every ready message of {args.queue!r} for good: pass --yes"
        )
    if args.deadline is not None and args.deadline <= 0:
        raise CLIError("--deadline must be a positive number of seconds")
    body: dict[str, Any] = {"engine": args.engine}
    if args.app:
        body["app"] = args.app
    if args.deadline is not None:
        body["deadline"] = args.deadline
    client = BrainClient.from_args(args)
    wait = (args.deadline or 30.0) + 10.0
    result = client.request(
        "POST",
        f"queues/{quote(args.queue, safe='')}/purge",
        body=body,
        timeout=max(wait, args.timeout),
    )
    if args.json:
        emit_json(result)
    else:
        print(_result_line(result), file=sys.stdout if result["status"] == "done" else sys.stderr)
    return 0 if result["status"] == "done" else EXIT_FAILED
