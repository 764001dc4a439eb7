"""The HTTP routes of actions (retry, cancel, purge, bulk) and queue depths; docs/actions.md.

Each route declares itself once with ``@operation`` (types and its role in ``shapes`` and
``access``: reads are viewer routes, actions operator routes, each scoped by app: a task of an
app outside the caller's scope is unknown to it, 404); each action's row and
its audit row (who, from where) commit together through ``mutations.audited``, then the action
goes to an agent that advertises it and its answer is recorded. An action that cannot be done
is answered 200 with status ``unavailable`` and the reason, like any other ending.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from z4j_brain import actions, shapes
from z4j_brain.access import Role
from z4j_brain.api import (
    CURSOR_PARAM,
    brain_of,
    decode,
    error,
    int_param,
    principal_of,
    reply,
    require_app,
    scope_apps,
)
from z4j_brain.mutations import ApiError, actor
from z4j_brain.openapi import Param, operation
from z4j_brain.paging import page
from z4j_core.wire.frames import ActionKind, LifecycleKind

_ANSWERED = (shapes.ActionResult, "The action and how it ended.")
_UNKNOWN_TASK = (shapes.Error, "The brain knows no such task and engine or app was not given.")


@operation(
    "POST",
    "/tasks/{task_id}/retry",
    "Run a finished task again with its original arguments (linked as retry_of)",
    body=shapes.RetryRequest,
    body_required=False,
    role=Role.OPERATOR,
    responses={200: _ANSWERED, 400: (shapes.Error, "Invalid request."), 404: _UNKNOWN_TASK},
)
async def post_retry(request: Request) -> Response:
    req = decode(await request.body(), shapes.RetryRequest, "retry", empty_ok=True)
    return await _single(request, ActionKind.RETRY, req, force=req.force)


@operation(
    "POST",
    "/tasks/{task_id}/cancel",
    "Cancel a queued or scheduled task (a running one with terminate)",
    body=shapes.CancelRequest,
    body_required=False,
    role=Role.OPERATOR,
    responses={200: _ANSWERED, 400: (shapes.Error, "Invalid request."), 404: _UNKNOWN_TASK},
)
async def post_cancel(request: Request) -> Response:
    req = decode(await request.body(), shapes.CancelRequest, "cancel", empty_ok=True)
    return await _single(request, ActionKind.CANCEL, req, terminate=req.terminate)


async def _single(
    request: Request,
    kind: ActionKind,
    req: shapes.RetryRequest | shapes.CancelRequest,
    **options: bool,
) -> Response:
    target = await _task_in_scope(request, req.engine, req.app)
    requested = actions.Requested(actor=actor(request), request=request)
    row = await actions.perform(
        brain_of(request), kind, target, requested, deadline=req.deadline, **options
    )
    return reply(shapes.ActionResult, row)


async def _task_in_scope(request: Request, engine: str | None, app: str | None) -> actions.Target:
    """The task a route names, 404 as if unknown when its app is outside the caller's scope."""
    task_id = request.path_params["task_id"]
    if app is not None:
        require_app(request, app)
    target = await actions.resolve_task(brain_of(request), task_id, engine, app)
    if not principal_of(request).sees(target.app):
        raise ApiError(404, f"no task {task_id!r}")
    return target


async def _bulk(request: Request, kind: ActionKind) -> Response:
    brain = brain_of(request)
    req = decode(await request.body(), shapes.BulkRequest, f"bulk {kind.value}")
    principal = principal_of(request)
    if req.app is not None:
        require_app(request, req.app)
    elif not principal.unscoped:
        return error(
            400,
            f"operator {principal.name!r} is scoped to apps {', '.join(principal.apps)}: "
            "a bulk action must name its app (app / --app)",
        )
    if kind is ActionKind.RETRY and req.terminate:
        return error(400, "terminate applies to cancel, not retry")
    if kind is ActionKind.CANCEL and req.force:
        return error(400, "force applies to retry, not cancel")
    known = [k.value for k in LifecycleKind]
    unknown = [state for state in req.states if state not in known]
    if unknown:
        return error(400, f"unknown task state {unknown[0]!r} (states: {', '.join(known)})")
    criteria = actions.BulkFilter(
        states=tuple(dict.fromkeys(req.states)),
        task=req.task,
        engine=req.engine,
        app=req.app,
        since_seconds=req.since,
    )
    summary = await actions.start_bulk(
        brain,
        kind,
        criteria,
        actor(request),
        request,
        dry_run=req.dry_run,
        force=req.force,
        terminate=req.terminate,
        per_second=req.per_second or actions.DEFAULT_BULK_PER_SECOND,
        deadline=req.deadline,
    )
    return reply(shapes.BulkResult, summary, status=200 if req.dry_run else 202)


_BULK_RESPONSES: dict[int, tuple[type | None, str]] = {
    200: (shapes.BulkResult, "Dry run: how many tasks match."),
    202: (shapes.BulkResult, "Started: follow it at /bulk/{bulk_id}."),
    400: (shapes.Error, "Invalid filter, or it matches too many tasks."),
}


@operation(
    "POST",
    "/tasks/retry",
    "Retry every task matching a filter (dry_run counts them), paced",
    body=shapes.BulkRequest,
    role=Role.OPERATOR,
    responses=_BULK_RESPONSES,
)
async def post_bulk_retry(request: Request) -> Response:
    return await _bulk(request, ActionKind.RETRY)


@operation(
    "POST",
    "/tasks/cancel",
    "Cancel every task matching a filter (dry_run counts them), paced",
    body=shapes.BulkRequest,
    role=Role.OPERATOR,
    responses=_BULK_RESPONSES,
)
async def post_bulk_cancel(request: Request) -> Response:
    return await _bulk(request, ActionKind.CANCEL)


@operation(
    "GET",
    "/bulk/{bulk_id}",
    "A bulk action: what it matched and how its actions ended so far",
    role=Role.VIEWER,
    responses={200: (shapes.BulkResult, "The bulk action."), 404: (shapes.Error, "No such.")},
)
async def get_bulk(request: Request) -> Response:
    bulk_id = request.path_params["bulk_id"]
    row = await brain_of(request).read(lambda s: s.bulk(bulk_id))
    principal = principal_of(request)
    # A bulk action of every app (no app in its filter) is seen by unscoped callers alone.
    app = row["filter"].get("app") if row is not None else None
    if row is None or not (principal.unscoped or (app is not None and principal.sees(app))):
        return error(404, f"no bulk action {bulk_id!r}")
    summary: dict[str, Any] = {
        "bulk_id": row["bulk_id"],
        "action": row["kind"],
        "filter": row["filter"],
        "matched": row["matched"],
        "dry_run": False,
        "counts": row["counts"],
        "finished": row["finished_at"] is not None,
        "requested_by": row["requested_by"],
        "requested_from": row["requested_from"],
        "requested_at": row["requested_at"],
        "finished_at": row["finished_at"],
    }
    return reply(shapes.BulkResult, summary)


@operation(
    "GET",
    "/actions",
    "Actions, newest first",
    params=(
        Param("task_id", "Only actions on this task, or that created it (a retry)."),
        Param("bulk_id", "Only the actions of this bulk action."),
        CURSOR_PARAM,
        Param("limit", "At most this many (default 100, max 10000).", int),
    ),
    role=Role.VIEWER,
    responses={200: (shapes.ActionList, "A page of actions.")},
)
async def get_actions(request: Request) -> Response:
    q = request.query_params
    limit = int_param(request, "limit", 100)
    apps = await scope_apps(request)
    rows = await brain_of(request).read(
        lambda s: s.actions(
            task_id=q.get("task_id"),
            bulk_id=q.get("bulk_id"),
            cursor=q.get("cursor"),
            limit=limit + 1,
            apps=apps,
        )
    )
    actions, next_cursor = page("actions", rows, limit)
    return reply(
        shapes.ActionList,
        {"actions": principal_of(request).keep(actions), "next_cursor": next_cursor},
    )


@operation(
    "GET",
    "/queues",
    "Each queue's depth, as the connected agents last reported it",
    params=(Param("engine", "Only this engine."), Param("app", "Only this app.")),
    role=Role.VIEWER,
    responses={200: (shapes.QueueList, "Queues by engine, app and name.")},
)
async def get_queues(request: Request) -> Response:
    q = request.query_params
    rows = await brain_of(request).read(lambda s: s.queue_depths(q.get("engine"), q.get("app")))
    return reply(shapes.QueueList, {"queues": principal_of(request).keep(rows)})


@operation(
    "POST",
    "/queues/{queue}/purge",
    "Remove the ready messages of a queue with the engine's own call",
    body=shapes.PurgeRequest,
    role=Role.OPERATOR,
    responses={200: _ANSWERED, 400: (shapes.Error, "Invalid request.")},
)
async def post_purge(request: Request) -> Response:
    brain = brain_of(request)
    req = decode(await request.body(), shapes.PurgeRequest, "purge")
    queue = urllib.parse.unquote(request.path_params["queue"])
    app = req.app
    if app is None:
        apps = principal_of(request).visible(
            await brain.read(lambda s: s.queue_apps(req.engine, queue))
        )
        if len(apps) != 1:
            return error(
                400,
                f"queue {queue!r} of {req.engine} is reported by "
                f"{'apps ' + ', '.join(apps) if apps else 'no app'}: say which with app",
            )
        app = apps[0]
    require_app(request, app)
    target = actions.Target(engine=req.engine, app=app, queue=queue)
    row = await actions.perform(
        brain,
        ActionKind.PURGE,
        target,
        actions.Requested(actor=actor(request), request=request),
        deadline=req.deadline,
    )
    return reply(shapes.ActionResult, row)
