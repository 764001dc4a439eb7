"""The HTTP routes of operators (named tokens with a role and an app scope) and of web
sessions (a token exchanged for a cookie, for the console).

Each route declares itself once with ``@operation``, with the role it needs. Operator changes
go through ``mutations.audited`` under the caller's name. A token is shown once, in the answer
that created it; a session's secret only ever travels in its ``Set-Cookie``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from z4j_brain import shapes
from z4j_brain.access import (
    ADMIN_NAME,
    AccessError,
    Role,
    new_operator_token,
    operator_summary,
    parse_apps,
)
from z4j_brain.api import brain_of, convert, decode, error, principal_of, reply
from z4j_brain.mutations import ApiError, BadRequest, Change, audited
from z4j_brain.openapi import operation
from z4j_brain.sessions import (
    COOKIE,
    clear_cookie_header,
    cookie_header,
    csrf_token,
    new_secret,
    open_session,
)
from z4j_brain.store import SessionRow, Store
from z4j_brain.tokens import TokenError, check_name, hash_hex

_NO_OPERATOR = (shapes.Error, "No operator of that name.")


async def _summary(request: Request, name: str, token: str | None = None) -> dict[str, Any]:
    row = await brain_of(request).read(lambda s: s.operator(name))
    assert row is not None, "the operator was just written"
    item = operator_summary(row, time.time())
    return item if token is None else {**item, "token": token}


@operation(
    "GET",
    "/operators",
    "Operators: name, role, app scope, status (never their tokens)",
    role=Role.ADMIN,
    brain_wide=True,
    responses={200: (shapes.OperatorList, "Operators, by name.")},
)
async def list_operators(request: Request) -> Response:
    rows = await brain_of(request).read(lambda s: s.operator_rows())
    now = time.time()
    return reply(shapes.OperatorList, {"operators": [operator_summary(r, now) for r in rows]})


@operation(
    "POST",
    "/operators",
    "Create an operator; the answer is the only time its token is shown",
    body=shapes.OperatorRequest,
    role=Role.ADMIN,
    brain_wide=True,
    responses={
        201: (shapes.NewOperator, "Created."),
        409: (shapes.Error, "An operator of that name exists (names stay taken after revoke)."),
    },
)
async def create_operator(request: Request) -> Response:
    raw = decode(await request.body(), dict[str, Any], "operator")
    try:
        if isinstance(raw.get("name"), str):
            check_name(raw["name"])
    except TokenError as exc:
        raise BadRequest(str(exc).replace("token name", "operator name")) from None
    req = convert(raw, shapes.OperatorRequest, "operator")
    if req.name == ADMIN_NAME:
        raise BadRequest(f"{ADMIN_NAME!r} is the bootstrap admin token's name: choose another")
    try:
        apps = parse_apps(req.apps)
    except AccessError as exc:
        raise BadRequest(str(exc)) from None
    token = new_operator_token()
    now = time.time()
    expires_at = now + req.expires_in if req.expires_in is not None else None

    def create(store: Store, now: float) -> tuple[None, Change]:
        store.create_operator(
            req.name, hash_hex(token), req.role, apps, now=now, expires_at=expires_at
        )
        after = {"role": req.role, "apps": apps, "expires_at": expires_at}
        return None, Change("operator.create", req.name, None, after)

    await audited(request, create, now=now)
    return reply(shapes.NewOperator, await _summary(request, req.name, token), 201)


@operation(
    "POST",
    "/operators/{name}/rotate",
    "Give an operator a new token (shown once); the old one and its sessions stop at once",
    role=Role.ADMIN,
    brain_wide=True,
    responses={200: (shapes.NewOperator, "The operator and its new token."), 404: _NO_OPERATOR},
)
async def rotate_operator(request: Request) -> Response:
    name = request.path_params["name"]
    token = new_operator_token()

    def rotate(store: Store, now: float) -> tuple[None, Change]:
        if not store.rotate_operator(name, hash_hex(token), now):
            raise ApiError(404, f"no live operator named {name!r}")
        return None, Change("operator.rotate", name, None, {"rotated_at": now})

    await audited(request, rotate)
    return reply(shapes.NewOperator, await _summary(request, name, token))


@operation(
    "DELETE",
    "/operators/{name}",
    "Revoke an operator: its token and sessions stop at its next request",
    role=Role.ADMIN,
    brain_wide=True,
    responses={200: (shapes.Operator, "The operator, revoked."), 404: _NO_OPERATOR},
)
async def revoke_operator(request: Request) -> Response:
    name = request.path_params["name"]

    def revoke(store: Store, now: float) -> tuple[None, Change]:
        if not store.revoke_operator(name, now):
            raise ApiError(404, f"no operator named {name!r}")
        return None, Change("operator.revoke", name, None, {"revoked_at": now})

    await audited(request, revoke)
    return reply(shapes.Operator, await _summary(request, name))


# -- web sessions -------------------------------------------------------------------------------


@operation(
    "GET",
    "/session",
    "Who the caller is: name, role, app scope, and whether it came with a token or a session",
    role=Role.VIEWER,
    responses={200: (shapes.Whoami, "The caller.")},
)
async def whoami(request: Request) -> Response:
    return reply(shapes.Whoami, principal_of(request).summary())


@operation(
    "POST",
    "/session",
    "Exchange the Bearer token for a session cookie (HttpOnly, SameSite=Strict, Secure over "
    "TLS or with Z4J_SECURE_COOKIES) and its CSRF token; a session cookie sent along ends",
    role=Role.VIEWER,
    responses={
        201: (shapes.NewSession, "Opened: the cookie is in Set-Cookie, the CSRF token here."),
    },
)
async def login(request: Request) -> Response:
    brain = brain_of(request)
    principal = principal_of(request)
    if principal.session_hash is not None:
        return error(400, "a session is opened with a token (Authorization: Bearer), not another")
    _, _, presented = request.headers.get("authorization", "").partition(" ")
    credential = (
        await brain.read(lambda s: s.admin_token_hash())
        if principal.name == ADMIN_NAME
        else hash_hex(presented.strip())
    )
    assert credential is not None
    secret = new_secret()
    longest = brain.config.session_max_seconds
    # A browser that logs in again replaces its cookie: the session it held ends now, rather
    # than live on, unseen, until it expires.
    replaced = request.cookies.get(COOKIE)

    def open_(store: Store) -> SessionRow:
        now = time.time()
        if replaced:
            store.end_session(hash_hex(replaced), now)
        return open_session(
            store,
            principal,
            credential_hash=credential,
            secret=secret,
            now=now,
            max_seconds=longest,
        )

    row = await brain.write(open_)
    body = {
        **principal.summary(),
        "via": "session",
        "csrf_token": csrf_token(secret),
        "expires_at": row.expires_at,
        "idle_seconds": brain.config.session_idle_seconds,
    }
    answer = reply(shapes.NewSession, body, 201)
    answer.headers["set-cookie"] = cookie_header(secret, longest, brain.config.cookies_secure)
    answer.headers["cache-control"] = "no-store"
    return answer


@operation(
    "DELETE",
    "/session",
    "Log out: the session ends now (with a token and no session, nothing to end)",
    role=Role.VIEWER,
    responses={200: (shapes.SessionEnded, "Whether a session ended; the cookie is cleared.")},
)
async def logout(request: Request) -> Response:
    brain = brain_of(request)
    session_hash = principal_of(request).session_hash
    ended = False
    if session_hash is not None:
        ended = await brain.write(lambda s: s.end_session(session_hash, time.time()))
    answer = reply(shapes.SessionEnded, {"ended": ended})
    answer.headers["set-cookie"] = clear_cookie_header(brain.config.cookies_secure)
    return answer
