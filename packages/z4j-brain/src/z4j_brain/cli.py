"""The brain's own subcommands, run where its database is: ``z4j brain serve``,
``z4j brain admin-token --rotate`` and ``z4j tokens ... --database`` (the local mode; without
``--database`` the core CLI manages tokens through the HTTP API).

Owns their arguments and output. ``z4j_core.cli.brain`` imports this module only when one of
them runs and forwards the remaining arguments to ``run``. A user error prints one line
(``z4j: error: ...``) and exits non-zero, never a traceback. Tokens are printed once, at
creation, and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from z4j_brain.audit import AuditKeyError
from z4j_brain.config import (
    ENV_DATABASE,
    ENV_DATABASE_URL,
    ENV_HOST,
    ENV_LOG_FORMAT,
    ENV_LOG_LEVEL,
    ENV_PORT,
    ENV_TLS_CERTFILE,
    ENV_TLS_KEYFILE,
    LOG_FORMATS,
    LOG_LEVELS,
    ConfigError,
    load_with_file,
)
from z4j_brain.db import DatabaseError, redact_url
from z4j_brain.logs import configure_logging
from z4j_brain.store import Store, StoreError
from z4j_brain.tokens import (
    TokenError,
    check_name,
    create_token,
    parse_labels,
    rotate_admin_token,
    token_summary,
)
from z4j_core.cli.parser import Parser
from z4j_core.cli.tables import DURATION_EXAMPLES, duration_seconds, emit_json, print_tokens
from z4j_core.endpoints import DEFAULT_HOST, DEFAULT_PORT

EXIT_USAGE: Final = 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class _Terminated(Exception):
    """SIGTERM arrived after the graceful shutdown finished."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="z4j brain", add_help=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the brain (agent gateway and HTTP API)")
    serve.add_argument("--host", help=f"address to bind (default {DEFAULT_HOST}, or ${ENV_HOST})")
    serve.add_argument(
        "--port", type=int, help=f"port to bind (default {DEFAULT_PORT}, or ${ENV_PORT})"
    )
    _database_argument(serve)
    serve.add_argument(
        "--certfile", help=f"TLS certificate (PEM): serve https:// and wss:// (${ENV_TLS_CERTFILE})"
    )
    serve.add_argument("--keyfile", help=f"the certificate's private key (${ENV_TLS_KEYFILE})")
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="a brain.toml with any setting (the environment and these flags override it; "
        "check it with z4j brain config check FILE)",
    )
    serve.add_argument("--log-level", choices=LOG_LEVELS, help=f"default info, or ${ENV_LOG_LEVEL}")
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help=f"text (a line per record) or json (an object per line); default text, or "
        f"${ENV_LOG_FORMAT}",
    )

    config = commands.add_parser("config", help="the brain's TOML configuration file")
    config_actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = config_actions.add_parser(
        "check", help="validate a brain.toml and print the settings it resolves to"
    )
    check.add_argument("file", help="the brain.toml to check")
    check.add_argument("--json", action="store_true", help="print the settings as JSON")

    admin = commands.add_parser(
        "admin-token", help="replace the admin token (run where the database is reachable)"
    )
    admin.add_argument(
        "--rotate", action="store_true", required=True, help="make a new one; the old one stops"
    )
    _database_argument(admin)
    admin.add_argument(
        "--config", metavar="FILE", help="the brain.toml naming the database (and audit key)"
    )

    tokens = commands.add_parser("tokens", help="agent tokens on the local database")
    actions = tokens.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("name")
    create.add_argument("--labels", help="labels the brain attaches to agents using it: k=v,...")
    create.add_argument("--expires", help=f"lifetime: {DURATION_EXAMPLES} (default: never)")
    create.add_argument("--app", help="bind it: its agents may present only this app")
    create.add_argument("--engine", help="bind it to this engine too (needs --app)")
    _database_argument(create)
    listing = actions.add_parser("list", help="list tokens (never the secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _database_argument(listing)
    revoke = actions.add_parser("revoke", help="revoke a token; its agents are cut off")
    revoke.add_argument("name")
    _database_argument(revoke)
    return parser


def _database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        "--database-url",
        dest="database",
        help=(
            f"SQLite file or postgresql:// URL (default ${ENV_DATABASE_URL}, ${ENV_DATABASE}, "
            "else $Z4J_HOME/brain.sqlite3)"
        ),
    )


def run(argv: Sequence[str]) -> int:
    """Run ``serve`` or ``tokens ...``; returns the exit code."""
    args = build_parser().parse_args(list(argv))
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "admin-token":
            return _rotate_admin_token(args)
        if args.command == "config":
            return _check_config(args)
        return _tokens(args)
    except (UserError, ConfigError, StoreError, TokenError, AuditKeyError) as exc:
        print(f"z4j: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseError as exc:
        print(f"z4j: error: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"z4j: error: database: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # A driver error (e.g. Postgres went away mid-command): one line, never a traceback.
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"z4j: error: database: {first}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"z4j: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr
        )
        return 1


def _rotate_admin_token(args: argparse.Namespace) -> int:
    store = _open_store(args)
    now = time.time()
    try:
        token = rotate_admin_token(
            store, now, _audited(args, "admin_token.rotate", "admin", {"rotated_at": now})
        )
    finally:
        store.close()
    print(token)
    print(
        "z4j: admin token replaced; it is shown only now. Running brains on this database "
        "accept it (and refuse the old one) within a second; give it to the CLI as "
        "Z4J_ADMIN_TOKEN",
        file=sys.stderr,
    )
    return 0


def _audited(
    args: argparse.Namespace, action: str, target: str, after: Any
) -> Callable[[Store], object]:
    """An audit row for a change made on the database directly (actor: the local user)."""
    import getpass

    from z4j_brain.audit import Actor, AuditLog, load_key

    config = load_with_file(getattr(args, "config", None), database=args.database)
    log = AuditLog(load_key(config.audit_key, config.audit_key_file))
    actor = Actor(f"local:{getpass.getuser()}", "local")

    def append(store: Store) -> object:
        return log.append(
            store, actor=actor, action=action, target=target, before=None, after=after,
            now=time.time(),
        )  # fmt: skip

    return append


def _open_store(args: argparse.Namespace) -> Store:
    config = load_with_file(getattr(args, "config", None), database=args.database)
    return Store.open(config.database)


def _tokens(args: argparse.Namespace) -> int:
    if args.action == "create":
        check_name(args.name)
        labels = parse_labels(args.labels)
        now = time.time()
        try:
            expires_at = now + duration_seconds(args.expires, "--expires") if args.expires else None
        except ValueError as exc:
            raise UserError(str(exc)) from None
        store = _open_store(args)
        try:
            after = {
                "name": args.name,
                "labels": labels,
                "expires_at": expires_at,
                "app": args.app,
                "engine": args.engine,
            }
            token = create_token(
                store, args.name, labels, now, expires_at, app=args.app, engine=args.engine,
                also=_audited(args, "token.create", args.name, after),
            )  # fmt: skip
        finally:
            store.close()
        print(token)
        print(
            f"z4j: token {args.name!r} created; it is shown only now: give it to the agent "
            "as Z4J_TOKEN",
            file=sys.stderr,
        )
        return 0
    store = _open_store(args)
    try:
        if args.action == "revoke":
            now = time.time()
            audit = _audited(args, "token.revoke", args.name, {"revoked_at": now})
            with store.transaction():
                found = store.revoke_token(args.name, now)
                if found:
                    audit(store)
            if not found:
                raise UserError(f"no token named {args.name!r} (see z4j tokens list)")
            print(f"revoked token {args.name!r}")
            return 0
        rows = store.token_rows()
    finally:
        store.close()
    now = time.time()
    items: list[dict[str, Any]] = [token_summary(r, now) for r in rows]
    if args.json:
        emit_json(items)
        return 0
    print_tokens(items)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from z4j_brain.brain import Brain
    from z4j_brain.server import bind_socket, print_url, serve

    config = load_with_file(
        args.config,
        host=args.host,
        port=args.port,
        database=args.database,
        certfile=args.certfile,
        keyfile=args.keyfile,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    configure_logging(config.log_level, config.log_format)
    # The port first: nothing is written (database, lock file, admin token, leadership)
    # by a brain that cannot listen.
    try:
        sock = bind_socket(config)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc} (another "
            "process uses the port, or the address is not this machine's; choose another "
            "with --port or --host)"
        ) from None
    try:
        brain = Brain(config)
        brain.prepare()
        if brain.new_admin_token is not None and brain.new_admin_token != config.admin_token:
            print(
                "z4j: admin token for the HTTP API (shown only now, keep it): "
                f"{brain.new_admin_token}",
                file=sys.stderr,
                flush=True,
            )

        def terminated(signum: int, frame: Any) -> None:
            raise _Terminated()

        # uvicorn shuts down gracefully on SIGTERM, then re-raises it: end with exit code 0.
        previous = signal.signal(signal.SIGTERM, terminated)
        try:
            asyncio.run(serve(brain, announce=print_url(), log_level=config.log_level, sock=sock))
        except _Terminated:
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        sock.close()
    return 0


def _check_config(args: argparse.Namespace) -> int:
    """Validate a brain.toml the way ``serve --config`` reads it (with this shell's ``Z4J_*``
    variables over it) and print what it resolves to; secrets are never printed."""
    config = load_with_file(args.file)
    settings: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "database": redact_url(config.database),
        "tls_certfile": str(config.tls_certfile) if config.tls_certfile else None,
        "tls_keyfile": str(config.tls_keyfile) if config.tls_keyfile else None,
        "event_retention_days": config.retention_seconds / 86400.0,
        "fire_retention_days": config.fire_retention_seconds / 86400.0,
        "secure_cookies": config.cookies_secure,
        "audit_key": "set" if config.audit_key else "from file",
        "leader_lock_key": config.leader_lock_key,
        "admin_token": "set" if config.admin_token else "not set",
        "auth_failure_limit": config.auth_failure_limit,
        "heartbeat_seconds": config.limits.heartbeat_seconds,
        "window": config.limits.window,
        "max_batch_events": config.limits.max_batch_events,
        "max_frame_bytes": config.limits.max_frame_bytes,
        "log_level": config.log_level,
        "log_format": config.log_format,
        "access_log": config.access_log,
        "metrics_task_names": list(config.metrics_task_names),
        "metrics_task_top_n": config.metrics_task_top_n,
    }
    if args.json:
        print(json.dumps(settings, indent=2))
        return 0
    print(f"{args.file}: valid")
    width = max(len(k) for k in settings)
    for key, value in settings.items():
        print(f"  {key:<{width}}  {value}")
    return 0


def main() -> None:  # pragma: no cover - convenience for `python -m z4j_brain.cli`
    sys.exit(run(sys.argv[1:]))
