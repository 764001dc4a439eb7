"""Keyset paging: the opaque cursors of the API's list routes (``cursor=`` / ``next_cursor``).

A list is read in one total, stable order (its sort key ends in the row's unique id). A cursor
holds the key of the last row of a page, and the next page is the rows strictly after that key,
so rows written between two pages never shift a page or show a row twice, and a deep page costs
what the first does (an index range, never an offset). Owns each list's key columns and the
cursor's text form: URL-safe base64 of compact JSON ``[list, *key]``. Pure: no SQL, no I/O.
A malformed cursor, or one of another list, is a ``CursorError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

#: Each list's sort key, in order (every list sorts all its columns in the same direction).
KEYS: Final[dict[str, tuple[str, ...]]] = {
    "tasks": ("updated_at", "engine", "task_id"),
    "fires": ("slot", "created_at", "fire_id"),
    "audit": ("seq",),
    "actions": ("requested_at", "action_id"),
}
#: The type of each key column, by list (a float column also takes a JSON integer).
_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "tasks": (float, str, str),
    "fires": (float, float, str),
    "audit": (int,),
    "actions": (float, str),
}
#: Longest cursor accepted: a key of a few ids and times is far shorter.
MAX_CURSOR_LENGTH: Final = 2000

Key = tuple[Any, ...]


class CursorError(ValueError):
    """A cursor that is not one this brain gave for that list."""


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    """The opaque cursor of ``key`` in list ``kind``."""
    raw = json.dumps([kind, *key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> Key:
    """The key a cursor of list ``kind`` holds; ``CursorError`` says what is wrong."""
    hint = "pass the next_cursor of the previous page unchanged"
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise CursorError(f"malformed cursor: longer than {MAX_CURSOR_LENGTH} characters; {hint}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode(), parse_constant=_no_constant)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError(f"malformed cursor {cursor[:40]!r}; {hint}") from None
    types = _TYPES[kind]
    if not isinstance(value, list) or not value or value[0] != kind:
        raise CursorError(f"malformed cursor {cursor[:40]!r}: not a cursor of {kind}; {hint}")
    key = value[1:]
    if len(key) != len(types) or not all(map(_fits, key, types)):
        raise CursorError(f"malformed cursor {cursor[:40]!r}: not a cursor of {kind}; {hint}")
    return tuple(float(v) if t is float else v for v, t in zip(key, types, strict=True))


def page(
    kind: str, rows: list[dict[str, Any]], limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Split the ``limit + 1`` rows a store read returned into the page and its
    ``next_cursor`` (None when no row follows the page)."""
    if len(rows) <= limit or limit == 0:
        return rows[:limit], None
    shown = rows[:limit]
    return shown, encode_cursor(kind, key_of(kind, shown[-1]))


def key_of(kind: str, row: Mapping[str, Any]) -> Key:
    return tuple(row[column] for column in KEYS[kind])


#: What a store column holds: a 64-bit integer, a finite double.
_INT_RANGE: Final = range(-(2**63), 2**63)
_FLOAT_LIMIT: Final = 1e300


def _fits(value: Any, kind: type) -> bool:
    """Whether a key part is of its column's type and within what the stores hold (a crafted
    cursor's 400-digit integer or 1e999 is refused here, not met as an overflow in SQL)."""
    if isinstance(value, bool):
        return False
    if kind is float:
        if isinstance(value, int):
            return value in _INT_RANGE
        return isinstance(value, float) and abs(value) <= _FLOAT_LIMIT
    if kind is int:
        return isinstance(value, int) and value in _INT_RANGE
    return isinstance(value, kind)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a key")
