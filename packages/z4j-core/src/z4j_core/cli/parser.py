"""The argument parser every `z4j` command is built with (`z4j brain ...` too).

Owns what a user sees when the command line is wrong: the usage of the subcommand that was
being parsed (not the top-level one), the bad option or value named, a "did you mean" for a
mistyped option, subcommand or value, and exit code 2. Subparsers inherit the class, so a
subcommand added anywhere in the tree gets this for free. Must stay light to import.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn

#: The namespace attribute that names the deepest parser that ran (for unrecognized options).
_OWNER = "_z4j_parser"
#: Exit code of a usage error, the same as argparse's.
EXIT_USAGE = 2


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (case-insensitive), or None when none is close."""
    options = [c for c in candidates if c]
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    found = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    if not found and word.startswith("--") and len(word) > 3:
        # A prefix typo (`--limt`) is close enough; a short option never is.
        found = [c for c in lowered if c.startswith(word.lower()[:4])][:1]
    return lowered[found[0]] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean X?)`` or an empty string."""
    match = suggest(word, candidates)
    return f" (did you mean {match}?)" if match and match != word else ""


class LazyChoices:
    """``choices`` whose values are loaded on first use, so building the parser imports
    nothing heavy (the task states live in the wire protocol, loaded only to check a value)."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._values: tuple[str, ...] | None = None

    @property
    def values(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors name the subcommand, the bad word and a suggestion."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Each subparser parses into a fresh namespace that is copied into its parent's after
        # it ran, so the deepest parser's mark is the one left.
        namespace = argparse.Namespace() if namespace is None else namespace
        setattr(namespace, _OWNER, self)
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        owner: Parser = getattr(parsed, _OWNER, self)
        if hasattr(parsed, _OWNER):
            delattr(parsed, _OWNER)
        if extras:
            owner.error(owner.unrecognized_message(extras))
        return parsed

    def option_strings(self) -> list[str]:
        return [o for o in self._option_string_actions if o.startswith("--")]

    def subcommands(self) -> list[str]:
        names: list[str] = []
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                names += list(action.choices)
        return names

    def unrecognized_message(self, extras: list[str]) -> str:
        words = " ".join(extras)
        for extra in extras:
            if extra.startswith("-"):
                name = extra.split("=", 1)[0]
                hint = did_you_mean(name, self.option_strings())
                return f"unrecognized option {name!r}{hint}; see {self.prog} --help"
        hint = did_you_mean(extras[0], self.subcommands()) if self.subcommands() else ""
        return f"unrecognized arguments: {words}{hint}; see {self.prog} --help"

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        what = "command" if isinstance(action, argparse._SubParsersAction) else "value"
        if what == "command":
            # `z4j tasks --limt 3`: the unknown option left its value to be read as a
            # subcommand; the option is what to name.
            words: list[str] = getattr(self, "_words", [])
            at = words.index(value) if value in words else -1
            before = words[at - 1].split("=", 1)[0] if at > 0 else ""
            if before.startswith("-") and before not in self._option_string_actions:
                raise argparse.ArgumentError(None, self.unrecognized_message([before]))
        hint = did_you_mean(str(value), names)
        raise argparse.ArgumentError(
            action, f"unknown {what} {value!r}{hint}; choose from {', '.join(names)}"
        )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
