"""The brain's HTTP API (``/api/v1/...``) and the ASGI app that also serves the agents'
WebSocket.

Owns the routes, their request and response shapes, and the admin-token check on every
``/api`` route. Small on purpose: each route is a thin call into ``Brain``; requests are
validated here and a bad one gets a 400 with a one-line ``error``. Never echoes a token.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from z4j_brain.brain import Brain, NoAgentError
from z4j_brain.gateway import AGENT_PATH, agent_endpoint
from z4j_core.wire.frames import CommandKind, CommandOptions

API_PREFIX: Final = "/api/v1"
MAX_LIMIT: Final = 10000

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
    """Require ``Authorization: Bearer <admin token>``."""

    async def guarded(request: Request) -> Response:
        brain: Brain = request.app.state.brain
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if (
            scheme.lower() != "bearer"
            or brain.admin is None
            or not brain.admin.verify(value.strip())
        ):
            return JSONResponse(
                {"error": "admin token missing or wrong"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except BadRequest as exc:
            return error(400, str(exc))

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
    body = await request.body()
    try:
        req = msgspec.json.decode(body, type=CommandRequest)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid command: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequest("the body must be a JSON object") from None
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
    brain: Brain = request.app.state.brain
    after = _int_param(request, "after", 0, maximum=2**62)
    limit = _int_param(request, "limit", 1000)
    events = await brain.read(lambda s: s.events_after(after, limit))
    next_after = events[-1]["position"] if events else after
    return JSONResponse({"events": events, "next_after": next_after})


async def get_agents(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    connected_only = request.query_params.get("connected") in ("1", "true")
    agents = await brain.read(lambda s: s.agents(connected_only))
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
    """The ASGI app: ``/v1/agent`` (WebSocket), ``/api/v1/...`` (admin token), ``/healthz``."""

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
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.brain = brain
    return app
