"""Redaction: what leaves the process never carries a secret or an unbounded value.

Owns turning task arguments, results and tracebacks into short strings with secrets replaced.
Runs on the hot path (inside `emit`), so it walks only a bounded part of each value and never
raises: a value whose repr fails becomes a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

# Substrings of a key (lower-cased, '-' and ' ' read as '_') that mark its value as a secret.
SECRET_KEY_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "auth",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
    "cookie",
    "session",
    "signature",
    "csrf",
)

_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@"
)
# `password=hunter2`, `api_key: abc`, `"token": "abc"` in free text (a message, a traceback).
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:db_|client_)?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|authorization)['\"]?)(\s*[=:]\s*)['\"]?[^\s'\",;&)]+['\"]?"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")

MAX_VALUE_CHARS = 200
MAX_FIELD_CHARS = 2000
MAX_ITEMS = 25
MAX_DEPTH = 3
MAX_TRACEBACK_CHARS = 8000


class Redactor:
    """Turns values into bounded, redacted reprs. One per agent; cheap to call."""

    __slots__ = ("_key_cache", "_key_parts")

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        self._key_parts = SECRET_KEY_PARTS + tuple(k.lower() for k in extra_keys)
        self._key_cache: dict[str, bool] = {}

    def is_secret_key(self, key: object) -> bool:
        cached = self._key_cache.get(key) if type(key) is str else None
        if cached is None:
            if not isinstance(key, str):
                return False
            normal = key.lower().replace("-", "_").replace(" ", "_")
            cached = any(part in normal for part in self._key_parts)
            if len(self._key_cache) < 4096:
                self._key_cache[key] = cached
        return cached

    def args(self, args: Any) -> str | None:
        if args is None:
            return None
        kind = type(args)
        if (kind is tuple or (kind is list and args)) and len(args) <= MAX_ITEMS:
            # The common case, flat and small (a tuple, or a list as taskiq and JSON carry
            # them): one C-level repr, then the credential scrub. An empty list reads "()"
            # below, as it always has.
            for item in args:
                item_kind = type(item)
                if item_kind not in _FLAT or (item_kind is str and len(item) > MAX_VALUE_CHARS):
                    break
            else:
                return _cut(_scrub_if_needed(repr(args)), MAX_FIELD_CHARS)
        if isinstance(args, (list, tuple)) and not args:
            return "()"
        return _cut(self._walk(args, MAX_DEPTH), MAX_FIELD_CHARS)

    def kwargs(self, kwargs: Any) -> str | None:
        if kwargs is None:
            return None
        if type(kwargs) is dict and len(kwargs) <= MAX_ITEMS:
            if not kwargs:
                return "{}"
            secret = self.is_secret_key
            for key, item in kwargs.items():
                kind = type(item)
                if (
                    type(key) is not str
                    or secret(key)
                    or kind not in _FLAT
                    or (kind is str and len(item) > MAX_VALUE_CHARS)
                ):
                    break
            else:
                return _cut(_scrub_if_needed(repr(kwargs)), MAX_FIELD_CHARS)
        if isinstance(kwargs, Mapping) and not kwargs:
            return "{}"
        return _cut(self._walk(kwargs, MAX_DEPTH), MAX_FIELD_CHARS)

    def text(self, value: str | None, limit: int = MAX_FIELD_CHARS) -> str | None:
        """Free text (exception messages, tracebacks): credentials in URLs and headers, and
        `password=...`-style assignments, scrubbed."""
        if value is None:
            return None
        value = scrub(value)
        if "=" in value or ":" in value:
            value = _ASSIGNED_SECRET.sub(lambda m: m.group(1) + m.group(2) + REDACTED, value)
        return _cut(value, limit)

    def _walk(self, value: Any, depth: int) -> str:
        # Exact type checks first: this runs inside `emit`, and ABC isinstance checks are slow.
        kind = type(value)
        if kind is str:
            if len(value) > MAX_VALUE_CHARS:
                # Scrub before the final cut, so a credential is never left half-removed.
                value = _cut(scrub(value[: 2 * MAX_VALUE_CHARS]), MAX_VALUE_CHARS)
            elif "@" in value or "earer " in value or "asic " in value:
                value = scrub(value)
            return repr(value)
        if kind is int or kind is float or kind is bool or value is None:
            return repr(value)
        if depth <= 0:
            return "..."
        if kind is dict or isinstance(value, Mapping):
            parts = []
            secret = self.is_secret_key
            for index, (key, item) in enumerate(value.items()):
                if index >= MAX_ITEMS:
                    parts.append("...")
                    break
                shown = REDACTED if secret(key) else self._walk(item, depth - 1)
                key_text = repr(key) if type(key) is str else _safe_repr(key)
                parts.append(key_text + ": " + shown)
            return "{" + ", ".join(parts) + "}"
        if kind is tuple or kind is list or isinstance(value, (list, tuple)):
            items = [self._walk(item, depth - 1) for item in value[:MAX_ITEMS]]
            if len(value) > MAX_ITEMS:
                items.append("...")
            if isinstance(value, tuple):
                return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
            return "[" + ", ".join(items) + "]"
        if isinstance(value, str):
            return self._walk(str(value), depth)
        return _cut(scrub(_safe_repr(value)), MAX_VALUE_CHARS)


_FLAT = frozenset({str, int, float, bool, type(None)})


def _scrub_if_needed(text: str) -> str:
    if "@" in text or "earer " in text or "asic " in text:
        return scrub(text)
    return text


def scrub(text: str) -> str:
    """Remove credentials from URLs (`scheme://user:pass@`) and auth headers in free text."""
    if "://" in text and "@" in text:
        text = _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:" + REDACTED + "@", text)
    if "earer" in text or "asic" in text:
        text = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)
    return text


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 12] + f"...(+{len(text) - limit + 12})"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} (repr failed)>"
