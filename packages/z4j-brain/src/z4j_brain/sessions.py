"""Web sessions: an operator token (or the admin token) exchanged for a cookie, for the console.

Owns the cookie (``z4j_session``: HttpOnly, SameSite=Strict, Secure when the brain serves TLS
or ``Z4J_SECURE_COOKIES`` says so), the CSRF token a mutating request must echo in
``X-CSRF-Token`` (derived one-way from the session's secret, so it is never stored and never
reveals the cookie), the same-origin rule for mutating requests, and each session's life: idle
expiry, absolute expiry, its end when its credential is revoked, expires or rotates, and when
the browser logs in again. The store keeps only the keyed hash of the cookie's secret. Every
request reads the session from the store: nothing is cached.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from z4j_brain.access import ADMIN_NAME, Principal, admin_principal, operator_principal
from z4j_brain.store import SessionRow, Store
from z4j_brain.tokens import hash_hex

if TYPE_CHECKING:
    from starlette.requests import Request

    from z4j_brain.brain import Brain

COOKIE: Final = "z4j_session"
CSRF_HEADER: Final = "X-CSRF-Token"
#: Random bytes of a session's secret.
SECRET_BYTES: Final = 32
#: A session's last use is written at most this often (the idle expiry's resolution).
TOUCH_SECONDS: Final = 15.0


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds ``secret``."""
    return hashlib.sha256(b"z4j-csrf\0" + secret.encode()).hexdigest()


def csrf_ok(secret: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        csrf_token(secret).encode(), presented.strip().encode()
    )


def same_origin(request: Request) -> bool:
    """Whether a request may mutate as far as its origin goes: no ``Origin`` header (not a
    browser: the CLI, scripts) or one naming this very host. ``null`` and other hosts are
    refused (a page elsewhere must never act with a logged-in operator's cookie)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "").lower()
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host


def cookie_header(secret: str, max_age: float, secure: bool) -> str:
    value = f"{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(max_age)}"
    return value + ("; Secure" if secure else "")


def clear_cookie_header(secure: bool) -> str:
    return cookie_header("", 0, secure)


def open_session(
    store: Store, principal: Principal, *, credential_hash: str, secret: str, now: float,
    max_seconds: float,
) -> SessionRow:  # fmt: skip
    """Record a new session of ``principal`` opened with the credential whose hash is
    ``credential_hash``; the cookie will hold ``secret``."""
    row = SessionRow(
        session_hash=hash_hex(secret),
        operator=principal.name,
        credential_hash=credential_hash,
        source=principal.source,
        created_at=now,
        last_seen_at=now,
        expires_at=now + max_seconds,
        revoked_at=None,
    )
    store.create_session(row)
    return row


def live_principal(
    store: Store, secret: str, source: str, now: float, idle_seconds: float
) -> tuple[Principal, SessionRow] | None:
    """The principal of the session whose cookie holds ``secret``, if it is live: not ended,
    not past its absolute or idle expiry, and its credential still the live one."""
    row = store.session(hash_hex(secret))
    if (
        row is None
        or row.revoked_at is not None
        or now >= row.expires_at
        or now - row.last_seen_at >= idle_seconds
    ):
        return None
    if row.operator == ADMIN_NAME:
        admin_hash = store.admin_token_hash()
        if admin_hash is None or not hmac.compare_digest(admin_hash, row.credential_hash):
            return None
        principal = admin_principal(source)
    else:
        operator = store.operator(row.operator)
        if (
            operator is None
            or not operator.usable(now)
            or not hmac.compare_digest(operator.token_hash, row.credential_hash)
        ):
            return None
        principal = operator_principal(operator, source)
    return Principal(
        principal.name, principal.role, principal.apps, source, session_hash=row.session_hash
    ), row


async def session_principal(brain: Brain, secret: str, source: str) -> Principal | None:
    """``live_principal`` read from the store now; notes the use (at most every
    ``TOUCH_SECONDS``) so the idle expiry counts from the last request."""
    now = time.time()
    idle = brain.config.session_idle_seconds
    found = await brain.read(lambda s: live_principal(s, secret, source, now, idle))
    if found is None:
        return None
    principal, row = found
    if now - row.last_seen_at >= min(TOUCH_SECONDS, idle / 10):
        await brain.write(lambda s: s.touch_session(row.session_hash, now))
    return principal
