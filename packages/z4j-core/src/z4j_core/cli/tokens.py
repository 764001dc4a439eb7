"""`z4j tokens create|list|revoke`: agent tokens, managed through the brain's HTTP API.

Works against a remote brain (see ``cli.http``). With ``--database`` it works on the brain's
database directly instead (the brain package does it; no brain needs to run), which is how a
first token is made before anything is deployed. A token is printed once, on stdout alone, at
creation; listings never show it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from z4j_core.cli import CLIError
from z4j_core.cli.http import BrainClient, add_client_arguments
from z4j_core.cli.tables import DURATION_EXAMPLES, duration_seconds, emit_json, print_tokens


def register(subparsers: Any) -> None:
    tokens = subparsers.add_parser("tokens", help="create, list and revoke agent tokens")
    actions = tokens.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("name", help="a name for it: letters, digits, '-', '_', '.'")
    create.add_argument("--labels", help="labels the brain gives agents using it: k=v,k2=v2")
    create.add_argument("--expires", help=f"lifetime: {DURATION_EXAMPLES} (default: never)")
    create.add_argument(
        "--app", help="bind it: agents using it may present only this app (default: unbound)"
    )
    create.add_argument("--engine", help="bind it to this engine too (needs --app)")
    create.add_argument("--json", action="store_true", help="print JSON (the token included)")
    create.set_defaults(func=_create)

    listing = actions.add_parser("list", help="list tokens and their status (never the secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke a token: its agents are cut off at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=_revoke)

    for parser in (create, listing, revoke):
        add_client_arguments(parser)
        parser.add_argument(
            "--database",
            "--database-url",
            dest="database",
            help="work on this brain database directly (SQLite file or postgresql:// URL; "
            "needs z4j[brain]) instead of through the API",
        )


def parse_labels(text: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"label {part.strip()!r} is not key=value (e.g. --labels env=prod)")
        labels[key.strip()] = value.strip()
    return labels


def _local(args: argparse.Namespace, argv: list[str]) -> int:
    from z4j_core.cli.brain import load_brain_cli

    result: int = load_brain_cli().run(["tokens", *argv, "--database", args.database])
    return result


def _create(args: argparse.Namespace) -> int:
    labels = parse_labels(args.labels)
    if args.engine and not args.app:
        raise CLIError("a token bound to an engine needs its app too (--app APP --engine E)")
    try:
        expires_in = duration_seconds(args.expires, "--expires") if args.expires else None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.database:
        argv = ["create", args.name]
        argv += ["--labels", args.labels] if args.labels else []
        argv += ["--expires", args.expires] if args.expires else []
        argv += ["--app", args.app] if args.app else []
        argv += ["--engine", args.engine] if args.engine else []
        return _local(args, argv)
    client = BrainClient.from_args(args)
    body: dict[str, Any] = {"name": args.name, "labels": labels, "expires_in": expires_in}
    body.update({k: v for k, v in (("app", args.app), ("engine", args.engine)) if v})
    created = client.post("tokens", body)
    if args.json:
        emit_json(created)
        return 0
    print(created["token"])
    print(
        f"z4j: token {args.name!r} created; it is shown only now: give it to the agent "
        "as Z4J_TOKEN",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.database:
        return _local(args, ["list", *(["--json"] if args.json else [])])
    items = BrainClient.from_args(args).get("tokens")["tokens"]
    if args.json:
        emit_json(items)
    else:
        print_tokens(items)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if args.database:
        return _local(args, ["revoke", args.name])
    from urllib.parse import quote

    client = BrainClient.from_args(args)
    client.delete(f"tokens/{quote(args.name, safe='')}")
    print(f"revoked token {args.name!r}: agents using it are cut off")
    return 0
