"""Subcommands served by the brain package (`z4j brain ...`; `z4j tokens ... --database`
forwards here too, see ``cli.tokens``).

The brain is an optional install: this module imports `z4j_brain` only when one of its
subcommands runs, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Any

from z4j_core.cli import CLIError

BRAIN_MISSING = "this command needs the brain: install it with pip install 'z4j[brain]'"


def load_brain_cli() -> Any:
    try:
        return import_module("z4j_brain.cli")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "z4j_brain":
            raise CLIError(BRAIN_MISSING) from None
        raise


def run_brain(argv: list[str]) -> int:
    """``z4j brain ARGS...``: the brain's own parser takes every word after ``brain``
    (``z4j_core.cli.main`` sends them here before its own parser sees them, so ``--help`` and
    every option reach the brain's parser)."""
    result: int = load_brain_cli().run(argv)
    return result


def _run_brain(args: argparse.Namespace) -> int:
    return run_brain(args.brain_args)


def register(subparsers: Any) -> None:
    # Listed for `z4j --help` and completion; `main` forwards `z4j brain ...` before parsing.
    brain = subparsers.add_parser(
        "brain", help="run and administer the brain server (needs z4j[brain])", add_help=False
    )
    brain.add_argument("brain_args", nargs=argparse.REMAINDER)
    brain.set_defaults(func=_run_brain)
