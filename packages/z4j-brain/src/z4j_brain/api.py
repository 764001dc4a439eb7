"""The brain's HTTP API (``/api/v1/...``) and the ASGI app that also serves the agents'
WebSocket.

Owns the routes, their request and response shapes, and the admin-token check on every
``/api`` route. Small on purpose: each route is a thin call into ``Brain``; requests are
validated here and a bad one gets a 400 with a one-line ``error``. Never echoes a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from z4j_brain import __version__, api_schedules
from z4j_brain.brain import Brain, NoAgentError
from z4j_brain.gateway import AGENT_PATH, agent_endpoint
from z4j_brain.metrics import METRICS_CONTENT_TYPE, METRICS_PATH, render_metrics
from z4j_brain.openapi import API_PREFIX, OPENAPI_PATH, openapi_document
from z4j_brain.store import Store, StoreError
from z4j_brain.tokens import TokenError, check_name, hash_hex, token_summary
from z4j_core.wire.frames import CommandKind, CommandOptions
from z4j_core.wire.signing import new_token

log = logging.getLogger("z4j.brain.api")

T = TypeVar("T")

MAX_LIMIT: Final = 10000
#: Longest long poll ``GET /api/v1/events?wait=`` may ask for, in seconds.
MAX_WAIT_SECONDS: Final = 30
#: How often a long poll re-reads the store while it waits (other brains' batches).
POLL_SECONDS: Final = 0.25

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(ValueError):
    """The request's shape or values are wrong; the message says which."""


class CommandRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/commands``."""

    kind: CommandKind
    engine: str
    app: str
    task: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    options: CommandOptions = CommandOptions()
    fire_id: str | None = None
    schedule_id: str | None = None
    slot: str | None = None
    labels: dict[str, str] = {}
    deadline: float | None = None  # seconds


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def protected(handler: Handler) -> Handler:
    """Require ``Authorization: Bearer <admin token>``; refuse an address that presented too
    many bad tokens with 429 before looking at its token."""

    async def guarded(request: Request) -> Response:
        brain: Brain = request.app.state.brain
        client = request.client.host if request.client else "?"
        retry_after = brain.auth_limiter.retry_after(client)
        if retry_after is not None:
            return JSONResponse(
                {"error": "too many bad tokens from this address; try again later"},
                status_code=429,
                headers={"Retry-After": str(max(1, round(retry_after)))},
            )
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if (
            scheme.lower() != "bearer"
            or brain.admin is None
            or not brain.admin.verify(value.strip())
        ):
            brain.auth_limiter.failed(client)
            brain.auth_refused += 1
            log.warning("refused an API call from %s: bad admin token", client)
            return JSONResponse(
                {"error": "admin token missing or wrong"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except BadRequest as exc:
            return error(400, str(exc))
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.url.path)
            return error(500, f"the brain failed to answer: {type(exc).__name__}")

    return guarded


def _int_param(request: Request, name: str, default: int, maximum: int = MAX_LIMIT) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer") from None
    if not 0 <= value <= maximum:
        raise BadRequest(f"query parameter {name!r} must be between 0 and {maximum}")
    return value


async def post_command(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    req = _decode(await request.body(), CommandRequest, "command")
    if req.deadline is not None and req.deadline <= 0:
        raise BadRequest("deadline must be a positive number of seconds")
    try:
        outcome = await brain.send_command(
            kind=req.kind,
            engine=req.engine,
            app=req.app,
            task=req.task,
            args=req.args,
            kwargs=req.kwargs,
            options=req.options,
            fire_id=req.fire_id,
            schedule_id=req.schedule_id,
            slot=req.slot,
            labels=req.labels,
            deadline_seconds=req.deadline,
        )
    except NoAgentError as exc:
        return error(409, str(exc))
    except ValueError as exc:  # the Command frame's own checks (fire needs fire_id...)
        raise BadRequest(str(exc)) from None
    return JSONResponse(outcome.as_dict())


async def get_command(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    command_id = request.path_params["command_id"]
    row = await brain.read(lambda s: s.command(command_id))
    if row is None:
        return error(404, f"no command {command_id!r}")
    return JSONResponse(row)


async def get_task_events(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    task_id = request.path_params["task_id"]
    engine = request.query_params.get("engine")
    events = await brain.read(lambda s: s.task_events(task_id, engine))
    return JSONResponse({"events": events})


async def get_tasks(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    q = request.query_params
    limit = _int_param(request, "limit", 100)
    tasks = await brain.read(
        lambda s: s.tasks(
            state=q.get("state"),
            name=q.get("name"),
            engine=q.get("engine"),
            app=q.get("app"),
            task_id=q.get("task_id"),
            limit=limit,
        )
    )
    return JSONResponse({"tasks": tasks})


async def get_events(request: Request) -> Response:
    """Events stored after position ``after``; with ``wait`` (seconds), waits that long for the
    first new one (a long poll: ``z4j events tail`` follows the store with it)."""
    brain: Brain = request.app.state.brain
    after = _int_param(request, "after", 0, maximum=2**62)
    limit = _int_param(request, "limit", 1000)
    wait = _int_param(request, "wait", 0, maximum=MAX_WAIT_SECONDS)
    deadline = time.monotonic() + wait
    while True:
        events = await brain.read(lambda s: s.events_after(after, limit))
        left = deadline - time.monotonic()
        if events or left <= 0:
            break
        # Woken by a batch stored here; the timeout also catches batches stored by another
        # brain on the same Postgres database.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(brain.events_changed.wait(), min(left, POLL_SECONDS))
    next_after = events[-1]["position"] if events else after
    latest = await brain.read(lambda s: s.latest_position())
    return JSONResponse({"events": events, "next_after": next_after, "latest": latest})


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/tokens``."""

    name: str
    labels: dict[str, str] = {}
    expires_in: float | None = None  # seconds


async def post_token(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    req = _decode(await request.body(), TokenRequest, "token request")
    try:
        check_name(req.name)
    except TokenError as exc:
        raise BadRequest(str(exc)) from None
    if req.expires_in is not None and req.expires_in <= 0:
        raise BadRequest("expires_in must be a positive number of seconds")
    token = new_token()
    now = time.time()
    expires_at = now + req.expires_in if req.expires_in is not None else None
    who, audit = api_schedules.actor(request), api_schedules._audit(brain)

    def create(store: Store) -> None:
        store.create_token(req.name, hash_hex(token), req.labels, now, expires_at)
        after = {"name": req.name, "labels": req.labels, "expires_at": expires_at}
        audit.append(store, actor=who, action="token.create", target=req.name, before=None,
                     after=after, now=now)  # fmt: skip

    try:
        await brain.write(create)
    except StoreError as exc:
        return error(409, str(exc))
    await brain.tokens.refresh()
    rows = await brain.read(lambda s: s.token_rows())
    (row,) = [r for r in rows if r.name == req.name]
    return JSONResponse({**token_summary(row, now), "token": token}, status_code=201)


async def get_tokens(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    rows = await brain.read(lambda s: s.token_rows())
    now = time.time()
    return JSONResponse({"tokens": [token_summary(r, now) for r in rows]})


async def delete_token(request: Request) -> Response:
    """Revoke a token: its agents are cut off within a second (the name stays taken)."""
    brain: Brain = request.app.state.brain
    name = request.path_params["name"]
    now = time.time()
    who, audit = api_schedules.actor(request), api_schedules._audit(brain)

    def revoke(store: Store) -> bool:
        found = store.revoke_token(name, now)
        if found:
            audit.append(store, actor=who, action="token.revoke", target=name, before=None,
                         after={"revoked_at": now}, now=now)  # fmt: skip
        return found

    found = await brain.write(revoke)
    if not found:
        return error(404, f"no token named {name!r}")
    await brain.tokens.refresh()
    brain.tokens.cut_off_unusable()
    rows = await brain.read(lambda s: s.token_rows())
    (row,) = [r for r in rows if r.name == name]
    return JSONResponse(token_summary(row, time.time()))


async def get_openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(__version__))


async def get_metrics(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    dropped = await brain.read(lambda s: s.dropped_events_total())
    return PlainTextResponse(render_metrics(brain, dropped), media_type=METRICS_CONTENT_TYPE)


def _decode(body: bytes, kind: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid {what}: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequest("the body must be a JSON object") from None


async def get_agents(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    connected_only = request.query_params.get("connected") in ("1", "true")
    within = request.query_params.get("seen_within")
    seen_since = None
    if within is not None:
        seen_since = time.time() - _int_param(request, "seen_within", 0, maximum=2**31)
    agents = await brain.read(lambda s: s.agents(connected_only, seen_since))
    return JSONResponse({"agents": agents})


async def get_inventory(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    agent_instance = request.query_params.get("agent_instance")
    items = await brain.read(lambda s: s.inventory(agent_instance))
    return JSONResponse({"inventory": items})


async def healthz(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    return JSONResponse({"status": "ok", "agents_connected": len(brain.connections)})


def create_app(brain: Brain) -> Starlette:
    """The ASGI app: ``/v1/agent`` (WebSocket), ``/api/v1/...`` (admin token), ``/healthz``,
    ``/metrics`` and the OpenAPI document (both without a token: they hold no secrets)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await brain.start()
        try:
            yield
        finally:
            await brain.stop()

    routes = [
        WebSocketRoute(AGENT_PATH, agent_endpoint),
        Route("/healthz", healthz),
        Route(f"{API_PREFIX}/commands", protected(post_command), methods=["POST"]),
        Route(f"{API_PREFIX}/commands/{{command_id}}", protected(get_command)),
        Route(f"{API_PREFIX}/tasks", protected(get_tasks)),
        Route(f"{API_PREFIX}/tasks/{{task_id}}/events", protected(get_task_events)),
        Route(f"{API_PREFIX}/events", protected(get_events)),
        Route(f"{API_PREFIX}/agents", protected(get_agents)),
        Route(f"{API_PREFIX}/inventory", protected(get_inventory)),
        Route(f"{API_PREFIX}/tokens", protected(get_tokens)),
        Route(f"{API_PREFIX}/tokens", protected(post_token), methods=["POST"]),
        Route(f"{API_PREFIX}/tokens/{{name}}", protected(delete_token), methods=["DELETE"]),
        *api_schedules.routes(protected),
        Route(OPENAPI_PATH, get_openapi),
        Route(METRICS_PATH, get_metrics),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.brain = brain
    return app
