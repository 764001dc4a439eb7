"""The brain's HTTP API (``/api/v1/...``) and the ASGI app that also serves the agents'
WebSocket.

Owns the routes of commands, tasks, events, agents, inventory and tokens, the admin-token check
on every ``/api`` route, and the few helpers every route uses: decoding a body into its
``shapes`` type (unknown fields refused), answering with a ``shapes`` type, mapping refusals to
status codes. Each route declares itself once with ``@operation`` (the app's routes and the
OpenAPI document are built from that table). Never echoes a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from z4j_brain import __version__, shapes
from z4j_brain.access import (
    OPERATOR_PREFIX,
    Principal,
    Role,
    admin_principal,
    operator_principal,
    refusal,
)
from z4j_brain.bodylimit import BodyLimit, TooLarge
from z4j_brain.brain import Brain, NoAgentError
from z4j_brain.gateway import agent_endpoint
from z4j_brain.health import liveness, readiness
from z4j_brain.logs import AccessLog
from z4j_brain.metrics import METRICS_CONTENT_TYPE
from z4j_brain.mutations import ApiError, BadRequest, Change, audited
from z4j_brain.observed import observed_schedules
from z4j_brain.openapi import (
    MUTATING,
    Handler,
    Operation,
    Param,
    openapi_document,
    operation,
    operations,
)
from z4j_brain.paging import CursorError, page
from z4j_brain.sessions import COOKIE, CSRF_HEADER, csrf_ok, same_origin, session_principal
from z4j_brain.store import Store
from z4j_brain.tokens import (
    TokenError,
    check_binding,
    check_name,
    find_token,
    hash_hex,
    token_summary,
)
from z4j_core.endpoints import (
    AGENT_PATH,
    HEALTH_LIVE_PATH,
    HEALTH_PATH,
    HEALTH_READY_PATH,
    METRICS_PATH,
    OPENAPI_PATH,
)
from z4j_core.wire.signing import new_token

log = logging.getLogger("z4j.brain.api")

T = TypeVar("T")

MAX_LIMIT: Final = 10000
#: Longest long poll ``GET /api/v1/events?wait=`` may ask for, in seconds.
MAX_WAIT_SECONDS: Final = 30
#: How often a long poll re-reads the store while it waits (other brains' batches).
POLL_SECONDS: Final = 0.25

__all__ = ["ApiError", "BadRequest", "create_app", "decode", "int_param", "reply"]


def reply(shape: type[Any], value: Any, status: int = 200) -> Response:
    """``value`` (a dict or a struct) as JSON of type ``shape``: what the document declares."""
    body = msgspec.json.encode(msgspec.convert(value, shape))
    return Response(body, status_code=status, media_type="application/json")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(shapes.Error(error=message)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def decode(body: bytes, shape: type[T], what: str, *, empty_ok: bool = False) -> T:
    """A request body as ``shape``; a body that is not one is a 400 naming the field."""
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid {what}: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequest("the body must be a JSON object") from None


def convert(value: Any, shape: type[T], what: str) -> T:
    """A decoded value as ``shape``; one that is not one is a 400 naming the field."""
    try:
        return msgspec.convert(value, shape)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid {what}: {exc}") from None


def protected(op: Operation) -> Handler:
    """The one check in front of every guarded route: refuse an address that presented too
    many bad tokens (429) before looking at its token; refuse a cross-origin mutation (403);
    find the principal (admin token, operator token or web session; 401 when none); compare its
    role and scope with what the operation declares (403); then run the handler with the
    principal on ``request.state``."""
    handler = op.handler
    mutating = op.method in MUTATING

    async def guarded(request: Request) -> Response:
        brain: Brain = request.app.state.brain
        client = request.client.host if request.client else "?"
        retry_after = brain.auth_limiter.retry_after(client)
        if retry_after is not None:
            return error(
                429,
                "too many bad tokens from this address; try again later",
                {"Retry-After": str(max(1, round(retry_after)))},
            )
        if mutating and not same_origin(request):
            log.warning("refused a cross-origin %s %s from %s", op.method, op.path, client)
            return error(403, "cross-origin request refused (its Origin is not this brain)")
        try:
            principal = await authenticate(request, brain, client, mutating=mutating)
        except ApiError as exc:
            return error(exc.status, str(exc))
        if principal is None:
            brain.auth_limiter.failed(client)
            brain.auth_refused += 1
            log.warning("refused an API call from %s: bad token or session", client)
            return error(
                401, "token or session missing, wrong, revoked or expired",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        why = refusal(principal, op.needs, op.brain_wide)
        if why is not None:
            return error(403, why)
        request.state.principal = principal
        try:
            return await handler(request)
        except ApiError as exc:
            return error(exc.status, str(exc))
        except CursorError as exc:
            return error(400, str(exc))
        except TooLarge:
            raise  # BodyLimit answers 413
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.url.path)
            return error(500, f"the brain failed to answer: {type(exc).__name__}")

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded


async def authenticate(
    request: Request, brain: Brain, client: str, *, mutating: bool
) -> Principal | None:
    """Who makes ``request``: ``Authorization: Bearer`` (the admin token, else an operator's,
    read from the store now) or the session cookie (a mutation must then echo its CSRF token).
    None when neither proves anyone."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        token = value.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if brain.admin is not None and brain.admin.verify(token):
            return admin_principal(client)
        if not token.startswith(OPERATOR_PREFIX):
            return None
        rows = await brain.read(lambda s: s.operator_rows())
        row = find_token(rows, token, time.time())
        return None if row is None else operator_principal(row, client)
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    principal = await session_principal(brain, secret, client)
    if principal is not None and mutating and not csrf_ok(secret, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, f"a session's mutating request needs its {CSRF_HEADER} header")
    return principal


def principal_of(request: Request) -> Principal:
    """The principal ``protected`` found for this request."""
    principal: Principal = request.state.principal
    return principal


async def scope_apps(request: Request) -> list[str] | None:
    """The apps the caller sees, for a store query (None: every app, no filter)."""
    principal = principal_of(request)
    if principal.unscoped:
        return None
    known = await brain_of(request).read(lambda s: s.known_apps())
    return principal.visible(known)


def require_app(request: Request, app: str, what: str = "that app") -> None:
    """403 when the caller may not touch ``app`` (named in a request's body)."""
    principal = principal_of(request)
    if not principal.sees(app):
        raise ApiError(
            403, f"app {app!r} is outside the scope of operator {principal.name!r} ({what})"
        )


def int_param(request: Request, name: str, default: int, maximum: int = MAX_LIMIT) -> int:
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


def time_param(request: Request, name: str) -> float | None:
    """An epoch-seconds query parameter (None when absent); anything else is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"query parameter {name!r} must be epoch seconds (a number >= 0)")
    return value


#: The name other modules used before ``int_param`` was public.
_int_param = int_param


def brain_of(request: Request) -> Brain:
    brain: Brain = request.app.state.brain
    return brain


# -- commands -----------------------------------------------------------------------------------


@operation(
    "POST",
    "/commands",
    "Send a command to one connected agent and wait for its answer",
    body=shapes.CommandRequest,
    role=Role.OPERATOR,
    responses={
        200: (shapes.CommandOutcome, "The agent's answer, or unknown after the deadline."),
        409: (shapes.Error, "No connected agent serves that engine, app and labels."),
    },
)
async def post_command(request: Request) -> Response:
    brain = brain_of(request)
    req = decode(await request.body(), shapes.CommandRequest, "command")
    require_app(request, req.app)
    try:
        outcome = await brain.send_command(
            kind=req.kind,
            engine=req.engine,
            app=req.app,
            task=req.task,
            args=req.args,
            kwargs=req.kwargs,
            options=req.options.to_wire(),
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
    return reply(shapes.CommandOutcome, outcome.as_dict())


@operation(
    "GET",
    "/commands/{command_id}",
    "A command and its answer",
    role=Role.VIEWER,
    responses={
        200: (shapes.CommandRecord, "The command as recorded."),
        404: (shapes.Error, "No such command."),
    },
)
async def get_command(request: Request) -> Response:
    command_id = request.path_params["command_id"]
    row = await brain_of(request).read(lambda s: s.command(command_id))
    if row is None or not principal_of(request).sees(row["app"]):
        return error(404, f"no command {command_id!r}")
    return reply(shapes.CommandRecord, row)


# -- tasks and events ---------------------------------------------------------------------------


#: The parameter every paged list route takes.
CURSOR_PARAM: Final = Param(
    "cursor", "Start after the last row of a page: that page's next_cursor, unchanged."
)


@operation(
    "GET",
    "/tasks",
    "Latest state per task, most recently updated first, a page at a time",
    params=(
        Param("state", "Only tasks in this state (e.g. failed)."),
        Param("name", "Only tasks with this name."),
        Param("engine", "Only this engine."),
        Param("app", "Only this app."),
        Param("task_id", "Only this task id."),
        Param("since", "Only tasks updated at or after this time (epoch seconds).", float),
        Param("until", "Only tasks updated before this time (epoch seconds).", float),
        CURSOR_PARAM,
        Param("limit", f"At most this many (default 100, max {MAX_LIMIT}).", int),
    ),
    role=Role.VIEWER,
    responses={200: (shapes.TaskList, "A page of tasks.")},
)
async def get_tasks(request: Request) -> Response:
    q = request.query_params
    limit = int_param(request, "limit", 100)
    since, until = time_param(request, "since"), time_param(request, "until")
    apps = await scope_apps(request)

    def query(s: Store) -> tuple[list[dict[str, Any]], str | None]:
        rows, next_cursor = page(
            "tasks",
            s.tasks(
                state=q.get("state"),
                name=q.get("name"),
                engine=q.get("engine"),
                app=q.get("app"),
                task_id=q.get("task_id"),
                since=since,
                until=until,
                cursor=q.get("cursor"),
                limit=limit + 1,
                apps=apps,
            ),
            limit,
        )
        retry_of, retried_as = s.retry_links((r["engine"], r["task_id"]) for r in rows)
        for row in rows:
            key = (row["engine"], row["task_id"])
            row["retry_of"] = retry_of.get(key)
            row["retried_as"] = retried_as.get(key, [])
        return rows, next_cursor

    tasks, next_cursor = await brain_of(request).read(query)
    return reply(shapes.TaskList, {"tasks": tasks, "next_cursor": next_cursor})


@operation(
    "GET",
    "/tasks/{task_id}/events",
    "Every stored event of one task, in order",
    params=(Param("engine", "Only this engine's task of that id."),),
    role=Role.VIEWER,
    responses={200: (shapes.EventList, "Events.")},
)
async def get_task_events(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    engine = request.query_params.get("engine")
    events = await brain_of(request).read(lambda s: s.task_events(task_id, engine))
    return reply(shapes.EventList, {"events": principal_of(request).keep(events)})


@operation(
    "GET",
    "/events",
    "Events stored after a position (paging, and following with wait)",
    params=(
        Param("after", "Position to start after (0: from the oldest).", int),
        Param("limit", f"At most this many (default 1000, max {MAX_LIMIT}).", int),
        Param(
            "wait",
            f"When none is there yet, wait up to this many seconds (max {MAX_WAIT_SECONDS}) "
            "for the first new one (long poll).",
            int,
        ),
    ),
    role=Role.VIEWER,
    responses={200: (shapes.EventPage, "A page of events.")},
)
async def get_events(request: Request) -> Response:
    """Events stored after position ``after``; with ``wait`` (seconds), waits that long for the
    first new one (a long poll: ``z4j events tail`` follows the store with it)."""
    brain = brain_of(request)
    after = int_param(request, "after", 0, maximum=2**62)
    limit = int_param(request, "limit", 1000)
    wait = int_param(request, "wait", 0, maximum=MAX_WAIT_SECONDS)
    deadline = time.monotonic() + wait
    apps = await scope_apps(request)
    while True:
        latest, events = await brain.read(lambda s: _events_page(s, after, limit, apps))
        left = deadline - time.monotonic()
        if events or left <= 0 or brain.stopping.is_set():
            break
        # Woken by a batch stored here; the timeout also catches batches stored by another
        # brain on the same Postgres database.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(brain.events_changed.wait(), min(left, POLL_SECONDS))
    if apps is not None and len(events) < limit:
        # Every event up to ``latest`` was looked at (those of other apps skipped): the next
        # page starts there, so a scoped follower does not rescan other apps' events.
        next_after = max(after, latest)
    else:
        next_after = events[-1]["position"] if events else after
    return reply(shapes.EventPage, {"events": events, "next_after": next_after, "latest": latest})


def _events_page(
    store: Store, after: int, limit: int, apps: list[str] | None
) -> tuple[int, list[dict[str, Any]]]:
    """The newest position, then the events after ``after`` up to it (positions grow in commit
    order, so nothing at or below it can appear later)."""
    latest = store.latest_position()
    return latest, store.events_after(after, limit, apps, up_to=latest)


# -- agents and inventory -----------------------------------------------------------------------


@operation(
    "GET",
    "/agents",
    "Agents connected now and recently seen",
    params=(
        Param("connected", "1: only agents connected now."),
        Param("seen_within", "Only agents connected now or seen within this many seconds.", int),
    ),
    role=Role.VIEWER,
    responses={200: (shapes.AgentList, "Agents, most recently seen first.")},
)
async def get_agents(request: Request) -> Response:
    connected_only = request.query_params.get("connected") in ("1", "true")
    within = request.query_params.get("seen_within")
    seen_since = None
    if within is not None:
        seen_since = time.time() - int_param(request, "seen_within", 0, maximum=2**31)
    agents = await brain_of(request).read(lambda s: s.agents(connected_only, seen_since))
    return reply(shapes.AgentList, {"agents": principal_of(request).keep(agents)})


@operation(
    "GET",
    "/inventory",
    "What each agent reported it knows: tasks, schedules, queues, workers",
    params=(Param("agent_instance", "Only this agent instance."),),
    role=Role.VIEWER,
    responses={200: (shapes.InventoryList, "Inventories.")},
)
async def get_inventory(request: Request) -> Response:
    agent_instance = request.query_params.get("agent_instance")
    items = await brain_of(request).read(lambda s: s.inventory(agent_instance))
    return reply(shapes.InventoryList, {"inventory": principal_of(request).keep(items)})


@operation(
    "GET",
    "/observed",
    "Native schedules the agents observe, once each per (engine, app, source, name)",
    role=Role.VIEWER,
    responses={200: (shapes.ObservedList, "By engine, app, source and name.")},
)
async def get_observed(request: Request) -> Response:
    items = await brain_of(request).read(
        lambda s: observed_schedules(s.inventory(), s.agents(), time.time())
    )
    return reply(shapes.ObservedList, {"observed": principal_of(request).keep(items)})


# -- tokens -------------------------------------------------------------------------------------


@operation(
    "GET",
    "/tokens",
    "Agent tokens (never their secrets)",
    role=Role.ADMIN,
    brain_wide=True,
    responses={200: (shapes.TokenList, "Tokens.")},
)
async def get_tokens(request: Request) -> Response:
    rows = await brain_of(request).read(lambda s: s.token_rows())
    now = time.time()
    return reply(shapes.TokenList, {"tokens": [token_summary(r, now) for r in rows]})


@operation(
    "POST",
    "/tokens",
    "Create an agent token; the answer is the only time it is shown",
    body=shapes.TokenRequest,
    role=Role.ADMIN,
    brain_wide=True,
    responses={
        201: (shapes.NewToken, "Created."),
        409: (shapes.Error, "A token of that name exists (names stay taken after revoke)."),
    },
)
async def post_token(request: Request) -> Response:
    brain = brain_of(request)
    raw = decode(await request.body(), dict[str, Any], "token request")
    try:
        if isinstance(raw.get("name"), str):
            check_name(raw["name"])  # the name's own message, before the type's
    except TokenError as exc:
        raise BadRequest(str(exc)) from None
    req = convert(raw, shapes.TokenRequest, "token request")
    try:
        check_binding(req.app, req.engine)
    except TokenError as exc:
        raise BadRequest(str(exc)) from None
    token = new_token()
    now = time.time()
    expires_at = now + req.expires_in if req.expires_in is not None else None

    def create(store: Store, now: float) -> tuple[None, Change]:
        store.create_token(
            req.name, hash_hex(token), req.labels, now, expires_at, app=req.app, engine=req.engine
        )
        after = {
            "name": req.name,
            "labels": req.labels,
            "expires_at": expires_at,
            "app": req.app,
            "engine": req.engine,
        }
        return None, Change("token.create", req.name, None, after)

    await audited(request, create, now=now)
    await brain.tokens.refresh()
    rows = await brain.read(lambda s: s.token_rows())
    (row,) = [r for r in rows if r.name == req.name]
    return reply(shapes.NewToken, {**token_summary(row, now), "token": token}, 201)


@operation(
    "DELETE",
    "/tokens/{name}",
    "Revoke a token; agents using it are cut off within a second",
    role=Role.ADMIN,
    brain_wide=True,
    responses={
        200: (shapes.Token, "The token, revoked."),
        404: (shapes.Error, "No token of that name."),
    },
)
async def delete_token(request: Request) -> Response:
    """Revoke a token: its agents are cut off within a second (the name stays taken)."""
    brain = brain_of(request)
    name = request.path_params["name"]

    def revoke(store: Store, now: float) -> tuple[None, Change]:
        if not store.revoke_token(name, now):
            raise ApiError(404, f"no token named {name!r}")
        return None, Change("token.revoke", name, None, {"revoked_at": now})

    await audited(request, revoke)
    await brain.tokens.refresh()
    brain.tokens.cut_off_unusable()
    rows = await brain.read(lambda s: s.token_rows())
    (row,) = [r for r in rows if r.name == name]
    return reply(shapes.Token, token_summary(row, time.time()))


# -- open routes --------------------------------------------------------------------------------

_DOCUMENT: dict[str, Any] = {}


@operation(
    "GET",
    OPENAPI_PATH,
    "This document",
    guarded=False,
    responses={200: (dict[str, Any], "The OpenAPI 3.1 document.")},
)
async def get_openapi(request: Request) -> Response:
    if not _DOCUMENT:
        _DOCUMENT.update(openapi_document(__version__))
    return reply(dict[str, Any], _DOCUMENT)


@operation(
    "GET",
    HEALTH_LIVE_PATH,
    "Liveness: the process answers (with its version and connected agents)",
    guarded=False,
    responses={200: (shapes.Health, "Alive.")},
)
async def health_live(request: Request) -> Response:
    return reply(shapes.Health, liveness(brain_of(request)))


@operation(
    "GET",
    HEALTH_PATH,
    "Liveness, under its older name (the same answer as /health/live)",
    guarded=False,
    responses={200: (shapes.Health, "Alive.")},
)
async def healthz(request: Request) -> Response:
    return reply(shapes.Health, liveness(brain_of(request)))


@operation(
    "GET",
    HEALTH_READY_PATH,
    "Readiness: store reachable and writable, schema current, a scheduler leader known",
    guarded=False,
    responses={
        200: (shapes.Ready, "Ready: every check passed."),
        503: (shapes.Ready, "Not ready: ``problems`` says which check failed and why."),
    },
)
async def health_ready(request: Request) -> Response:
    status, body = await readiness(brain_of(request))
    return reply(shapes.Ready, body, status)


@operation(
    "GET",
    METRICS_PATH,
    "Figures in the Prometheus text format",
    guarded=False,
    responses={200: (None, "Prometheus text format 0.0.4")},
    text=(200, "text/plain"),
)
async def get_metrics(request: Request) -> Response:
    brain = brain_of(request)
    dropped, broken = await brain.read(lambda s: (s.dropped_events_total(), s.broken_count()))
    brain.metrics.refresh(dropped, broken)
    return Response(brain.metrics.render(), media_type=METRICS_CONTENT_TYPE)


# The schedule, scheduler, audit, operator, session and action routes declare themselves when
# imported.
from z4j_brain import api_access, api_actions, api_schedules  # noqa: E402, F401


def create_app(brain: Brain) -> Starlette:
    """The ASGI app: ``/v1/agent`` (WebSocket), every declared operation (``/api/v1/...``
    behind the admin token; ``/health/...``, ``/healthz``, ``/metrics`` and the OpenAPI
    document open: they hold no secrets), the web console at ``/`` (``z4j_brain.console``,
    behind a session); the access log around them when configured."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await brain.start()
        try:
            yield
        finally:
            await brain.stop()

    from z4j_brain import console  # imports this module: loaded once the routes are declared

    routes: list[Any] = [WebSocketRoute(AGENT_PATH, agent_endpoint)]
    for op in operations():
        handler = protected(op) if op.guarded else op.handler
        routes.append(Route(op.path, handler, methods=[op.method]))
    routes.extend(console.routes())
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(console.SecurityHeaders)
    app.add_middleware(BodyLimit)
    if brain.config.access_log:
        app.add_middleware(AccessLog)
    app.state.brain = brain
    return app
