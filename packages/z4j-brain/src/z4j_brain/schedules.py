"""What a schedule may be, and the changes an operator makes to one: create, edit, pause,
resume, delete, and the history of a schedule that may since have been deleted.

Owns the validation of a schedule request (the types are ``z4j_brain.shapes``' ``ScheduleCreate``
and ``ScheduleEdit``, decoded by msgspec like every request; the schedule itself by the core's
``schedule_from_dict``) and the rules between schedules (names and ids unique, ids never reused).
Every SQL statement is the store's (``z4j_brain.store``); the schedule math is the core's.
Functions take a ``Store`` and never commit: the caller's transaction wraps them, so a change and
its audit row commit together.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final, TypeVar

import msgspec

from z4j_brain.schedule_health import Reported, refusal, target_problems
from z4j_brain.shapes import (
    CREATABLE,
    EDIT_QUALIFIERS,
    EDITABLE,
    SCHEDULE_NAME_PATTERN,
    ScheduleCreate,
    ScheduleEdit,
)
from z4j_brain.store import NewFire, ScheduleRow, Store
from z4j_brain.store.schedules import (
    DELIVERING,
    DUPLICATE,
    ENQUEUED,
    FAILED,
    FIRE_STATES,
    MAX_BROKEN_LENGTH,
    MISSED,
    OPEN_STATES,
    OVERLAP_CANCEL_PREVIOUS,
    PENDING,
    REJECTED,
    UNKNOWN,
)
from z4j_core.scheduling import (
    OneShotSchedule,
    Schedule,
    ScheduleError,
    backfill_slots,
    check_fires_within,
    check_schedule_id,
    fire_id,
    format_instant,
    schedule_from_dict,
)

__all__ = [
    "DELIVERING", "DUPLICATE", "ENQUEUED", "FAILED", "FIRE_STATES", "MAX_BROKEN_LENGTH",
    "MISSED", "OPEN_STATES", "PENDING", "REJECTED", "UNKNOWN", "Conflict", "NewFire",
    "NotFound", "ScheduleInputError", "ScheduleRow", "create", "delete", "edit", "get",
    "history_target", "insert_fires", "set_enabled",
]  # fmt: skip

NAME_PATTERN: Final = re.compile(SCHEDULE_NAME_PATTERN)
_UTC = timezone.utc
#: Least time a fire may wait for an agent, whatever its misfire grace.
MIN_DELIVERY_SECONDS: Final = 10.0
#: A backfill's fires go out this far apart, oldest first: a long range never floods the
#: engine's workers, and live slots keep going out on time between them.
BACKFILL_PACE_SECONDS: Final = 0.2
R = TypeVar("R")


class ScheduleInputError(ValueError):
    """A schedule request is invalid; the message names the bad value."""


class NotFound(LookupError):
    """No schedule has that id or name."""


class Conflict(Exception):
    """A name or id is taken (names are unique, and no name is another schedule's id)."""


def new_schedule_id() -> str:
    return secrets.token_hex(6)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ScheduleInputError(
            f"schedule name {name!r} must be 1 to 120 characters of letters, digits, "
            "'_', '.', ':' and '-', starting with a letter or digit"
        )
    return name


def parse_spec(data: object) -> Schedule:
    if not isinstance(data, Mapping):
        raise ScheduleInputError('schedule must be an object, e.g. {"kind": "cron", ...}')
    try:
        return schedule_from_dict(data)
    except ScheduleError as exc:
        raise ScheduleInputError(str(exc)) from None


def check_timing(schedule: Schedule, now: float, allow_past: bool) -> datetime | None:
    """Refuse a schedule that would never fire from ``now``; returns the slot of a past
    one-shot that ``allow_past`` lets fire at once (else None)."""
    instant = datetime.fromtimestamp(now, _UTC)
    if isinstance(schedule, OneShotSchedule) and schedule.at.astimezone(_UTC) <= instant:
        if not allow_past:
            raise ScheduleInputError(
                f"at {format_instant(schedule.at)} is in the past: give a later instant, or "
                "allow_past (--allow-past) to fire it once now"
            )
        return schedule.at.astimezone(_UTC)
    try:
        check_fires_within(schedule, instant)
    except ScheduleError as exc:
        raise ScheduleInputError(str(exc)) from None
    return None


def _convert(data: Mapping[str, Any], shape: type[R]) -> R:
    try:
        return msgspec.convert(dict(data), shape)
    except msgspec.ValidationError as exc:
        raise ScheduleInputError(f"invalid schedule: {exc}") from None


def reported(store: Store) -> Reported:
    """What every agent reported (engines, and tasks by engine and app), for the checks."""
    return Reported.from_store(store.inventory(), store.agents())


def check_target(store: Store, engine: str, app: str, task: str, force: bool) -> None:
    """Refuse an engine, app or task the agents did not report (with a did-you-mean), unless
    ``force``: the schedule's health then says why it may not run."""
    if force:
        return
    problems = target_problems(reported(store), engine, app, task)
    if problems:
        raise ScheduleInputError(refusal(problems[0]))


def check_overlap(store: Store, overlap: object, engine: str, app: str, force: bool) -> None:
    """``cancel-previous`` needs an agent of the schedule's engine and app (connected or known)
    that advertises ``cancel``; refused without one unless ``force``."""
    if overlap != OVERLAP_CANCEL_PREVIOUS or force:
        return
    for agent in store.agents():
        if agent["app"] != app:
            continue
        for info in agent["engines"]:
            if info["name"] == engine and "cancel" in info.get("actions", ()):
                return
    raise ScheduleInputError(
        f"overlap 'cancel-previous' needs an agent of {engine}/{app} that can cancel a task, "
        "and none has advertised 'cancel': use 'skip' or 'buffer-one', or force it (--force) "
        "if such agents are not deployed yet"
    )


def get(store: Store, ref: str) -> ScheduleRow:
    """By id, else by name; ``NotFound`` when neither."""
    row = store.schedule(ref)
    if row is None:
        raise NotFound(f"no schedule named {ref!r}")
    return row


def insert_fires(
    store: Store, row: ScheduleRow, fires: list[NewFire], now: float, key: str | None = None
) -> int:
    """``store.insert_fires`` (kept for tests that wrote fires through this module)."""
    return store.insert_fires(row, fires, now, key)


def _name_free(store: Store, name: str, schedule_id: str | None = None) -> None:
    """A name is free when no other schedule has it as its name or its id (live or deleted):
    a reference then always means one schedule."""
    owner = store.schedule_id_of_name(name)
    if owner is not None and owner != schedule_id:
        raise Conflict(f"a schedule named {name!r} already exists")
    if name != schedule_id and store.schedule_id_use(name) is not None:
        raise Conflict(f"{name!r} is the id of another schedule: choose another name")


def _id_free(store: Store, schedule_id: str) -> None:
    """An id is never reused (fire ids carry it), nor equal to another schedule's name."""
    use = store.schedule_id_use(schedule_id)
    if use == "live":
        raise Conflict(f"a schedule with id {schedule_id!r} already exists")
    if use == "deleted":
        raise Conflict(
            f"id {schedule_id!r} belonged to a deleted schedule (its fires keep it): ids are "
            "never reused; choose another"
        )
    if store.schedule_id_of_name(schedule_id) is not None:
        raise Conflict(f"{schedule_id!r} is the name of another schedule: choose another id")


def create(
    store: Store, data: ScheduleCreate | Mapping[str, Any], *, actor: str, now: float
) -> ScheduleRow:
    """Validate and insert a schedule; its cursor starts at ``now`` (no slot before fires).

    Refused: a schedule that fires at no instant within the core's horizon, and a one-shot in
    the past unless ``allow_past`` (then its one fire is written now, with the schedule)."""
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(CREATABLE))
        if unknown:
            raise ScheduleInputError(
                f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(CREATABLE))})"
            )
        for key in ("name", "task", "engine", "schedule", "app"):
            if data.get(key) is None:
                raise ScheduleInputError(f"a schedule needs {key!r}")
        check_name(data["name"])
        req = _convert(data, ScheduleCreate)
    else:
        req = data
    if req.app is None:
        raise ScheduleInputError("a schedule needs 'app'")
    schedule = parse_spec(req.schedule)
    past_slot = check_timing(schedule, now, req.allow_past)
    if past_slot is not None and not req.enabled:
        raise ScheduleInputError(
            "allow_past fires the one-shot at once: it cannot be created paused"
        )
    schedule_id = req.id or new_schedule_id()
    try:
        check_schedule_id(schedule_id)
    except ScheduleError as exc:
        raise ScheduleInputError(str(exc)) from None
    _name_free(store, req.name, schedule_id)
    _id_free(store, schedule_id)
    check_overlap(store, req.overlap, req.engine, req.app, req.force)
    check_target(store, req.engine, req.app, req.task, req.force)
    store.insert_schedule(
        schedule_id=schedule_id,
        name=req.name,
        task=req.task,
        engine=req.engine,
        app=req.app,
        labels=req.labels,
        args=req.args,
        kwargs=req.kwargs,
        options={k: v for k, v in req.options.given().items() if v is not None},
        spec=schedule.to_dict(),
        enabled=req.enabled,
        description=req.description,
        actor=actor,
        now=now,
        overlap=req.overlap,
        pause_after_failures=req.pause_after_failures,
        result_log=req.result_log,
    )
    row = get(store, schedule_id)
    if past_slot is not None and req.enabled:
        _fire_past_slot(store, row, schedule, past_slot, now)
        row = get(store, schedule_id)
    return row


def _fire_past_slot(
    store: Store, row: ScheduleRow, schedule: Schedule, slot: datetime, now: float
) -> None:
    """A one-shot created (or moved) into the past with ``allow_past``: its one fire now. Its
    id is the slot's, as the leader would write it, so it can never fire a second time."""
    grace = max(schedule.misfire_grace.total_seconds(), MIN_DELIVERY_SECONDS)
    fire = NewFire(
        fire_id=fire_id(row.schedule_id, slot),
        schedule_id=row.schedule_id,
        kind="catch_up",
        slot=slot.timestamp(),
        due_at=now,
        deliver_by=now + grace,
    )
    store.insert_fires(row, [fire], now)
    store.advance_cursor(row.schedule_id, max(slot.timestamp(), row.cursor), None)


def edit(
    store: Store, ref: str, changes: ScheduleEdit | Mapping[str, Any], *, actor: str, now: float
) -> tuple[ScheduleRow, ScheduleRow]:
    """Apply ``changes`` (any of the editable fields); returns (before, after).

    A new schedule spec takes effect from ``now``: the cursor moves up to ``now``, so no slot
    that lay before the edit fires (as on resume), and slots settled never fire again. Any
    edit clears ``broken``: the leader tries the schedule again."""
    if isinstance(changes, Mapping):
        unknown = sorted(set(changes) - {*EDITABLE, *EDIT_QUALIFIERS})
        if unknown:
            raise ScheduleInputError(
                f"cannot edit {unknown[0]!r} (editable: {', '.join(sorted(EDITABLE))}; "
                "pause and resume have their own commands)"
            )
        if "name" in changes:
            check_name(changes["name"])
        req = _convert(changes, ScheduleEdit)
    else:
        req = changes
    given = {k: v for k, v in msgspec.structs.asdict(req).items() if v is not msgspec.UNSET}
    for qualifier in EDIT_QUALIFIERS:
        given.pop(qualifier)
    if not given:
        raise ScheduleInputError("nothing to change")
    before = get(store, ref)
    if req.name is not msgspec.UNSET:
        _name_free(store, req.name, before.schedule_id)
    target = (given.get("engine", before.engine), given.get("app", before.app),
              given.get("task", before.task))  # fmt: skip
    if "overlap" in given or target[:2] != (before.engine, before.app):
        check_overlap(store, given.get("overlap", before.overlap), *target[:2], req.force)
    if target != (before.engine, before.app, before.task):
        check_target(store, *target, req.force)
    fields: dict[str, Any] = {k: v for k, v in given.items() if k not in ("options", "schedule")}
    if not isinstance(req.options, msgspec.UnsetType):
        merged = {**before.options, **req.options.given()}
        fields["options"] = {k: v for k, v in merged.items() if v is not None}
    cursor_at_least = None
    past_slot = None
    schedule: Schedule | None = None
    if not isinstance(req.schedule, msgspec.UnsetType):
        schedule = parse_spec(req.schedule)
        if schedule.to_dict() != before.spec:
            # A new timing takes effect from now; the same spec sent back (a client that
            # round-trips the whole object) changes nothing, backlog included.
            past_slot = check_timing(schedule, now, req.allow_past)
            if past_slot is not None and not before.enabled:
                raise ScheduleInputError(
                    "allow_past fires the one-shot at once, and this schedule is paused: "
                    "resume it first"
                )
            fields["spec"] = schedule.to_dict()
            cursor_at_least = now
    store.update_schedule(
        before.schedule_id, fields, cursor_at_least=cursor_at_least, actor=actor, now=now
    )
    after = get(store, before.schedule_id)
    if past_slot is not None and schedule is not None and after.enabled:
        _fire_past_slot(store, after, schedule, past_slot, now)
        after = get(store, before.schedule_id)
    return before, after


def set_enabled(
    store: Store, ref: str, enabled: bool, note: str, *, actor: str, now: float
) -> tuple[ScheduleRow, ScheduleRow]:
    """Pause (with a note) or resume. Resuming moves the cursor to ``now``: slots that passed
    while paused do not fire; it also clears ``broken`` (the leader tries the schedule again)."""
    before = get(store, ref)
    if enabled:
        store.resume_schedule(before.schedule_id, actor=actor, now=now)
    else:
        store.pause_schedule(before.schedule_id, note, actor=actor, now=now)
    return before, get(store, before.schedule_id)


def delete(store: Store, ref: str, *, actor: str, now: float) -> ScheduleRow:
    """Remove a schedule; its fires stay (history, by its id or its last name), pending ones
    are never delivered, and its id is never given to another schedule."""
    before = get(store, ref)
    store.delete_schedule(before, actor=actor, now=now)
    return before


def history_target(store: Store, ref: str) -> dict[str, Any]:
    """The schedule whose history ``ref`` asks for: a live one by id or name, else a deleted
    one by its id or its last name (the newest deletion), as it was, with ``deleted_at``."""
    row = store.schedule(ref)
    if row is not None:
        return {**row.as_dict(), "deleted_at": None}
    deleted = store.deleted_schedule(ref)
    if deleted is None:
        raise NotFound(f"no schedule named {ref!r}, now or deleted")
    return deleted


def backfill(
    store: Store,
    ref: str,
    start: datetime,
    end: datetime,
    *,
    dry_run: bool,
    now: float,
    fire_retention: float | None = None,
) -> tuple[ScheduleRow, list[dict[str, Any]], int]:
    """Fire every slot of a schedule in [start, end] that has no fire yet, each under the fire
    id a live slot gets (so a backfill run twice, or racing the live leader, never fires a slot
    twice), paced ``BACKFILL_PACE_SECONDS`` apart. Returns the schedule, each slot in the range
    (``slot``, ``fire_id``, ``had_fire``: the state of the fire it already had, or None) and
    how many fires were written (0 for a dry run). Slots after ``now`` are the live leader's:
    refused, and so are slots older than ``fire_retention`` seconds (their fires may be
    purged: the brain can no longer tell whether they fired). The overlap policy does not
    apply: a backfill is asked for, slot by slot."""
    row = get(store, ref)
    if end.timestamp() > now:
        raise ScheduleInputError(
            f"--to {format_instant(end)} is after now: slots from now on are the live "
            "leader's; give --to at most now"
        )
    if fire_retention is not None and start.timestamp() < now - fire_retention:
        earliest = datetime.fromtimestamp(math.ceil(now - fire_retention), timezone.utc)
        raise ScheduleInputError(
            f"--from {format_instant(start)} is older than the fire retention "
            f"({fire_retention / 86400:g} days, store.fire_retention_days): fires before then "
            "are purged, so the brain cannot tell whether those slots fired; give --from "
            f"{format_instant(earliest)} or later"
        )
    try:
        schedule = row.schedule()
        slots = backfill_slots(schedule, start, end)
    except ScheduleError as exc:
        raise ScheduleInputError(str(exc)) from None
    ids = [fire_id(row.schedule_id, slot) for slot in slots]
    had = store.fire_states(ids)
    plan: list[dict[str, Any]] = [
        {"slot": slot.timestamp(), "fire_id": fid, "had_fire": had.get(fid)}
        for slot, fid in zip(slots, ids, strict=True)
    ]
    if dry_run:
        return row, plan, 0
    grace = max(schedule.misfire_grace.total_seconds(), MIN_DELIVERY_SECONDS)
    fires = []
    todo = [(slot, fid) for slot, fid in zip(slots, ids, strict=True) if fid not in had]
    for n, (slot, fid) in enumerate(todo):
        turn = now + n * BACKFILL_PACE_SECONDS
        fires.append(NewFire(fire_id=fid, schedule_id=row.schedule_id, kind="backfill",
                             slot=slot.timestamp(), due_at=turn, deliver_by=turn + grace,
                             claim_order=turn))  # fmt: skip
    return row, plan, store.insert_fires(row, fires, now)
