"""The HTTP contract, declared once: every route is an ``Operation`` (method, path, prose, the
request and response types of ``z4j_brain.shapes``); the app's routes and the OpenAPI 3.1
document served at ``/api/v1/openapi.json`` are both built from the same table.

Owns the table and the document. The prose (summaries, descriptions) is written here by hand;
every schema is generated from the msgspec types by ``msgspec.json.schema_components``, so the
document cannot describe a body other than the one the handler decodes or encodes. The
conformance test (``tests/hostile/test_hostile_conformance.py``) calls every operation of the
served document against a real brain and validates each answer against it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from z4j_brain.access import Role
from z4j_brain.shapes import Error
from z4j_core.endpoints import (
    API_PREFIX,
    HEALTH_LIVE_PATH,
    HEALTH_PATH,
    HEALTH_READY_PATH,
    METRICS_PATH,
    OPENAPI_PATH,
)

__all__ = ["API_PREFIX", "OPENAPI_PATH", "Operation", "Param", "openapi_document", "operation"]

Handler = Callable[[Request], Awaitable[Response]]
_REF: Final = "#/components/schemas/{name}"
#: Answers of every operation behind the admin token (``protected`` gives them).
GUARDED_ANSWERS: Final[dict[int, tuple[type | None, str]]] = {
    400: (Error, "A parameter or the body is malformed; the error says which."),
    401: (Error, "The token (or session) is missing, wrong, revoked or expired."),
    429: (Error, "This address presented too many bad tokens; see Retry-After."),
}
#: The answer of an operation some principal may be refused (a role too low, a scope too
#: narrow for a brain-wide route, a cross-origin or CSRF-less mutation).
FORBIDDEN: Final = (Error, "Not allowed: the role, the app scope, the origin or the CSRF token.")
MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCALARS: Final = {str: "string", int: "integer", float: "number"}


@dataclass(frozen=True)
class Param:
    """A query or header parameter (path parameters come from the path's ``{name}``)."""

    name: str
    description: str
    kind: type = str
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    handler: Handler
    #: status -> (body type, or None for no JSON body; description)
    responses: dict[int, tuple[type | None, str]]
    body: type | None = None
    body_required: bool = True
    params: tuple[Param, ...] = ()
    guarded: bool = True
    #: A response that is not JSON: (status, media type).
    text: tuple[int, str] | None = None
    #: The least role that may call it (None: undeclared, which only the admin may call and
    #: the role test refuses).
    role: Role | None = None
    #: Whether it covers every app (audit, tokens...): only principals scoped to '*' may call it.
    brain_wide: bool = False

    @property
    def needs(self) -> Role:
        return Role.ADMIN if self.role is None else self.role

    @property
    def may_forbid(self) -> bool:
        return self.guarded and (
            self.needs > Role.VIEWER or self.brain_wide or self.method in MUTATING
        )

    @property
    def answers(self) -> dict[int, tuple[type | None, str]]:
        if not self.guarded:
            return dict(self.responses)
        forbidden = {403: FORBIDDEN} if self.may_forbid else {}
        return {**GUARDED_ANSWERS, **forbidden, **self.responses}


#: Open routes served at the root rather than under ``/api/v1``.
_ROOT_PATHS: Final = (
    HEALTH_PATH, HEALTH_LIVE_PATH, HEALTH_READY_PATH, METRICS_PATH, OPENAPI_PATH
)  # fmt: skip

#: Every HTTP operation the brain serves, in the order they were declared.
OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    summary: str,
    *,
    responses: dict[int, tuple[type | None, str]],
    body: type | None = None,
    body_required: bool = True,
    params: tuple[Param, ...] = (),
    guarded: bool = True,
    text: tuple[int, str] | None = None,
    role: Role | None = None,
    brain_wide: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare the handler below as one operation (``path`` is under ``/api/v1``, except the
    open routes at the root: ``/health/...``, ``/healthz``, ``/metrics`` and the document). A
    guarded operation declares the least ``role`` that may call it, and ``brain_wide`` when it
    covers every app (then a principal scoped to some apps is refused); the handler applies the
    scope to what it reads and touches."""

    def register(handler: Handler) -> Handler:
        full = path if path in _ROOT_PATHS else API_PREFIX + path
        OPERATIONS.append(
            Operation(
                method=method.upper(),
                path=full,
                summary=summary,
                handler=handler,
                responses=responses,
                body=body,
                body_required=body_required,
                params=params,
                guarded=guarded,
                text=text,
                role=role,
                brain_wide=brain_wide,
            )
        )
        return handler

    return register


def operations() -> list[Operation]:
    """The table, complete (importing ``api`` declares every operation)."""
    import z4j_brain.api  # noqa: F401 -- the handlers declare themselves when imported

    return OPERATIONS


def _path_params(path: str) -> list[str]:
    names = []
    rest = path
    while "{" in rest:
        start = rest.index("{")
        end = rest.index("}", start)
        names.append(rest[start + 1 : end])
        rest = rest[end + 1 :]
    return names


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every operation, schemas generated from the types."""
    table = operations()
    types: list[Any] = []
    for op in table:
        if op.body is not None:
            types.append(op.body)
        types.extend(t for t, _ in op.answers.values() if t is not None)
    unique = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(unique, ref_template=_REF)
    ref_of = dict(zip(unique, refs, strict=True))
    secured: list[dict[str, list[str]]] = [{"adminToken": []}]
    paths: dict[str, dict[str, Any]] = {}
    for op in table:
        parameters: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _path_params(op.path)
        ]
        parameters += [
            {
                "name": p.name,
                "in": p.where,
                "required": False,
                "description": p.description,
                "schema": {"type": _SCALARS[p.kind]},
            }
            for p in op.params
        ]
        item: dict[str, Any] = {"summary": op.summary, "security": secured if op.guarded else []}
        if op.guarded and op.role is not None:
            item["x-z4j-role"] = op.role.label
            item["x-z4j-scope"] = "brain" if op.brain_wide else "apps"
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": ref_of[op.body]}},
            }
        answers: dict[str, Any] = {}
        for status, (shape, description) in sorted(op.answers.items()):
            answer: dict[str, Any] = {"description": description}
            if shape is not None:
                answer["content"] = {"application/json": {"schema": ref_of[shape]}}
            elif op.text is not None and op.text[0] == status:
                answer["content"] = {op.text[1]: {"schema": {"type": "string"}}}
            answers[str(status)] = answer
        item["responses"] = answers
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "z4j brain API",
            "version": version,
            "description": (
                "The operator API of a z4j brain. Every /api/v1 route but this document needs "
                "`Authorization: Bearer <token>` (the admin token or an operator's) or a web "
                "session (cookie `z4j_session` from POST /api/v1/session; mutations also need "
                "the `X-CSRF-Token` header). Each operation's `x-z4j-role` is the least role "
                "that may call it (viewer < operator < admin); `x-z4j-scope` is `apps` when it "
                "shows or touches only the apps in the caller's scope, `brain` when it covers "
                "every app (only callers scoped to '*'). Errors are JSON objects with one "
                "`error` line. Agents connect to the WebSocket at /v1/agent (see "
                "docs/protocol.md), not described here."
            ),
        },
        "security": secured,
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
        },
    }
