"""Schedules and fires in the store: validating a schedule, its rows, and every SQL statement
about schedules and fires (creating, editing, the leader's fire writes, delivery claims,
history).

Owns the shape of a schedule as the API takes and returns it, and the fire states. The schedule
math is the core's (``z4j_core.scheduling``): never computed here. Functions take a ``Store``
and never commit: the caller's transaction (the writer's, or the leader's) wraps them, so a
change and its audit row, or fires and the cursor they settle, commit together.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from z4j_brain.store import Store
from z4j_core.scheduling import Schedule, ScheduleError, check_schedule_id, schedule_from_dict

#: A fire waiting for an agent (none connected yet, or re-offerable).
PENDING: Final = "pending"
#: Sent to one agent (``agent_instance``), no answer yet.
DELIVERING: Final = "delivering"
ENQUEUED: Final = "enqueued"
DUPLICATE: Final = "duplicate"
REJECTED: Final = "rejected"
FAILED: Final = "failed"
#: No answer by the fire's deadline, and it could not be re-offered without risking a second run.
UNKNOWN: Final = "unknown"
#: No suitable agent took it before its misfire grace ran out.
MISSED: Final = "missed"
OPEN_STATES: Final = (PENDING, DELIVERING)
FIRE_STATES: Final = (
    PENDING,
    DELIVERING,
    ENQUEUED,
    DUPLICATE,
    REJECTED,
    FAILED,
    UNKNOWN,
    MISSED,
)

NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,119}$")
_UTC = timezone.utc
_OPTION_KEYS: Final = ("queue", "priority", "expires_seconds")
_EDITABLE: Final = (
    "name",
    "task",
    "engine",
    "app",
    "labels",
    "args",
    "kwargs",
    "options",
    "schedule",
    "description",
)


class ScheduleInputError(ValueError):
    """A schedule request is invalid; the message names the bad value."""


class NotFound(LookupError):
    """No schedule has that id or name."""


class Conflict(Exception):
    """A name is taken (names are unique)."""


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


def _check_fields(data: Mapping[str, Any]) -> None:
    for key in ("task", "engine", "app"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise ScheduleInputError(f"{key} must be a non-empty string, got {data[key]!r}")
    if "labels" in data and not (
        isinstance(data["labels"], dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in data["labels"].items())
    ):
        raise ScheduleInputError(f"labels must map strings to strings, got {data['labels']!r}")
    if "args" in data and not isinstance(data["args"], list):
        raise ScheduleInputError(f"args must be a JSON list, got {data['args']!r}")
    if "kwargs" in data and not isinstance(data["kwargs"], dict):
        raise ScheduleInputError(f"kwargs must be a JSON object, got {data['kwargs']!r}")
    if "description" in data and not isinstance(data["description"], str):
        raise ScheduleInputError("description must be a string")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ScheduleInputError(f"options must be an object, got {options!r}")
    for key, value in options.items():
        if key not in _OPTION_KEYS:
            raise ScheduleInputError(f"unknown option {key!r} (options: {', '.join(_OPTION_KEYS)})")
        if key == "queue" and value is not None and not isinstance(value, str):
            raise ScheduleInputError(f"queue must be a string, got {value!r}")
        if (
            key == "priority"
            and value is not None
            and (not isinstance(value, int) or isinstance(value, bool))
        ):
            raise ScheduleInputError(f"priority must be an integer, got {value!r}")
        if (
            key == "expires_seconds"
            and value is not None
            and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0)
        ):
            raise ScheduleInputError(f"expires_seconds must be a positive number, got {value!r}")
    for key in ("args", "kwargs"):
        if key in data:
            try:
                json.dumps(data[key])
            except (TypeError, ValueError):
                raise ScheduleInputError(f"{key} must be plain JSON") from None


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule as stored (JSON columns decoded)."""

    schedule_id: str
    name: str
    task: str
    engine: str
    app: str
    labels: dict[str, str]
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    spec: dict[str, Any]
    enabled: bool
    pause_note: str
    description: str
    cursor: float
    skipped_through: float | None
    version: int
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str

    @classmethod
    def from_db(cls, row: Any) -> ScheduleRow:
        return cls(
            schedule_id=row["schedule_id"],
            name=row["name"],
            task=row["task"],
            engine=row["engine"],
            app=row["app"],
            labels=json.loads(row["labels"]),
            args=json.loads(row["args"]),
            kwargs=json.loads(row["kwargs"]),
            options=json.loads(row["options"]),
            spec=json.loads(row["spec"]),
            enabled=bool(row["enabled"]),
            pause_note=row["pause_note"],
            description=row["description"],
            cursor=float(row["cursor"]),
            skipped_through=row["skipped_through"],
            version=int(row["version"]),
            created_at=float(row["created_at"]),
            created_by=row["created_by"],
            updated_at=float(row["updated_at"]),
            updated_by=row["updated_by"],
        )

    def schedule(self) -> Schedule:
        return schedule_from_dict(self.spec)

    def cursor_dt(self) -> datetime:
        return datetime.fromtimestamp(self.cursor, _UTC)

    def as_dict(self) -> dict[str, Any]:
        """The API's shape (the audit log's before/after too)."""
        return {
            "id": self.schedule_id,
            "name": self.name,
            "task": self.task,
            "engine": self.engine,
            "app": self.app,
            "labels": self.labels,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "schedule": self.spec,
            "enabled": self.enabled,
            "pause_note": self.pause_note,
            "description": self.description,
            "cursor": self.cursor,
            "skipped_through": self.skipped_through,
            "version": self.version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


_SCHEDULE_COLUMNS: Final = (
    "schedule_id, name, task, engine, app, labels, args, kwargs, options, spec, enabled, "
    "pause_note, description, cursor, skipped_through, version, created_at, created_by, "
    "updated_at, updated_by"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def get(store: Store, ref: str) -> ScheduleRow:
    """By id, else by name."""
    row = store.conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (ref,)
    ).fetchone()
    if row is None:
        row = store.conn.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE name = ?", (ref,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no schedule named {ref!r}")
    return ScheduleRow.from_db(row)


def all_rows(store: Store, enabled_only: bool = False) -> list[ScheduleRow]:
    where = " WHERE enabled = 1" if enabled_only else ""
    rows = store.conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM schedules{where} ORDER BY name"
    ).fetchall()
    return [ScheduleRow.from_db(r) for r in rows]


def versions(store: Store) -> dict[str, int]:
    """Every schedule's id and version: what a leader diffs against what it holds."""
    rows = store.conn.execute("SELECT schedule_id, version FROM schedules").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def rows_by_id(store: Store, ids: Sequence[str]) -> list[ScheduleRow]:
    result: list[ScheduleRow] = []
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ", ".join("?" * len(chunk))
        rows = store.conn.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id IN ({marks})", chunk
        ).fetchall()
        result.extend(ScheduleRow.from_db(r) for r in rows)
    return result


def _name_free(store: Store, name: str, schedule_id: str | None = None) -> None:
    row = store.conn.execute("SELECT schedule_id FROM schedules WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] != schedule_id:
        raise Conflict(f"a schedule named {name!r} already exists")


def create(store: Store, data: Mapping[str, Any], *, actor: str, now: float) -> ScheduleRow:
    """Validate and insert a schedule; its cursor starts at ``now`` (no slot before fires)."""
    unknown = sorted(set(data) - {*_EDITABLE, "id", "enabled"})
    if unknown:
        raise ScheduleInputError(
            f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_EDITABLE))}, id, enabled)"
        )
    for key in ("name", "task", "engine", "schedule"):
        if data.get(key) is None:
            raise ScheduleInputError(f"a schedule needs {key!r}")
    if data.get("app") is None:
        raise ScheduleInputError("a schedule needs 'app'")
    name = check_name(data["name"])
    _check_fields(data)
    schedule = parse_spec(data["schedule"])
    schedule_id = data.get("id") or new_schedule_id()
    try:
        check_schedule_id(schedule_id)
    except ScheduleError as exc:
        raise ScheduleInputError(str(exc)) from None
    _name_free(store, name)
    if store.conn.execute(
        "SELECT 1 FROM schedules WHERE schedule_id = ?", (schedule_id,)
    ).fetchone():
        raise Conflict(f"a schedule with id {schedule_id!r} already exists")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ScheduleInputError(f"enabled must be true or false, got {enabled!r}")
    options = {k: v for k, v in (data.get("options") or {}).items() if v is not None}
    store.conn.execute(
        f"INSERT INTO schedules ({_SCHEDULE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, NULL, 1, ?, ?, ?, ?)",
        (
            schedule_id,
            name,
            data["task"],
            data["engine"],
            data["app"],
            _dumps(data.get("labels") or {}),
            _dumps(data.get("args") or []),
            _dumps(data.get("kwargs") or {}),
            _dumps(options),
            _dumps(schedule.to_dict()),
            1 if enabled else 0,
            data.get("description") or "",
            now,
            now,
            actor,
            now,
            actor,
        ),
    )
    return get(store, schedule_id)


def edit(
    store: Store, ref: str, changes: Mapping[str, Any], *, actor: str, now: float
) -> tuple[ScheduleRow, ScheduleRow]:
    """Apply ``changes`` (any of the editable fields); returns (before, after). A new schedule
    spec keeps the cursor: slots already settled never fire again."""
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise ScheduleInputError(
            f"cannot edit {unknown[0]!r} (editable: {', '.join(sorted(_EDITABLE))}; "
            "pause and resume have their own commands)"
        )
    if not changes:
        raise ScheduleInputError("nothing to change")
    before = get(store, ref)
    _check_fields(changes)
    sets: list[str] = []
    params: list[Any] = []
    if "name" in changes:
        check_name(changes["name"])
        _name_free(store, changes["name"], before.schedule_id)
    for key in ("name", "task", "engine", "app", "description"):
        if key in changes:
            sets.append(f"{key} = ?")
            params.append(changes[key])
    for key in ("labels", "args", "kwargs"):
        if key in changes:
            sets.append(f"{key} = ?")
            params.append(_dumps(changes[key]))
    if "options" in changes:
        merged = {**before.options, **changes["options"]}
        sets.append("options = ?")
        params.append(_dumps({k: v for k, v in merged.items() if v is not None}))
    if "schedule" in changes:
        sets.append("spec = ?")
        params.append(_dumps(parse_spec(changes["schedule"]).to_dict()))
    sets += ["version = version + 1", "updated_at = ?", "updated_by = ?"]
    params += [now, actor, before.schedule_id]
    store.conn.execute(f"UPDATE schedules SET {', '.join(sets)} WHERE schedule_id = ?", params)
    return before, get(store, before.schedule_id)


def set_enabled(
    store: Store, ref: str, enabled: bool, note: str, *, actor: str, now: float
) -> tuple[ScheduleRow, ScheduleRow]:
    """Pause (with a note) or resume. Resuming moves the cursor to ``now``: slots that passed
    while paused do not fire."""
    before = get(store, ref)
    if enabled:
        store.conn.execute(
            "UPDATE schedules SET enabled = 1, pause_note = '', version = version + 1, "
            "cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END, updated_at = ?, "
            "updated_by = ? WHERE schedule_id = ?",
            (now, now, now, actor, before.schedule_id),
        )
    else:
        store.conn.execute(
            "UPDATE schedules SET enabled = 0, pause_note = ?, version = version + 1, "
            "updated_at = ?, updated_by = ? WHERE schedule_id = ?",
            (note, now, actor, before.schedule_id),
        )
    return before, get(store, before.schedule_id)


def delete(store: Store, ref: str) -> ScheduleRow:
    """Remove a schedule; its fires stay (history), and pending ones are never delivered."""
    before = get(store, ref)
    store.conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (before.schedule_id,))
    store.conn.execute(
        "UPDATE fires SET state = ?, reason = 'the schedule was deleted' "
        "WHERE schedule_id = ? AND state = ?",
        (MISSED, before.schedule_id, PENDING),
    )
    return before


# -- fires -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewFire:
    """A fire for the leader (or trigger_now) to write."""

    fire_id: str
    schedule_id: str
    kind: str  # "scheduled", "catch_up" or "trigger"
    slot: float
    due_at: float
    deliver_by: float
    #: Delivery order: the due time, or (catch-up) a moment after the write.
    claim_order: float | None = None


_FIRE_COLUMNS: Final = (
    "fire_id, schedule_id, kind, slot, due_at, deliver_by, engine, app, task, labels, payload, "
    "state, agent_instance, agent_session, native_dedup, claimed_by, command_id, native_id, "
    "reason, attempts, idempotency_key, created_at, sent_at, answered_at"
)


def fire_payload(row: ScheduleRow) -> str:
    return _dumps({"args": row.args, "kwargs": row.kwargs, "options": row.options})


def insert_fires(
    store: Store,
    row: ScheduleRow,
    fires: Iterable[NewFire],
    now: float,
    idempotency_key: str | None = None,
) -> int:
    """Insert fires unless their id exists (another leader wrote it); returns how many new."""
    payload = fire_payload(row)
    labels = _dumps(row.labels)
    sql = (
        "INSERT INTO fires (fire_id, schedule_id, kind, slot, due_at, deliver_by, claim_order, "
        "engine, app, task, labels, payload, state, idempotency_key, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
        "ON CONFLICT (fire_id) DO NOTHING"
    )
    written = 0
    for fire in fires:
        cursor = store.conn.execute(
            sql,
            (
                fire.fire_id,
                fire.schedule_id,
                fire.kind,
                fire.slot,
                fire.due_at,
                fire.deliver_by,
                fire.due_at if fire.claim_order is None else fire.claim_order,
                row.engine,
                row.app,
                row.task,
                labels,
                payload,
                idempotency_key,
                now,
            ),
        )
        written += max(cursor.rowcount, 0)
    return written


def advance_cursor(
    store: Store, schedule_id: str, cursor: float, skipped_through: float | None
) -> None:
    """Move the cursor forward only (a resume may already have moved it further)."""
    store.conn.execute(
        "UPDATE schedules SET cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END, "
        "skipped_through = COALESCE(?, skipped_through) WHERE schedule_id = ?",
        (cursor, cursor, skipped_through, schedule_id),
    )


def fire_by_key(store: Store, key: str) -> dict[str, Any] | None:
    row = store.conn.execute(
        f"SELECT {_FIRE_COLUMNS} FROM fires WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return None if row is None else _fire_dict(row)


def fire(store: Store, fire_id: str) -> dict[str, Any] | None:
    row = store.conn.execute(
        f"SELECT {_FIRE_COLUMNS} FROM fires WHERE fire_id = ?", (fire_id,)
    ).fetchone()
    return None if row is None else _fire_dict(row)


def _fire_dict(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["labels"] = json.loads(item["labels"])
    item["payload"] = json.loads(item["payload"])
    item["native_dedup"] = bool(item["native_dedup"])
    return item


@dataclass(frozen=True)
class Agent:
    """A connected agent as delivery sees it."""

    agent_instance: str
    session: str
    app: str
    engines: frozenset[str]  # engines it can fire for
    dedup_engines: frozenset[str]  # engines that refuse a repeated job id
    labels: Mapping[str, str]

    def serves(self, fire: Mapping[str, Any]) -> bool:
        labels: Mapping[str, str] = fire["labels"]
        return (
            fire["app"] == self.app
            and fire["engine"] in self.engines
            and all(self.labels.get(k) == v for k, v in labels.items())
        )


@dataclass(frozen=True)
class Claimed:
    fire_id: str
    schedule_id: str
    kind: str
    slot: float
    deliver_by: float
    engine: str
    app: str
    task: str
    payload: dict[str, Any]
    agent_instance: str
    native_dedup: bool


def claim(
    store: Store,
    agents: Sequence[Agent],
    brain_id: str,
    now: float,
    limit: int = 500,
    *,
    reoffer: bool = False,
) -> list[Claimed]:
    """Bind open fires to this brain's agents and mark them ``delivering``.

    A pending fire goes to any agent that serves it (the least loaded first; on-time fires
    before catch-up ones). With ``reoffer`` (after an agent connected), a delivering fire whose
    agent reconnected (its session changed) is offered to that same agent again: the agent
    answers ``duplicate`` if it had enqueued it. Postgres rows are taken with ``FOR UPDATE
    SKIP LOCKED`` so brains never claim the same fire.
    """
    if not agents:
        return []
    apps = sorted({a.app for a in agents})
    marks = ", ".join("?" * len(apps))
    lock = " FOR UPDATE SKIP LOCKED" if store.dialect == "postgres" else ""
    by_instance = {a.agent_instance: a for a in agents}
    rows = store.conn.execute(
        f"SELECT {_FIRE_COLUMNS} FROM fires WHERE state = 'pending' AND app IN ({marks}) "
        f"AND deliver_by >= ? ORDER BY claim_order LIMIT ?{lock}",
        [*apps, now, limit],
    ).fetchall()
    if reoffer:
        inst_marks = ", ".join("?" * len(by_instance))
        rows += store.conn.execute(
            f"SELECT {_FIRE_COLUMNS} FROM fires WHERE state = 'delivering' "
            f"AND agent_instance IN ({inst_marks}) AND deliver_by >= ? ORDER BY due_at "
            f"LIMIT ?{lock}",
            [*by_instance, now, limit],
        ).fetchall()
    load: dict[str, int] = {a.agent_instance: 0 for a in agents}
    claimed: list[Claimed] = []
    for raw in rows:
        fire_row = _fire_dict(raw)
        agent: Agent | None
        if fire_row["state"] == DELIVERING:
            agent = by_instance.get(fire_row["agent_instance"])
            if agent is None or agent.session == fire_row["agent_session"]:
                continue  # still in flight on this session: wait for its answer
        else:
            candidates = [a for a in agents if a.serves(fire_row)]
            if not candidates:
                continue
            agent = min(candidates, key=lambda a: load[a.agent_instance])
        load[agent.agent_instance] += 1
        dedup = fire_row["engine"] in agent.dedup_engines
        store.conn.execute(
            "UPDATE fires SET state = 'delivering', agent_instance = ?, agent_session = ?, "
            "native_dedup = ?, claimed_by = ?, sent_at = ?, attempts = attempts + 1 "
            "WHERE fire_id = ?",
            (agent.agent_instance, agent.session, 1 if dedup else 0, brain_id, now,
             fire_row["fire_id"]),
        )  # fmt: skip
        claimed.append(
            Claimed(
                fire_id=fire_row["fire_id"],
                schedule_id=fire_row["schedule_id"],
                kind=fire_row["kind"],
                slot=fire_row["slot"],
                deliver_by=fire_row["deliver_by"],
                engine=fire_row["engine"],
                app=fire_row["app"],
                task=fire_row["task"],
                payload=fire_row["payload"],
                agent_instance=agent.agent_instance,
                native_dedup=dedup,
            )
        )
    return claimed


def record_answer(
    store: Store,
    fire_id: str,
    agent_instance: str,
    *,
    status: str,
    command_id: str,
    native_id: str | None,
    reason: str,
    now: float,
) -> None:
    """An agent's answer: final for enqueued, duplicate, rejected; ``failed`` goes back to
    pending (nothing was enqueued) until the fire's deadline."""
    if status == FAILED:
        store.conn.execute(
            "UPDATE fires SET state = CASE WHEN deliver_by > ? THEN 'pending' ELSE 'failed' END, "
            "agent_instance = NULL, agent_session = NULL, command_id = ?, reason = ?, "
            "answered_at = ? WHERE fire_id = ? AND state = 'delivering' AND agent_instance = ?",
            (now, command_id, reason, now, fire_id, agent_instance),
        )
        return
    store.conn.execute(
        "UPDATE fires SET state = ?, command_id = ?, native_id = ?, reason = ?, answered_at = ? "
        "WHERE fire_id = ? AND (state IN ('delivering', 'unknown')) AND agent_instance = ?",
        (status, command_id, native_id, reason, now, fire_id, agent_instance),
    )


def set_command(store: Store, fire_id: str, command_id: str) -> None:
    store.conn.execute("UPDATE fires SET command_id = ? WHERE fire_id = ?", (command_id, fire_id))


def release_unanswered(store: Store, fire_id: str, agent_instance: str, command_id: str) -> None:
    """No answer by the command's deadline. An engine that refuses a repeated job id lets the
    fire go to any agent; otherwise it stays bound to its agent (re-offered only to it, on
    reconnect) until its deadline, then becomes ``unknown``."""
    store.conn.execute(
        "UPDATE fires SET command_id = ?, state = CASE WHEN native_dedup = 1 THEN 'pending' "
        "ELSE state END, agent_instance = CASE WHEN native_dedup = 1 THEN NULL "
        "ELSE agent_instance END WHERE fire_id = ? AND state = 'delivering' "
        "AND agent_instance = ?",
        (command_id, fire_id, agent_instance),
    )


def expire(store: Store, now: float) -> tuple[int, int]:
    """Past their deadline: pending fires are ``missed``, unanswered ones ``unknown``."""
    missed = store.conn.execute(
        "UPDATE fires SET state = 'missed', reason = CASE WHEN reason = '' THEN "
        "'no suitable agent took it before its misfire grace ran out' ELSE reason END "
        "WHERE state = 'pending' AND deliver_by < ?",
        (now,),
    ).rowcount
    unknown = store.conn.execute(
        "UPDATE fires SET state = 'unknown', reason = 'no answer from its agent before the "
        "deadline; not re-sent (the engine could run it twice)' "
        "WHERE state = 'delivering' AND deliver_by < ?",
        (now,),
    ).rowcount
    return max(missed, 0), max(unknown, 0)


def history(store: Store, schedule_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The schedule's newest fires, each with its task's outcome when the engine reported it."""
    rows = store.conn.execute(
        "SELECT f.fire_id, f.kind, f.slot, f.due_at, f.state, f.agent_instance, f.native_id, "
        "f.reason, f.created_at, f.sent_at, f.answered_at, t.state AS task_state, "
        "t.finished_at AS task_finished_at, t.runtime AS task_runtime, "
        "t.exception AS task_exception FROM fires f LEFT JOIN tasks t "
        "ON t.fire_id = f.fire_id AND t.engine = f.engine "
        "WHERE f.schedule_id = ? ORDER BY f.slot DESC, f.created_at DESC LIMIT ?",
        (schedule_id, limit),
    ).fetchall()
    return [dict(r) for r in rows]


def fire_counts(store: Store) -> dict[str, int]:
    rows = store.conn.execute("SELECT state, COUNT(*) FROM fires GROUP BY state").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
