"""`z4j audit list|verify`: the brain's HMAC-chained audit log, through its HTTP API.

Owns showing audit rows and the exit code of `verify` (0 when the chain holds, 1 naming the
first row that does not). The key never leaves the brain: verification runs there.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from z4j_core.cli import CLIError
from z4j_core.cli.http import (
    EXIT_FAILED,
    BrainClient,
    add_client_arguments,
    add_page_arguments,
    page_query,
    print_next_cursor,
)
from z4j_core.cli.tables import emit_json, print_table, timestamp

PAGE = 1000


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="list and verify the audit log")
    actions = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="audit rows, oldest first")
    listing.add_argument("--after", type=int, default=0, help="start after this sequence number")
    add_page_arguments(listing, 100)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)
    verify = actions.add_parser("verify", help="check every row's HMAC chain")
    verify.set_defaults(func=_verify)
    for parser in (listing, verify):
        add_client_arguments(parser)


def _summary(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        keys = ("name", "schedule", "enabled", "fire_id")
        shown = {k: value[k] for k in keys if k in value}
        return json.dumps(shown or value, separators=(",", ":"))
    return json.dumps(value)


def _list(args: argparse.Namespace) -> int:
    rows = BrainClient.from_args(args).get("audit", {"after": args.after, **page_query(args)})
    items = rows["audit"]
    if args.json:
        # `before` and `after` are shown as recorded: the row's HMAC covers them.
        emit_json(items, verbatim=("before", "after"))
        print_next_cursor(rows)
        return 0
    if not items:
        print("the audit log is empty")
        return 0
    print_table(
        ("seq", "time", "actor", "source", "action", "target", "after"),
        [
            [r["seq"], timestamp(r["at"]), r["actor"], r["source"], r["action"], r["target"],
             _summary(r["after"])]
            for r in items
        ],
    )  # fmt: skip
    print_next_cursor(rows)
    return 0


def _verify(args: argparse.Namespace) -> int:
    result = BrainClient.from_args(args).get("audit/verify")
    if result["ok"]:
        print(f"audit log OK: {result['count']} rows verified")
        return 0
    raise CLIError(
        f"audit log altered at row {result['bad_seq']}: {result['reason']} "
        f"({result['count']} rows before it verified)",
        EXIT_FAILED,
    )
