"""Who may do what: roles, principals, app scopes, and the one check every API route goes
through.

A request is made by a ``Principal``: the bootstrap admin (the admin token), a named operator
(an operator token), or a web session opened with one of those. Each has a ``Role`` (viewer <
operator < admin) and app patterns (globs; ``*`` is every app). Every route declares the role it
needs and whether it is brain-wide (``openapi.operation(role=..., brain_wide=...)``);
``authorize`` compares them, and the handlers apply the scope to what they read and touch.
Tokens are looked up in the store on every request (no cache), so a revoked or expired operator
is cut off at its next request. Never logs or echoes a token.
"""

from __future__ import annotations

import enum
import fnmatch
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from z4j_brain.audit import Actor
from z4j_brain.store import OperatorRow
from z4j_brain.tokens import status
from z4j_core.wire.limits import TOKEN_BYTES

#: Operator tokens start with this, so a leaked one is recognisable (and never an agent's).
OPERATOR_PREFIX: Final = "z4j_op_"
#: The bootstrap admin's name in the audit log and in ``GET /session``.
ADMIN_NAME: Final = "admin"
#: The scope of every app.
EVERY_APP: Final = "*"
_MAX_PATTERN: Final = 128
_MAX_PATTERNS: Final = 32


class Role(enum.IntEnum):
    """What a principal may do; each role may do everything the one below it may."""

    VIEWER = 1  # reads what it is scoped to
    OPERATOR = 2  # also triggers, pauses and resumes schedules, sends commands, task actions
    ADMIN = 3  # also creates, edits and deletes schedules, manages tokens and operators

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            raise AccessError(
                f"role {text!r} is not one of {', '.join(r.label for r in cls)}"
            ) from None


class AccessError(ValueError):
    """An operator request is invalid (a bad role or app pattern); the message says what."""


def parse_apps(patterns: Iterable[str] | None) -> list[str]:
    """App patterns as given (``billing``, ``billing-*``); none given is every app."""
    found = [p.strip() for p in (patterns or []) if p.strip()]
    if not found:
        return [EVERY_APP]
    if len(found) > _MAX_PATTERNS:
        raise AccessError(f"at most {_MAX_PATTERNS} app patterns")
    for pattern in found:
        if len(pattern) > _MAX_PATTERN or not pattern.isprintable():
            raise AccessError(
                f"app pattern {pattern[:40]!r} must be printable and at most "
                f"{_MAX_PATTERN} characters"
            )
    return found


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a name, a role, app patterns, where it came from, and the web
    session it used (its hash) when it came with a cookie."""

    name: str
    role: Role
    apps: tuple[str, ...]
    source: str
    session_hash: str | None = None

    @property
    def unscoped(self) -> bool:
        return EVERY_APP in self.apps

    def sees(self, app: str) -> bool:
        """Whether ``app`` is in scope (globs, case-sensitive)."""
        return self.unscoped or any(fnmatch.fnmatchcase(app, p) for p in self.apps)

    def visible(self, apps: Iterable[str]) -> list[str]:
        return [a for a in apps if self.sees(a)]

    def keep(self, items: Sequence[dict[str, Any]], key: str = "app") -> list[dict[str, Any]]:
        """The items whose ``key`` is an app in scope."""
        return [i for i in items if self.sees(str(i.get(key, "")))]

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.source)

    def summary(self) -> dict[str, Any]:
        return {
            "operator": self.name,
            "role": self.role.label,
            "apps": list(self.apps),
            "via": "session" if self.session_hash is not None else "token",
        }


def admin_principal(source: str) -> Principal:
    return Principal(ADMIN_NAME, Role.ADMIN, (EVERY_APP,), source)


def operator_principal(row: OperatorRow, source: str) -> Principal:
    return Principal(row.name, Role.parse(row.role), tuple(row.apps), source)


def new_operator_token() -> str:
    return OPERATOR_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def operator_summary(row: OperatorRow, now: float) -> dict[str, Any]:
    """What listings show of an operator: never its token nor its hash."""
    return {
        "name": row.name,
        "role": row.role,
        "apps": row.apps,
        "status": status(row, now),
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "rotated_at": row.rotated_at,
    }


def refusal(principal: Principal, role: Role, brain_wide: bool) -> str | None:
    """Why ``principal`` may not call a route that needs ``role`` (and is brain-wide or not);
    None when it may."""
    if principal.role < role:
        return (
            f"operator {principal.name!r} has role {principal.role.label}; this needs {role.label}"
        )
    if brain_wide and not principal.unscoped:
        return (
            f"operator {principal.name!r} is scoped to apps {', '.join(principal.apps)}; this "
            "covers every app (it needs the scope '*')"
        )
    return None
