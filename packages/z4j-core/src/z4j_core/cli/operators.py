"""`z4j operators create|list|revoke|rotate`: named operator tokens with a role and an app scope,
managed through the brain's HTTP API by an admin.

An operator token is printed once, on stdout alone, at creation and at rotation; listings never
show it. The operator then uses it as ``--token`` / ``Z4J_OPERATOR_TOKEN`` with every command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

from z4j_core.cli import CLIError
from z4j_core.cli.http import ENV_OPERATOR_TOKEN, BrainClient, add_client_arguments
from z4j_core.cli.tables import (
    DURATION_EXAMPLES,
    duration_seconds,
    emit_json,
    print_operators,
)

ROLES = ("viewer", "operator", "admin")


def register(subparsers: Any) -> None:
    operators = subparsers.add_parser(
        "operators", help="create, list, rotate and revoke operators (people and their roles)"
    )
    actions = operators.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create an operator and print its token once")
    create.add_argument("name", help="a name for it: letters, digits, '-', '_', '.'")
    create.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="viewer reads; operator also triggers, pauses, resumes and runs task actions; "
        "admin also edits schedules and manages tokens and operators",
    )
    create.add_argument(
        "--apps",
        help="app patterns it sees and touches, comma-separated globs (billing,shop-*); "
        "default: every app",
    )
    create.add_argument("--expires", help=f"lifetime: {DURATION_EXAMPLES} (default: never)")
    create.add_argument("--json", action="store_true", help="print JSON (the token included)")
    create.set_defaults(func=_create)

    listing = actions.add_parser("list", help="list operators (never their tokens)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke an operator: cut off at its next request")
    revoke.add_argument("name")
    revoke.set_defaults(func=_revoke)

    rotate = actions.add_parser("rotate", help="give an operator a new token (printed once)")
    rotate.add_argument("name")
    rotate.add_argument("--json", action="store_true", help="print JSON (the token included)")
    rotate.set_defaults(func=_rotate)

    for parser in (create, listing, revoke, rotate):
        add_client_arguments(parser)


def _print_token(item: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        emit_json(item)
        return
    print(item["token"])
    print(
        f"z4j: operator {item['name']!r} {what} (role {item['role']}, apps "
        f"{','.join(item['apps'])}); the token is shown only now: give it to them as "
        f"{ENV_OPERATOR_TOKEN}",
        file=sys.stderr,
    )


def _create(args: argparse.Namespace) -> int:
    try:
        expires_in = duration_seconds(args.expires, "--expires") if args.expires else None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    apps = [p.strip() for p in (args.apps or "").split(",") if p.strip()]
    body = {"name": args.name, "role": args.role, "apps": apps, "expires_in": expires_in}
    created = BrainClient.from_args(args).post("operators", body)
    _print_token(created, args.json, "created")
    return 0


def _list(args: argparse.Namespace) -> int:
    items = BrainClient.from_args(args).get("operators")["operators"]
    if args.json:
        emit_json(items)
    else:
        print_operators(items)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    BrainClient.from_args(args).delete(f"operators/{quote(args.name, safe='')}")
    print(f"revoked operator {args.name!r}: its token and sessions stop at once")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    rotated = BrainClient.from_args(args).post(
        f"operators/{quote(args.name, safe='')}/rotate", None
    )
    _print_token(rotated, args.json, "rotated")
    return 0
