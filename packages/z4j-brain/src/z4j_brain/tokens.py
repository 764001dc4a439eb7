"""Agent and admin tokens: creating, verifying, revoking.

Owns the rule that the brain keeps only a keyed hash of a token (``signing.token_hash``) and
compares hashes with ``hmac.compare_digest``. A token is printed once, at creation, and never
logged, stored or echoed afterwards.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from z4j_brain.store import Store, TokenRow
from z4j_core.wire.limits import TOKEN_BYTES
from z4j_core.wire.signing import new_token, token_hash

ADMIN_PREFIX: Final = "z4j_admin_"
_MAX_NAME: Final = 64


class TokenError(ValueError):
    """A token request is invalid (a bad name or label); the message says what to fix."""


def hash_hex(token: str) -> str:
    """What the store keeps for ``token``."""
    return token_hash(token).hex()


def parse_labels(text: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` into a dict; an empty or missing text is no labels."""
    labels: dict[str, str] = {}
    if not text:
        return labels
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise TokenError(f"label {part.strip()!r} is not key=value (e.g. --labels env=prod)")
        labels[key] = value
    return labels


def check_name(name: str) -> str:
    if not name or len(name) > _MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise TokenError(
            f"token name {name!r} must be 1-{_MAX_NAME} letters, digits, '-', '_' or '.'"
        )
    return name


def create_token(
    store: Store,
    name: str,
    labels: dict[str, str],
    now: float,
    expires_at: float | None = None,
    *,
    app: str | None = None,
    engine: str | None = None,
    also: Callable[[Store], object] | None = None,
) -> str:
    """Create an agent token named ``name`` (bound to ``app`` and ``engine`` when given);
    return the token (the only time it exists). ``also`` runs in the same transaction (the
    audit row)."""
    check_name(name)
    check_binding(app, engine)
    token = new_token()
    with store.transaction():
        store.create_token(name, hash_hex(token), labels, now, expires_at, app=app, engine=engine)
        if also is not None:
            also(store)
    return token


def check_binding(app: str | None, engine: str | None) -> None:
    if engine is not None and app is None:
        raise TokenError("a token bound to an engine needs its app too (--app APP --engine E)")
    for what, value in (("app", app), ("engine", engine)):
        if value is not None and (not value.strip() or not value.isprintable()):
            raise TokenError(f"the {what} a token is bound to must be a printable name")


def binding_refusal(row: TokenRow, app: str, engines: list[str]) -> str | None:
    """Why an agent that presents ``app`` with ``engines`` may not use token ``row``; None
    when it may (an unbound token may present anything)."""
    if row.app is not None and app != row.app:
        return f"token bound to app {row.app[:40]!r}, not {app[:40]!r}"
    if row.engine is not None and any(e != row.engine for e in engines):
        others = ", ".join(sorted({e for e in engines if e != row.engine}))
        return f"token bound to engine {row.engine[:30]!r}, not {others[:40]}"
    return None


class Hashed(Protocol):
    """A stored credential: an agent token or an operator."""

    @property
    def token_hash(self) -> str: ...

    @property
    def revoked_at(self) -> float | None: ...

    def usable(self, now: float) -> bool: ...


H = TypeVar("H", bound=Hashed)


def find_token(rows: Sequence[H], presented: str, now: float) -> H | None:
    """The usable row whose hash matches ``presented``, comparing every row in constant time
    (no early exit on a match, no dict lookup keyed by the secret's hash)."""
    candidate = token_hash(presented)
    found: H | None = None
    for row in rows:
        try:
            stored = bytes.fromhex(row.token_hash)
        except ValueError:
            continue
        if hmac.compare_digest(stored, candidate) and found is None:
            found = row
    if found is None or not found.usable(now):
        return None
    return found


def status(row: Hashed, now: float) -> str:
    """`active`, `revoked` or `expired`, as listings show it."""
    if row.revoked_at is not None:
        return "revoked"
    return "active" if row.usable(now) else "expired"


def token_summary(row: TokenRow, now: float) -> dict[str, Any]:
    """What listings show of a token: never its secret nor its hash."""
    return {
        "name": row.name,
        "status": status(row, now),
        "labels": row.labels,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "app": row.app,
        "engine": row.engine,
    }


def new_admin_token() -> str:
    return ADMIN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def rotate_admin_token(
    store: Store, now: float, also: Callable[[Store], object] | None = None
) -> str:
    """Replace the admin token (a lost or leaked one stops working); return the new one.
    ``also`` runs in the same transaction (the audit row)."""
    token = new_admin_token()
    with store.transaction():
        store.set_admin_token_hash(hash_hex(token), now)
        if also is not None:
            also(store)
    return token


def ensure_admin_token(store: Store, now: float, preset: str | None = None) -> str | None:
    """Create the admin token on first run; return it (to print once), or None if one exists.

    ``preset`` (``Z4J_ADMIN_TOKEN``) is used instead of a random one when given.
    """
    with store.transaction():
        if store.admin_token_hash() is not None:
            return None
        token = preset or new_admin_token()
        store.set_admin_token_hash(hash_hex(token), now)
    return token


@dataclass(frozen=True)
class AdminCheck:
    """Verifies the admin token presented to the HTTP API against the stored hash."""

    stored_hash_hex: str

    def verify(self, presented: str) -> bool:
        try:
            stored = bytes.fromhex(self.stored_hash_hex)
        except ValueError:
            return False
        return hmac.compare_digest(stored, token_hash(presented))
