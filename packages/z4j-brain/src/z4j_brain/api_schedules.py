"""The HTTP routes of schedules, fires, the scheduler's state and the audit log.

Owns their request and response shapes. Every mutation runs as one write job: the change and
its audit row commit together, then the scheduler is woken (here directly, on other brains by
``NOTIFY``). Validation errors are 400s naming the bad value; never echoes a token.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from z4j_brain import audit as audit_log
from z4j_brain import schedules as sched
from z4j_brain.audit import Actor, AuditLog
from z4j_brain.brain import Brain
from z4j_brain.openapi import API_PREFIX
from z4j_brain.scheduler import SCHEDULES_CHANNEL, Scheduler, notify
from z4j_brain.store import Store

#: Longest an idempotency key may be.
MAX_KEY_LENGTH: Final = 200
ADMIN_ACTOR: Final = "admin"


def actor(request: Request) -> Actor:
    return Actor(ADMIN_ACTOR, request.client.host if request.client else "?")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _bad("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _bad(message: str) -> Exception:
    from z4j_brain.api import BadRequest as ApiBadRequest

    return ApiBadRequest(message)


def _audit(brain: Brain) -> AuditLog:
    assert brain.audit is not None, "the brain was not prepared"
    return brain.audit


async def _mutate(brain: Brain, job: Any) -> Response | Any:
    """Run a write job; map the schedule errors to answers."""
    try:
        return await brain.write(job)
    except sched.ScheduleInputError as exc:
        raise _bad(str(exc)) from None
    except sched.NotFound as exc:
        return _error(404, str(exc))
    except sched.Conflict as exc:
        return _error(409, str(exc))


def _changed(brain: Brain) -> None:
    brain.scheduler.schedules_changed()


async def list_schedules(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    rows = await brain.read(sched.all_rows)
    return JSONResponse({"schedules": [r.as_dict() for r in rows]})


async def create_schedule(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    data = await _body(request)
    who, log = actor(request), _audit(brain)
    if "app" not in data and isinstance(data.get("engine"), str):
        data["app"] = await _only_app(brain, data["engine"])

    def job(store: Store) -> sched.ScheduleRow:
        now = time.time()
        row = sched.create(store, data, actor=who.name, now=now)
        log.append(store, actor=who, action="schedule.create", target=row.name,
                   before=None, after=row.as_dict(), now=now)  # fmt: skip
        notify(store, SCHEDULES_CHANNEL, row.schedule_id)
        return row

    result = await _mutate(brain, job)
    if isinstance(result, Response):
        return result
    _changed(brain)
    return JSONResponse(result.as_dict(), status_code=201)


async def _only_app(brain: Brain, engine: str) -> str:
    """The app of the agents serving ``engine``, when there is exactly one."""
    agents = await brain.read(lambda s: s.agents(seen_since=time.time() - 86400))
    serving = [a for a in agents if any(e["name"] == engine for e in a["engines"])]
    apps: list[str] = sorted({a["app"] for a in serving})
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise _bad(f"no agent of engine {engine!r} has connected yet: give the app (--app)")
    raise _bad(f"several apps run {engine!r} ({', '.join(apps)}): give the app (--app)")


async def get_schedule(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    ref = request.path_params["ref"]
    try:
        row = await brain.read(lambda s: sched.get(s, ref))
    except sched.NotFound as exc:
        return _error(404, str(exc))
    item = row.as_dict()
    schedule = row.schedule()
    from datetime import datetime, timezone

    from z4j_core.scheduling import format_instant

    upcoming = schedule.slots(max(row.cursor_dt(), datetime.now(timezone.utc)), 5)
    item["next_slots"] = [format_instant(s) for s in upcoming] if row.enabled else []
    item["describe"] = schedule.describe()
    return JSONResponse(item)


async def edit_schedule(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    ref = request.path_params["ref"]
    changes = await _body(request)
    who, log = actor(request), _audit(brain)

    def job(store: Store) -> sched.ScheduleRow:
        now = time.time()
        before, after = sched.edit(store, ref, changes, actor=who.name, now=now)
        log.append(store, actor=who, action="schedule.edit", target=after.name,
                   before=before.as_dict(), after=after.as_dict(), now=now)  # fmt: skip
        notify(store, SCHEDULES_CHANNEL, after.schedule_id)
        return after

    result = await _mutate(brain, job)
    if isinstance(result, Response):
        return result
    _changed(brain)
    return JSONResponse(result.as_dict())


def _set_enabled_route(enabled: bool) -> Any:
    async def route(request: Request) -> Response:
        brain: Brain = request.app.state.brain
        ref = request.path_params["ref"]
        body = await _body(request)
        note = body.get("note") or ""
        if not isinstance(note, str):
            raise _bad("note must be a string")
        who, log = actor(request), _audit(brain)

        def job(store: Store) -> sched.ScheduleRow:
            now = time.time()
            before, after = sched.set_enabled(store, ref, enabled, note, actor=who.name, now=now)
            log.append(store, actor=who, action="schedule.resume" if enabled else "schedule.pause",
                       target=after.name, before=before.as_dict(), after=after.as_dict(),
                       now=now)  # fmt: skip
            notify(store, SCHEDULES_CHANNEL, after.schedule_id)
            return after

        result = await _mutate(brain, job)
        if isinstance(result, Response):
            return result
        _changed(brain)
        return JSONResponse(result.as_dict())

    route.__name__ = "resume_schedule" if enabled else "pause_schedule"
    return route


async def delete_schedule(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    ref = request.path_params["ref"]
    who, log = actor(request), _audit(brain)

    def job(store: Store) -> sched.ScheduleRow:
        now = time.time()
        before = sched.delete(store, ref)
        log.append(store, actor=who, action="schedule.delete", target=before.name,
                   before=before.as_dict(), after=None, now=now)  # fmt: skip
        notify(store, SCHEDULES_CHANNEL, before.schedule_id)
        return before

    result = await _mutate(brain, job)
    if isinstance(result, Response):
        return result
    _changed(brain)
    return JSONResponse({"deleted": result.as_dict()})


async def trigger_schedule(request: Request) -> Response:
    """Fire a schedule now, with its own fire id, without moving its cadence. An
    ``Idempotency-Key`` header (or ``idempotency_key`` in the body) makes a retry return the
    first trigger's fire instead of firing again."""
    brain: Brain = request.app.state.brain
    ref = request.path_params["ref"]
    body = await _body(request)
    key = request.headers.get("idempotency-key") or body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH):
        raise _bad(f"the idempotency key must be 1 to {MAX_KEY_LENGTH} characters")
    who, log = actor(request), _audit(brain)
    make = Scheduler.trigger_job(ref, time.time(), key)

    def job(store: Store) -> tuple[dict[str, Any], bool]:
        fire, created, row = make(store)
        if created:
            log.append(store, actor=who, action="schedule.trigger", target=row.name,
                       before=None, after={"fire_id": fire["fire_id"], "idempotency_key": key},
                       now=time.time())  # fmt: skip
        return fire, created

    result = await _mutate(brain, job)
    if isinstance(result, Response):
        return result
    fire, created = result
    if created:
        brain.scheduler.fires_waiting()
    return JSONResponse({"fire": fire, "created": created}, status_code=201 if created else 200)


async def schedule_history(request: Request) -> Response:
    from z4j_brain.api import _int_param

    brain: Brain = request.app.state.brain
    ref = request.path_params["ref"]
    limit = _int_param(request, "limit", 50)
    try:
        row = await brain.read(lambda s: sched.get(s, ref))
    except sched.NotFound as exc:
        return _error(404, str(exc))
    fires = await brain.read(lambda s: sched.history(s, row.schedule_id, limit))
    return JSONResponse({"schedule": row.as_dict(), "fires": fires})


async def get_fire(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    fire_id = request.path_params["fire_id"]
    fire = await brain.read(lambda s: sched.fire(s, fire_id))
    if fire is None:
        return _error(404, f"no fire {fire_id!r}")
    return JSONResponse(fire)


async def scheduler_status(request: Request) -> Response:
    """This brain's part in scheduling, and the fires by state (missed and unknown counted)."""
    brain: Brain = request.app.state.brain
    counts = await brain.read(sched.fire_counts)
    return JSONResponse({**brain.scheduler.status(), "fires": counts})


async def scheduler_applied(request: Request) -> Response:
    """Wait (up to ``timeout`` seconds) until this brain's leader acts on ``version`` of a
    schedule: measures how fast an edit takes effect. 200 with ``applied`` true or false."""
    brain: Brain = request.app.state.brain
    schedule_id = request.query_params.get("schedule_id") or ""
    try:
        version = int(request.query_params.get("version") or "0")
        timeout = min(float(request.query_params.get("timeout") or "5"), 30.0)
    except ValueError:
        raise _bad("version must be an integer and timeout a number") from None
    applied = await brain.scheduler.applied(schedule_id, version, timeout)
    return JSONResponse({"applied": applied, "leader": brain.scheduler.leading})


async def list_audit(request: Request) -> Response:
    from z4j_brain.api import _int_param

    brain: Brain = request.app.state.brain
    after = _int_param(request, "after", 0, maximum=2**62)
    limit = _int_param(request, "limit", 100)
    rows = await brain.read(lambda s: audit_log.list_rows(s, after, limit))
    return JSONResponse({"audit": rows})


async def verify_audit(request: Request) -> Response:
    brain: Brain = request.app.state.brain
    result = await brain.read(_audit(brain).verify)
    return JSONResponse(result.as_dict())


def routes(protected: Any) -> list[Route]:
    p = API_PREFIX
    return [
        Route(f"{p}/schedules", protected(list_schedules)),
        Route(f"{p}/schedules", protected(create_schedule), methods=["POST"]),
        Route(f"{p}/schedules/{{ref}}", protected(get_schedule)),
        Route(f"{p}/schedules/{{ref}}", protected(edit_schedule), methods=["PATCH"]),
        Route(f"{p}/schedules/{{ref}}", protected(delete_schedule), methods=["DELETE"]),
        Route(
            f"{p}/schedules/{{ref}}/pause", protected(_set_enabled_route(False)), methods=["POST"]
        ),
        Route(
            f"{p}/schedules/{{ref}}/resume", protected(_set_enabled_route(True)), methods=["POST"]
        ),
        Route(f"{p}/schedules/{{ref}}/trigger", protected(trigger_schedule), methods=["POST"]),
        Route(f"{p}/schedules/{{ref}}/fires", protected(schedule_history)),
        Route(f"{p}/fires/{{fire_id}}", protected(get_fire)),
        Route(f"{p}/scheduler", protected(scheduler_status)),
        Route(f"{p}/scheduler/applied", protected(scheduler_applied)),
        Route(f"{p}/audit", protected(list_audit)),
        Route(f"{p}/audit/verify", protected(verify_audit)),
    ]
