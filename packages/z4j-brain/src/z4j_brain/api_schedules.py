"""The HTTP routes of schedules, fires, the scheduler's state and the audit log.

Each route declares itself once with ``@operation`` (types in ``shapes``). Every mutation goes
through ``mutations.audited``: the change and its audit row commit together, then the scheduler
is woken (here directly, on other brains by ``NOTIFY``). Validation errors are 400s naming the
bad value; never echoes a token.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from z4j_brain import schedule_health as health
from z4j_brain import schedules as sched
from z4j_brain import shapes
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
from z4j_brain.audit import Actor
from z4j_brain.leader import trigger_job
from z4j_brain.mutations import ADMIN_ACTOR, ApiError, BadRequest, Change, actor, audited
from z4j_brain.notifications import FIRES_CHANNEL, SCHEDULES_CHANNEL
from z4j_brain.openapi import Param, operation
from z4j_brain.paging import page
from z4j_brain.store import ScheduleRow, Store
from z4j_core.scheduling import ScheduleError, format_instant, parse_instant
from z4j_core.scheduling.errors import explain

__all__ = ["ADMIN_ACTOR", "MAX_KEY_LENGTH", "Actor", "actor"]

#: Longest an idempotency key may be.
MAX_KEY_LENGTH: Final = shapes.MAX_KEY_LENGTH
#: How many upcoming slots ``GET /schedules/{ref}`` shows.
NEXT_SLOTS: Final = 5
_MISSING: Final = (shapes.Error, "No schedule with that id or name.")


async def in_scope(request: Request, ref: str) -> None:
    """404 when the schedule ``ref`` names is of an app outside the caller's scope (as if it
    did not exist: a scope hides what is outside it). A missing one is the job's 404."""
    row = await brain_of(request).read(lambda s: s.schedule(ref))
    if row is not None and not principal_of(request).sees(row.app):
        raise ApiError(404, f"no schedule named {ref!r}")


def _changed(action: str, row: ScheduleRow, before: ScheduleRow | None, after: Any) -> Change:
    return Change(
        action,
        row.name,
        None if before is None else before.as_dict(),
        after,
        wake=SCHEDULES_CHANNEL,
        payload=row.schedule_id,
    )


@operation(
    "GET",
    "/schedules",
    "The brain's schedules (native ones agents observe: see /inventory)",
    role=Role.VIEWER,
    responses={200: (shapes.ScheduleList, "Schedules, by name.")},
)
async def list_schedules(request: Request) -> Response:
    principal = principal_of(request)
    items = await brain_of(request).read(
        lambda s: with_health(s, [r for r in s.schedules() if principal.sees(r.app)])
    )
    return reply(shapes.ScheduleList, {"schedules": items})


def with_health(store: Store, rows: list[ScheduleRow]) -> list[dict[str, Any]]:
    """Each schedule as the API shows it, with its health (on a reader's store)."""
    if not rows:
        return []
    now = datetime.now(timezone.utc)
    reported = sched.reported(store)
    connected = store.agents(connected_only=True)
    items = []
    for row in rows:
        item = row.as_dict()
        item["health"] = health.health(
            row,
            store.fire_history(row.schedule_id, health.HEALTH_FIRES),
            serving=health.serving_agents(row, connected),
            problems=health.target_problems(reported, row.engine, row.app, row.task),
            now=now,
        )
        items.append(item)
    return items


@operation(
    "POST",
    "/schedules",
    "Create a schedule (audited; the leader acts on it at once)",
    body=shapes.ScheduleCreate,
    role=Role.ADMIN,
    responses={
        201: (shapes.Schedule, "Created."),
        409: (shapes.Error, "The name (or id) is taken, or the id belonged to a deleted one."),
    },
)
async def create_schedule(request: Request) -> Response:
    data = decode(await request.body(), dict[str, Any], "schedule")
    if "app" not in data and isinstance(data.get("engine"), str):
        data["app"] = await _only_app(request, data["engine"])
    if isinstance(data.get("app"), str):
        require_app(request, data["app"])
    who = principal_of(request).name

    def job(store: Store, now: float) -> tuple[ScheduleRow, Change]:
        row = sched.create(store, data, actor=who, now=now)
        return row, _changed("schedule.create", row, None, row.as_dict())

    row = await audited(request, job)
    return reply(shapes.Schedule, row.as_dict(), 201)


async def _only_app(request: Request, engine: str) -> str:
    """The app of the agents serving ``engine``, when there is exactly one."""
    agents = await brain_of(request).read(lambda s: s.agents(seen_since=time.time() - 86400))
    agents = principal_of(request).keep(agents)
    serving = [a for a in agents if any(e["name"] == engine for e in a["engines"])]
    apps: list[str] = sorted({a["app"] for a in serving})
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise BadRequest(f"no agent of engine {engine!r} has connected yet: give the app (--app)")
    raise BadRequest(f"several apps run {engine!r} ({', '.join(apps)}): give the app (--app)")


@operation(
    "GET",
    "/schedules/{ref}",
    "One schedule by id or name, with its next slots",
    role=Role.VIEWER,
    responses={200: (shapes.ScheduleView, "The schedule."), 404: _MISSING},
)
async def get_schedule(request: Request) -> Response:
    from z4j_brain.native_twins import native_twins

    ref = request.path_params["ref"]
    principal = principal_of(request)

    def read(store: Store) -> dict[str, Any] | None:
        row = store.schedule(ref)
        if row is None or not principal.sees(row.app):
            return None
        item = _with_preview(row, with_health(store, [row])[0])
        return {**item, "native_twins": native_twins(row, store.inventory())}

    item = await brain_of(request).read(read)
    if item is None:
        return error(404, f"no schedule named {ref!r}")
    return reply(shapes.ScheduleView, item)


def _with_preview(row: ScheduleRow, item: dict[str, Any]) -> dict[str, Any]:
    """The schedule (``item``) with its words and next slots. A row the core cannot read or
    compute (set aside as broken, or not yet found so) answers with its error instead of a
    500."""
    try:
        schedule = row.schedule()
        item["describe"] = schedule.describe()
        after = max(row.cursor_dt(), datetime.now(timezone.utc))
        upcoming = schedule.slots(after, NEXT_SLOTS) if row.enabled and not row.broken else []
        item["next_slots"] = [format_instant(s) for s in upcoming]
    except Exception as exc:
        item.setdefault("describe", json.dumps(row.spec))
        item["next_slots"] = []
        if not row.broken:
            item["state"] = "broken"
            item["broken"] = explain(exc)
            item["health"] = {**item["health"], "state": "broken", "note": item["broken"],
                              "next_fire": None}  # fmt: skip
    return item


@operation(
    "PATCH",
    "/schedules/{ref}",
    "Edit fields of a schedule, live (audited; a new schedule takes effect from now)",
    body=shapes.ScheduleEdit,
    role=Role.ADMIN,
    responses={
        200: (shapes.Schedule, "The schedule after the edit."),
        404: _MISSING,
        409: (shapes.Error, "The new name is taken."),
    },
)
async def edit_schedule(request: Request) -> Response:
    ref = request.path_params["ref"]
    changes = decode(await request.body(), dict[str, Any], "edit")
    await in_scope(request, ref)
    if isinstance(changes.get("app"), str):
        require_app(request, changes["app"])
    who = principal_of(request).name

    def job(store: Store, now: float) -> tuple[ScheduleRow, Change]:
        before, after = sched.edit(store, ref, changes, actor=who, now=now)
        return after, _changed("schedule.edit", after, before, after.as_dict())

    row = await audited(request, job)
    return reply(shapes.Schedule, row.as_dict())


def _set_enabled_route(enabled: bool) -> Any:
    async def route(request: Request) -> Response:
        ref = request.path_params["ref"]
        body = decode(await request.body(), shapes.PauseRequest, "note", empty_ok=True)
        await in_scope(request, ref)
        who = principal_of(request).name

        def job(store: Store, now: float) -> tuple[ScheduleRow, Change]:
            before, after = sched.set_enabled(
                store, ref, enabled, body.note or "", actor=who, now=now
            )
            action = "schedule.resume" if enabled else "schedule.pause"
            return after, _changed(action, after, before, after.as_dict())

        row = await audited(request, job)
        return reply(shapes.Schedule, row.as_dict())

    route.__name__ = "resume_schedule" if enabled else "pause_schedule"
    return route


pause_schedule = operation(
    "POST",
    "/schedules/{ref}/pause",
    "Pause a schedule, with an optional note (audited)",
    body=shapes.PauseRequest,
    body_required=False,
    role=Role.OPERATOR,
    responses={200: (shapes.Schedule, "The schedule, paused."), 404: _MISSING},
)(_set_enabled_route(False))
resume_schedule = operation(
    "POST",
    "/schedules/{ref}/resume",
    "Resume a schedule; slots that passed while paused do not fire; clears broken",
    body=shapes.PauseRequest,
    body_required=False,
    role=Role.OPERATOR,
    responses={200: (shapes.Schedule, "The schedule, resumed."), 404: _MISSING},
)(_set_enabled_route(True))


@operation(
    "DELETE",
    "/schedules/{ref}",
    "Delete a schedule (audited; its fire history stays, pending fires become missed)",
    role=Role.ADMIN,
    responses={200: (shapes.Deleted, "The schedule as it was."), 404: _MISSING},
)
async def delete_schedule(request: Request) -> Response:
    ref = request.path_params["ref"]
    await in_scope(request, ref)
    who = principal_of(request).name

    def job(store: Store, now: float) -> tuple[ScheduleRow, Change]:
        before = sched.delete(store, ref, actor=who, now=now)
        return before, _changed("schedule.delete", before, before, None)

    row = await audited(request, job)
    return reply(shapes.Deleted, {"deleted": row.as_dict()})


@operation(
    "POST",
    "/schedules/{ref}/trigger",
    "Fire a schedule now with its own fire id, cadence unchanged",
    body=shapes.TriggerRequest,
    body_required=False,
    params=(
        Param(
            "Idempotency-Key",
            "A retried request with the same key triggers this schedule once (keys are per "
            "schedule).",
            where="header",
        ),
    ),
    role=Role.OPERATOR,
    responses={
        201: (shapes.Triggered, "Triggered: the new fire, created true."),
        200: (shapes.Triggered, "Key seen before: the first fire, created false."),
        404: _MISSING,
    },
)
async def trigger_schedule(request: Request) -> Response:
    """Fire a schedule now, with its own fire id, without moving its cadence. An
    ``Idempotency-Key`` header (or ``idempotency_key`` in the body) makes a retry return the
    first trigger's fire instead of firing again."""
    ref = request.path_params["ref"]
    body = decode(await request.body(), shapes.TriggerRequest, "trigger", empty_ok=True)
    await in_scope(request, ref)
    key = request.headers.get("idempotency-key") or body.idempotency_key
    try:
        key = msgspec.convert(key, shapes.IdempotencyKey | None)
    except msgspec.ValidationError:
        raise BadRequest(f"the idempotency key must be 1 to {MAX_KEY_LENGTH} characters") from None
    make = trigger_job(ref, time.time(), key)

    def job(store: Store, now: float) -> tuple[tuple[dict[str, Any], bool], Change | None]:
        fire, created, row = make(store)
        if not created:
            return (fire, created), None
        after = {"fire_id": fire["fire_id"], "idempotency_key": key}
        return (fire, created), Change("schedule.trigger", row.name, None, after,
                                       wake=FIRES_CHANNEL)  # fmt: skip

    fire, created = await audited(request, job)
    return reply(shapes.Triggered, {"fire": fire, "created": created}, 201 if created else 200)


@operation(
    "POST",
    "/schedules/{ref}/backfill",
    "Fire every slot in a past range that has no fire yet, paced, under the live slots' fire "
    "ids (audited; a dry run lists the slots)",
    body=shapes.BackfillRequest,
    role=Role.OPERATOR,
    responses={
        200: (shapes.BackfillResult, "The range's slots and what was fired."),
        404: _MISSING,
    },
)
async def backfill_schedule(request: Request) -> Response:
    ref = request.path_params["ref"]
    await in_scope(request, ref)  # first: a schedule out of scope is not there at all
    body = decode(await request.body(), shapes.BackfillRequest, "backfill")
    try:
        start = parse_instant(body.start, "from")
        end = parse_instant(body.end, "to")
    except ScheduleError as exc:
        raise BadRequest(str(exc)) from None

    keep = brain_of(request).config.fire_retention_seconds

    def job(store: Store, now: float) -> tuple[dict[str, Any], Change | None]:
        row, plan, fired = sched.backfill(
            store, ref, start, end, dry_run=body.dry_run, now=now, fire_retention=keep
        )
        result = {"schedule": row.name, "schedule_id": row.schedule_id,
                  "dry_run": body.dry_run, "slots": plan, "fired": fired}  # fmt: skip
        if body.dry_run or not fired:
            return result, None
        after = {"from": format_instant(start), "to": format_instant(end), "fired": fired,
                 "had_fire": sum(1 for p in plan if p["had_fire"] is not None)}  # fmt: skip
        return result, Change("schedule.backfill", row.name, None, after, wake=FIRES_CHANNEL)

    result = await audited(request, job)
    return reply(shapes.BackfillResult, result)


@operation(
    "GET",
    "/schedules/{ref}/fires",
    "A schedule's fires, newest first, with each task's outcome; a deleted schedule's too, by "
    "its id or its last name",
    params=(CURSOR_PARAM, Param("limit", "At most this many (default 50).", int)),
    role=Role.VIEWER,
    responses={200: (shapes.FireHistory, "The schedule and a page of its fires."), 404: _MISSING},
)
async def schedule_history(request: Request) -> Response:
    brain = brain_of(request)
    ref = request.path_params["ref"]
    limit = int_param(request, "limit", 50)
    try:
        target = await brain.read(lambda s: sched.history_target(s, ref))
    except sched.NotFound as exc:
        return error(404, str(exc))
    if not principal_of(request).sees(str(target.get("app", ""))):
        return error(404, f"no schedule named {ref!r}, now or deleted")
    cursor = request.query_params.get("cursor")
    fires, next_cursor = page(
        "fires", await brain.read(lambda s: s.fire_history(target["id"], limit + 1, cursor)), limit
    )
    return reply(
        shapes.FireHistory, {"schedule": target, "fires": fires, "next_cursor": next_cursor}
    )


@operation(
    "GET",
    "/fires/{fire_id}",
    "One fire, with its delivery and its task's outcome",
    role=Role.VIEWER,
    responses={200: (shapes.Fire, "The fire."), 404: (shapes.Error, "No such fire.")},
)
async def get_fire(request: Request) -> Response:
    fire_id = request.path_params["fire_id"]
    fire = await brain_of(request).read(lambda s: s.fire(fire_id))
    if fire is None or not principal_of(request).sees(str(fire.get("app", ""))):
        return error(404, f"no fire {fire_id!r}")
    return reply(shapes.Fire, fire)


@operation(
    "GET",
    "/scheduler",
    "This brain's part in scheduling (leader or not) and fires by state",
    role=Role.VIEWER,
    responses={200: (shapes.SchedulerStatus, "This brain's scheduler.")},
)
async def scheduler_status(request: Request) -> Response:
    """This brain's part in scheduling, and the fires by state (missed and unknown counted) of
    the apps in the caller's scope."""
    brain = brain_of(request)
    apps = await scope_apps(request)
    counts = await brain.read(lambda s: s.fire_counts(apps))
    return reply(shapes.SchedulerStatus, {**brain.scheduler.status(), "fires": counts})


@operation(
    "GET",
    "/scheduler/applied",
    "Wait until this brain's leader acts on a schedule's version",
    params=(
        Param("schedule_id", "The schedule's id."),
        Param("version", "The version the edit returned.", int),
        Param("timeout", "Seconds to wait (default 5, max 30).", float),
    ),
    role=Role.VIEWER,
    brain_wide=True,
    responses={200: (shapes.Applied, "Whether it was applied in time.")},
)
async def scheduler_applied(request: Request) -> Response:
    """Wait (up to ``timeout`` seconds) until this brain's leader acts on ``version`` of a
    schedule: measures how fast an edit takes effect. 200 with ``applied`` true or false."""
    brain = brain_of(request)
    schedule_id = request.query_params.get("schedule_id") or ""
    try:
        version = int(request.query_params.get("version") or "0")
        timeout = min(float(request.query_params.get("timeout") or "5"), 30.0)
    except ValueError:
        raise BadRequest("version must be an integer and timeout a number") from None
    applied = await brain.scheduler.applied(schedule_id, version, timeout)
    return reply(shapes.Applied, {"applied": applied, "leader": brain.scheduler.leading})


@operation(
    "GET",
    "/audit",
    "Audit rows in order",
    params=(
        Param("after", "Sequence number to start after.", int),
        CURSOR_PARAM,
        Param("limit", "At most this many (default 100).", int),
    ),
    role=Role.VIEWER,
    brain_wide=True,
    responses={200: (shapes.AuditList, "A page of audit rows.")},
)
async def list_audit(request: Request) -> Response:
    after = int_param(request, "after", 0, maximum=2**62)
    limit = int_param(request, "limit", 100)
    cursor = request.query_params.get("cursor")
    rows, next_cursor = page(
        "audit", await brain_of(request).read(lambda s: s.audit_entries(after, limit + 1, cursor)),
        limit,
    )  # fmt: skip
    return reply(shapes.AuditList, {"audit": rows, "next_cursor": next_cursor})


@operation(
    "GET",
    "/audit/verify",
    "Check the HMAC chain: OK with the count, or the first bad row",
    role=Role.VIEWER,
    brain_wide=True,
    responses={200: (shapes.AuditVerify, "The chain's verdict.")},
)
async def verify_audit(request: Request) -> Response:
    brain = brain_of(request)
    log = brain.audit
    assert log is not None, "the brain was not prepared"
    result = await brain.read(log.verify)
    return reply(shapes.AuditVerify, result.as_dict())
