"""The `z4j` command: one entry point, subcommands registered by small modules.

Owns argument parsing (``cli.parser``: usage of the subcommand at fault, did-you-mean), the
options every command shares (``--tz``, ``--profile``), the exit codes, and the rule that a user
sees one clear line and a non-zero exit for any error, never a traceback. Must stay light to
import: a subcommand module imports what it needs (the brain, an HTTP client) only when that
subcommand runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from z4j_core import __version__

#: Set to show the traceback of an unexpected error instead of its one line.
ENV_DEBUG = "Z4J_DEBUG"


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
    "z4j_core.cli.operators",
    "z4j_core.cli.ops",
    "z4j_core.cli.actions",
    "z4j_core.cli.audit",
    "z4j_core.cli.profiles",
    "z4j_core.cli.completion",
)

Handler = Callable[[argparse.Namespace], int]

#: What each exit code means, for every command (docs/cli.md says the same).
EXIT_CODES = (
    (0, "success"),
    (1, "the brain could not be reached, refused, or answered an error; a check failed"),
    (2, "usage: a bad option, value or combination (the message says which)"),
    (130, "interrupted (Ctrl-C)"),
    (141, "the reader of the output went away (a closed pipe)"),
)


def build_parser() -> argparse.ArgumentParser:
    from z4j_core.cli.parser import Parser

    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    parser = Parser(
        prog="z4j",
        description="z4j: a control plane for Python task queues.",
        epilog=f"exit codes:\n{codes}\n\nEvery command takes --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"z4j {__version__}")
    add_display_arguments(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def add_display_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tz`` (the zone times are shown in), given before or after the subcommand. A command
    whose own ``--tz`` means something else (a schedule's zone) keeps it; ``Z4J_TZ`` or
    ``z4j --tz ZONE COMMAND`` still chooses the display zone there."""
    from z4j_core.cli.tables import ENV_TZ

    if "--tz" in parser._option_string_actions:
        return
    parser.add_argument(
        "--tz",
        dest="display_tz",
        metavar="ZONE",
        default=argparse.SUPPRESS,
        help=f"show times in this zone: local, UTC (default) or an IANA name (${ENV_TZ})",
    )


def _set_display_zone(args: argparse.Namespace) -> None:
    from z4j_core.cli.tables import ENV_TZ, resolve_display_zone, set_display_zone

    name = getattr(args, "display_tz", None) or os.environ.get(ENV_TZ) or None
    try:
        set_display_zone(resolve_display_zone(name))
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["brain"]:
        # The brain's own parser owns everything after `brain` (its --help included).
        from z4j_core.cli.brain import run_brain

        def brain() -> int:
            _set_display_zone(argparse.Namespace())  # Z4J_TZ applies there too
            return run_brain(words[1:])

        return _run(brain)
    parser = build_parser()
    args = parser.parse_args(words)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2

    def handle() -> int:
        _set_display_zone(args)
        assert handler is not None
        return handler(args)

    return _run(handle)


def _run(handle: Callable[[], int]) -> int:
    try:
        code = handle()
        sys.stdout.flush()
        return code
    except CLIError as exc:
        print(f"z4j: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`z4j schedules list | head -1`): what it wanted, it has. Point
        # stdout at nothing so the interpreter's own flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        if os.environ.get(ENV_DEBUG):
            raise
        print(
            f"z4j: error: unexpected {type(exc).__name__}: {exc} (a bug in z4j: set "
            f"{ENV_DEBUG}=1 for the traceback, and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
