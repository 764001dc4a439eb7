"""The `z4j` command: one entry point, subcommands registered by small modules.

Owns argument parsing and the rule that a user sees one clear line and a non-zero exit for any
error, never a traceback. Must stay light to import: a subcommand module imports what it needs
(the brain, an HTTP client) only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from z4j_core import __version__


class CLIError(Exception):
    """A user-facing error: its message is printed as one line and the command exits non-zero."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# Each module exposes `register(subparsers)`; it adds its subcommands and sets `func` on them.
COMMAND_MODULES = (
    "z4j_core.cli.schedules",
    "z4j_core.cli.agent",
    "z4j_core.cli.brain",
    "z4j_core.cli.tokens",
    "z4j_core.cli.ops",
    "z4j_core.cli.audit",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="z4j", description="z4j: a control plane for Python task queues."
    )
    parser.add_argument("--version", action="version", version=f"z4j {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except CLIError as exc:
        print(f"z4j: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
