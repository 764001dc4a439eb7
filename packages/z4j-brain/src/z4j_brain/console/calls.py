"""How the console asks the brain anything: through the API's own operations, in process.

Every read and every change a page makes calls the operation the API declares for it (the same
``api.protected`` check: session cookie, same origin, CSRF token, role and app scope; the same
handler, store reads, audit rows and scheduler wake-ups), with a request built from the
browser's own (its cookie and address) and a JSON body made from the form. The console only
turns forms into those bodies and answers into pages; it never writes to the store itself and
never decides who may do what beyond hiding what the same role table would refuse.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from z4j_brain.access import Principal, Role, refusal
from z4j_brain.api import protected
from z4j_brain.openapi import API_PREFIX, Operation, operations
from z4j_brain.sessions import CSRF_HEADER

#: Request headers a built request does not take from the browser's (its body is not theirs).
_DROPPED = frozenset({b"content-type", b"content-length", b"transfer-encoding", b"authorization"})


class LoginNeeded(Exception):
    """The browser has no live session (none, ended, expired or its operator revoked)."""


class Unavailable(Exception):
    """The brain could not tell who the browser is now (rate limited, its store down): the
    session stays, and the page says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """An operation's status and its decoded JSON answer."""

    status: int
    data: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def listed(self, key: str) -> list[dict[str, Any]]:
        """The list ``key`` of a successful answer; ``Unavailable`` otherwise (the page then
        says what the brain answered, rather than failing with a 500)."""
        if not self.ok:
            raise Unavailable(self.status, self.error)
        return list(self.data[key])

    @property
    def error(self) -> str:
        if isinstance(self.data, dict) and isinstance(self.data.get("error"), str):
            return str(self.data["error"])
        return f"the brain answered {self.status}"


@functools.cache
def _table() -> dict[tuple[str, str], Operation]:
    return {(op.method, op.path): op for op in operations()}


def find(method: str, template: str) -> Operation:
    """The API operation ``method`` ``template`` (a path under ``/api/v1``, as declared)."""
    return _table()[(method, API_PREFIX + template)]


def may(principal: Principal, method: str, template: str) -> bool:
    """Whether ``principal`` may call that operation: what a page offers (the operation itself
    still checks, so a forged form is refused all the same)."""
    op = find(method, template)
    return refusal(principal, op.needs, op.brain_wide) is None


def principal_from(whoami: dict[str, Any], source: str) -> Principal:
    """The principal ``GET /session`` described."""
    return Principal(
        str(whoami["operator"]), Role.parse(str(whoami["role"])), tuple(whoami["apps"]), source
    )


async def call(
    request: Request,
    method: str,
    template: str,
    params: dict[str, str] | None = None,
    *,
    query: dict[str, Any] | None = None,
    body: Any = None,
    csrf: str | None = None,
    authorization: str | None = None,
) -> Answer:
    """Call the API operation ``method`` ``template`` as the browser that made ``request``.
    ``csrf`` is the token the form carried (a mutation without the right one is refused by the
    operation's own check). Raises ``LoginNeeded`` on a 401 without ``authorization``."""
    op = find(method, template)
    params = params or {}
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() not in _DROPPED]
    headers.append((b"content-type", b"application/json"))
    if csrf is not None:
        headers.append((CSRF_HEADER.lower().encode(), csrf.encode("latin-1", "replace")))
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("latin-1", "replace")))
    data = b"" if body is None else json.dumps(body).encode()
    path = op.path
    for key, value in params.items():
        path = path.replace("{" + key + "}", value)
    scope = {
        **request.scope,
        "method": method,
        "path": path,
        "raw_path": path.encode("utf-8", "replace"),
        "path_params": params,
        "query_string": urlencode(
            {k: v for k, v in (query or {}).items() if v not in (None, "")}
        ).encode(),
        "headers": headers,
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return {"type": "http.disconnect"}

    response = await protected(op)(Request(scope, receive))
    raw = bytes(response.body)
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = {"error": raw.decode("utf-8", "replace")}
    answer = Answer(response.status_code, decoded, dict(response.headers))
    if answer.status == 401 and authorization is None:
        raise LoginNeeded
    return answer
