"""Schedules and their fires in the store: the rows, the leader's fire writes, delivery's
claims and answers, and history (deleted schedules included).

Holds the SQL only: what a schedule may be is decided by ``z4j_brain.schedules`` before a row
is written here, and the schedule math is the core's. Methods never commit: the caller's
transaction (the writer's, or the leader's) wraps them, so a change and its audit row, or fires
and the cursor they settle, commit together. Postgres rows are claimed ``FOR UPDATE SKIP
LOCKED`` so brains never claim the same fire.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, NamedTuple

from z4j_brain.paging import KEYS, decode_cursor
from z4j_brain.routing import may_take
from z4j_brain.store.base import Arrays, StoreBase, keyset
from z4j_brain.store.events import FINISHED_KINDS
from z4j_core.scheduling import Schedule, schedule_from_dict

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
#: Not a state: the status of a ``FireAnswer`` for a command that got no answer by its deadline,
#: or whose agent could not tell whether the engine took it (``release_unanswered_fire``).
UNANSWERED: Final = "unanswered"
#: Not fired, by the schedule's overlap policy (the reason says which fire was still running).
SKIPPED: Final = "skipped"
#: Waiting for the previous fire's task to finish (overlap ``buffer-one``); then ``pending``.
BUFFERED: Final = "buffered"
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
    SKIPPED,
    BUFFERED,
)

#: Overlap policies: what a slot does while the previous fire's task is still queued or running.
OVERLAP_ALLOW: Final = "allow"
OVERLAP_SKIP: Final = "skip"
OVERLAP_BUFFER_ONE: Final = "buffer-one"
OVERLAP_CANCEL_PREVIOUS: Final = "cancel-previous"
OVERLAP_POLICIES: Final = (OVERLAP_ALLOW, OVERLAP_SKIP, OVERLAP_BUFFER_ONE, OVERLAP_CANCEL_PREVIOUS)
#: Result log policies: what retention keeps of a schedule's fires' tasks.
RESULT_LOG_POLICIES: Final = ("all", "failures", "none")
#: Task states that end a task (its fire no longer overlaps the next slot).
TASK_DONE_STATES: Final = tuple(sorted(k.value for k in FINISHED_KINDS))
#: How long after its slot an enqueued fire whose task the brain never heard of still counts
#: as queued or running for the overlap policy (its events were lost, or retention dropped its
#: unfinished task): past it, the overlap policy no longer waits for it.
UNHEARD_TASK_SECONDS: Final = 86400.0
#: Task states that count as a failed outcome (health and pause-after-failures).
TASK_FAILED_STATES: Final = ("failed", "expired", "rejected", "dead_lettered")

#: Longest error kept on a broken schedule.
MAX_BROKEN_LENGTH: Final = 500
_UTC = timezone.utc


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
    #: Why the leader set this schedule aside ('' when it is not broken).
    broken: str = ""
    broken_at: float | None = None
    overlap: str = OVERLAP_ALLOW
    #: Pause after this many consecutive failed task outcomes (None: never).
    pause_after_failures: int | None = None
    result_log: str = "all"

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
            broken=row["broken"],
            broken_at=row["broken_at"],
            overlap=row["overlap"],
            pause_after_failures=row["pause_after_failures"],
            result_log=row["result_log"],
        )

    def schedule(self) -> Schedule:
        return schedule_from_dict(self.spec)

    def cursor_dt(self) -> datetime:
        return datetime.fromtimestamp(self.cursor, _UTC)

    @property
    def state(self) -> str:
        if self.broken:
            return "broken"
        return "active" if self.enabled else "paused"

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
            "state": self.state,
            "broken": self.broken,
            "broken_at": self.broken_at,
            "overlap": self.overlap,
            "pause_after_failures": self.pause_after_failures,
            "result_log": self.result_log,
        }


_SCHEDULE_COLUMNS: Final = (
    "schedule_id, name, task, engine, app, labels, args, kwargs, options, spec, enabled, "
    "pause_note, description, cursor, skipped_through, version, created_at, created_by, "
    "updated_at, updated_by, broken, broken_at, overlap, pause_after_failures, result_log"
)


_INSERT_FIRE: Final = (
    "INSERT INTO fires (fire_id, schedule_id, kind, slot, due_at, deliver_by, claim_order, "
    "engine, app, task, labels, payload, state, reason, decision, trigger_key, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fire_id) DO NOTHING"
)


_FIRE_TYPES: Final = ("text[]",) * 3 + ("float8[]",) * 4 + ("text[]",) * 9 + ("float8[]",)
_PG_INSERT_FIRES: Final = Arrays(
    "INSERT INTO fires (fire_id, schedule_id, kind, slot, due_at, deliver_by, claim_order, "
    "engine, app, task, labels, payload, state, reason, decision, trigger_key, created_at) "
    "SELECT * FROM {rows} ON CONFLICT (fire_id) DO NOTHING",
    _FIRE_TYPES,
)
_PG_ADVANCE_CURSORS: Final = Arrays(
    "UPDATE schedules AS s SET cursor = CASE WHEN s.cursor < v.cursor THEN v.cursor "
    "ELSE s.cursor END, skipped_through = COALESCE(v.skipped, s.skipped_through) "
    "FROM {rows} AS v(cursor, same, skipped, schedule_id) WHERE s.schedule_id = v.schedule_id",
    ("float8[]", "float8[]", "float8[]", "text[]"),
    key=3,
)
_PG_CLAIM_FIRES: Final = Arrays(
    "UPDATE fires AS f SET state = 'delivering', agent_instance = v.agent, "
    "agent_session = v.session, native_dedup = v.dedup, claimed_by = v.brain, sent_at = v.sent, "
    "attempts = f.attempts + 1, command_id = v.command "
    "FROM {rows} AS v(agent, session, dedup, brain, sent, command, fire_id) "
    "WHERE f.fire_id = v.fire_id",
    ("text[]", "text[]", "int4[]", "text[]", "float8[]", "text[]", "text[]"),
    key=6,
)


def _fire_values(
    recipe: FireRecipe, fire: NewFire, now: float, idempotency_key: str | None
) -> tuple[Any, ...]:
    return (
        fire.fire_id, fire.schedule_id, fire.kind, fire.slot, fire.due_at, fire.deliver_by,
        fire.due_at if fire.claim_order is None else fire.claim_order,
        recipe.engine, recipe.app, recipe.task, recipe.labels, recipe.payload,
        fire.state, fire.reason, fire.reason if fire.state != PENDING else fire.decision,
        idempotency_key, now,
    )  # fmt: skip


#: A ``FireRecipe``'s columns, in ``FireRecipe.from_columns``'s order.
_RECIPE_COLUMNS: Final = (
    "schedule_id, name, version, engine, app, task, labels, args, kwargs, options, overlap"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


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
    #: ``pending``, or the overlap policy's decision (``skipped``, ``buffered``) with why.
    state: str = PENDING
    reason: str = ""
    #: The overlap policy's decision on a fire that goes out anyway (``cancel-previous``).
    decision: str = ""


_FIRE_COLUMNS: Final = (
    "fire_id, schedule_id, kind, slot, due_at, deliver_by, engine, app, task, labels, payload, "
    "state, agent_instance, agent_session, native_dedup, claimed_by, command_id, native_id, "
    "reason, attempts, trigger_key AS idempotency_key, created_at, sent_at, answered_at, "
    "decision"
)


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
        return may_take(
            agent_app=self.app,
            agent_labels=self.labels,
            able_engines=self.engines,
            app=fire["app"],
            engine=fire["engine"],
            labels=fire["labels"],
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
    #: The command that delivers it, recorded on the fire by its claim (its row is the caller's
    #: to insert, in the same transaction).
    command_id: str


#: A fire with its task's outcome (the task the engine reported for the fire id, if any).
_FIRE_WITH_TASK: Final = (
    "SELECT "
    + ", ".join(f"f.{column.strip()}" for column in _FIRE_COLUMNS.split(","))
    + ", COALESCE(t.state, f.task_outcome) AS task_state, t.finished_at AS task_finished_at, "
    "t.runtime AS task_runtime, "
    "t.exception AS task_exception FROM fires f "
    "LEFT JOIN tasks t ON t.fire_id = f.fire_id AND t.engine = f.engine"
)


def fire_payload(row: ScheduleRow) -> str:
    return _dumps({"args": row.args, "kwargs": row.kwargs, "options": row.options})


@dataclass(frozen=True, slots=True)
class FireRecipe:
    """What the fires of one schedule version are made of: all a leader keeps of a schedule
    between its slots (not the whole row, so that a million schedules fit), with the fire's
    JSON columns encoded once rather than at every fire."""

    schedule_id: str
    name: str
    version: int
    engine: str
    app: str
    task: str
    labels: str  # JSON, as the fire stores it
    payload: str  # JSON: args, kwargs and options
    overlap: str

    @classmethod
    def from_columns(cls, columns: Sequence[Any]) -> FireRecipe:
        """From a row's stored columns (``_RECIPE_COLUMNS``), JSON left encoded: the store
        wrote each with ``_dumps``, so the payload is theirs joined as ``fire_payload`` would
        write it."""
        schedule_id, name, version, engine, app, task, labels, args, kwargs, options, overlap = (
            columns[:11]
        )
        return cls(
            schedule_id=schedule_id,
            name=name,
            version=int(version),
            engine=sys.intern(engine),
            app=sys.intern(app),
            task=sys.intern(task),
            labels=labels if len(labels) > 128 else sys.intern(labels),
            payload=f'{{"args":{args},"kwargs":{kwargs},"options":{options}}}',
            overlap=sys.intern(overlap),
        )

    @classmethod
    def of(cls, row: ScheduleRow) -> FireRecipe:
        # Engines, apps, tasks, label sets and policies repeat across schedules: one string
        # each (interned strings are freed with their last user).
        labels = _dumps(row.labels)
        return cls(
            schedule_id=row.schedule_id,
            name=row.name,
            version=row.version,
            engine=sys.intern(row.engine),
            app=sys.intern(row.app),
            task=sys.intern(row.task),
            labels=sys.intern(labels) if len(labels) <= 128 else labels,
            payload=fire_payload(row),
            overlap=sys.intern(row.overlap),
        )


def _fire_dict(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["labels"] = json.loads(item["labels"])
    item["payload"] = json.loads(item["payload"])
    item["native_dedup"] = bool(item["native_dedup"])
    return item


#: Columns of a schedule that hold JSON (the rest are plain values).
_JSON_FIELDS: Final = frozenset({"labels", "args", "kwargs", "options", "spec"})
_PLAIN_FIELDS: Final = frozenset(
    {"name", "task", "engine", "app", "description", "overlap", "pause_after_failures",
     "result_log"}
)  # fmt: skip


class HeldSchedule(NamedTuple):
    """A schedule as a leader reads it to hold it: only what orders its slots (its timing
    still as stored, JSON), its version, whether it is enabled or broken, its cursor and its
    overlap policy. What its fires carry is read when they are written (``fire_recipes``)."""

    schedule_id: str
    version: int
    spec: str
    enabled: bool
    broken: str
    cursor: float
    overlap: str

    @classmethod
    def from_columns(cls, columns: Sequence[Any]) -> HeldSchedule:
        schedule_id, version, spec, enabled, broken, cursor, overlap = columns[:7]
        # A tuple, not a dataclass: a leader's first load makes a million of these.
        return cls(schedule_id, int(version), spec, bool(enabled), broken, float(cursor),
                   sys.intern(overlap))  # fmt: skip


#: A ``HeldSchedule``'s columns, in ``HeldSchedule.from_columns``'s order.
_HELD_COLUMNS: Final = "schedule_id, version, spec, enabled, broken, cursor, overlap"


#: The ``counters`` row every change of a schedule row bumps (in the change's transaction), so
#: a leader's poll reads one row instead of every schedule's version while nothing changed.
SCHEDULE_CHANGES: Final = "schedule_changes"


@dataclass(frozen=True)
class ScheduleChanges:
    """``ScheduleStore.schedules_changed_after``'s answer."""

    written: list[tuple[str, int]]
    deleted: list[str]
    numbers: frozenset[int]

    def complete(self, after: int, upto: int) -> bool:
        """Whether these rows account for every change numbered ``after + 1`` to ``upto``. Not
        when a row was written twice (its first number is gone), or created and deleted, or
        written by a brain that records no change numbers: then compare every version."""
        return all(n in self.numbers for n in range(after + 1, upto + 1))


class ScheduleStore(StoreBase):
    """Schedules and deleted schedules."""

    def schedule_changes(self) -> int:
        """How many times schedule rows were created, edited, paused, resumed or deleted."""
        row = self.conn.execute(
            "SELECT value FROM counters WHERE name = ?", (SCHEDULE_CHANGES,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def _schedules_changed(self) -> int:
        """Bump the change count; its new value, the change number of the row written. (On
        Postgres the bump locks the counter's row until the write commits, so change numbers
        are given in commit order: once a reader sees the count at N, every change numbered up
        to N is committed.)"""
        self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
            (SCHEDULE_CHANGES,),
        )
        return self.schedule_changes()

    def schedules_changed_after(self, change_no: int) -> ScheduleChanges:
        """What changed after the change count stood at ``change_no``: (id, version) of each
        schedule written since, the ids deleted since, and the change numbers they carry (a
        reader compares them with the count to know whether it saw every change)."""
        rows = self.conn.execute(
            "SELECT schedule_id, version, change_no FROM schedules WHERE change_no > ?",
            (change_no,),
        ).fetchall()
        deleted = self.conn.execute(
            "SELECT schedule_id, change_no FROM deleted_schedules WHERE change_no > ?",
            (change_no,),
        ).fetchall()
        return ScheduleChanges(
            written=[(str(r[0]), int(r[1])) for r in rows],
            deleted=[str(r[0]) for r in deleted],
            numbers=frozenset(int(r[2]) for r in rows) | {int(r[1]) for r in deleted},
        )

    def schedule(self, ref: str) -> ScheduleRow | None:
        """By id, else by name."""
        row = self.conn.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (ref,)
        ).fetchone()
        if row is None:
            row = self.conn.execute(
                f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE name = ?", (ref,)
            ).fetchone()
        return None if row is None else ScheduleRow.from_db(row)

    def schedules(self, enabled_only: bool = False) -> list[ScheduleRow]:
        """Every schedule, by name."""
        where = " WHERE enabled = 1" if enabled_only else ""
        rows = self.conn.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules{where} ORDER BY name"
        ).fetchall()
        return [ScheduleRow.from_db(r) for r in rows]

    def schedule_versions_after(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` (id, version) pairs after the id ``after`` in the store's order of
        ids: what a leader compares with what it holds, a chunk at a time."""
        rows = self._schedule_rows_after("schedule_id, version", after, limit)
        return [(r[0], r[1]) for r in rows]

    def _schedule_rows_after(self, columns: str, after: str | None, limit: int) -> list[Any]:
        """Up to ``limit`` rows of ``columns`` after the id ``after``, in the order of ids."""
        where, params = ("", []) if after is None else (" WHERE schedule_id > ?", [after])
        return self.conn.execute(
            f"SELECT {columns} FROM schedules{where} ORDER BY schedule_id LIMIT ?",
            [*params, limit],
        ).fetchall()

    def schedules_by_id(self, ids: Sequence[str]) -> list[ScheduleRow]:
        rows = self._rows_by_id(_SCHEDULE_COLUMNS, "schedules", "schedule_id", ids)
        return [ScheduleRow.from_db(r) for r in rows]

    def existing_schedule_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids are live schedules."""
        return {r[0] for r in self._rows_by_id("schedule_id", "schedules", "schedule_id", ids)}

    def schedules_to_hold(self, ids: Sequence[str]) -> list[HeldSchedule]:
        """What a leader holds of each of these schedules (the ones that exist)."""
        rows = self._rows_by_id(_HELD_COLUMNS, "schedules", "schedule_id", ids)
        return [HeldSchedule.from_columns(r) for r in rows]

    def schedules_to_hold_after(self, after: str | None, limit: int) -> list[HeldSchedule]:
        """``schedules_to_hold`` of up to ``limit`` schedules after the id ``after`` in the
        store's order of ids (a leader's first load, a chunk at a time)."""
        rows = self._schedule_rows_after(_HELD_COLUMNS, after, limit)
        return [HeldSchedule.from_columns(r) for r in rows]

    def fire_recipes(self, ids: Sequence[str]) -> dict[str, FireRecipe]:
        """What the fires of each of these schedules (the ones that exist) are made of, as
        stored now: read by the leader's write of their fires, not held between slots."""
        rows = self._rows_by_id(_RECIPE_COLUMNS, "schedules", "schedule_id", ids)
        recipes = (FireRecipe.from_columns(row) for row in rows)
        return {recipe.schedule_id: recipe for recipe in recipes}

    def schedule_id_of_name(self, name: str) -> str | None:
        """The id of the live schedule named ``name``."""
        row = self.conn.execute(
            "SELECT schedule_id FROM schedules WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    def schedule_id_use(self, schedule_id: str) -> str | None:
        """``"live"`` or ``"deleted"`` when a schedule has (had) this id, else None: ids are
        never reused (fire ids carry them)."""
        if self.conn.execute(
            "SELECT 1 FROM schedules WHERE schedule_id = ?", (schedule_id,)
        ).fetchone():
            return "live"
        if self.conn.execute(
            "SELECT 1 FROM deleted_schedules WHERE schedule_id = ?", (schedule_id,)
        ).fetchone():
            return "deleted"
        return None

    def insert_schedule(
        self,
        *,
        schedule_id: str,
        name: str,
        task: str,
        engine: str,
        app: str,
        labels: Mapping[str, str],
        args: list[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        spec: Mapping[str, Any],
        enabled: bool,
        description: str,
        actor: str,
        now: float,
        overlap: str = OVERLAP_ALLOW,
        pause_after_failures: int | None = None,
        result_log: str = "all",
    ) -> None:
        """A new schedule at version 1; its cursor starts at ``now`` (no slot before fires)."""
        self.conn.execute(
            f"INSERT INTO schedules ({_SCHEDULE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, NULL, 1, ?, ?, ?, ?, '', NULL, "
            "?, ?, ?)",
            (
                schedule_id, name, task, engine, app, _dumps(labels), _dumps(args),
                _dumps(kwargs), _dumps(options), _dumps(spec), 1 if enabled else 0,
                description, now, now, actor, now, actor, overlap, pause_after_failures,
                result_log,
            ),
        )  # fmt: skip
        self.conn.execute(
            "UPDATE schedules SET change_no = ? WHERE schedule_id = ?",
            (self._schedules_changed(), schedule_id),
        )

    def update_schedule(
        self,
        schedule_id: str,
        fields: Mapping[str, Any],
        *,
        cursor_at_least: float | None,
        actor: str,
        now: float,
    ) -> None:
        """Set ``fields`` (name, task, engine, app, description, labels, args, kwargs,
        options, spec), move the cursor up to ``cursor_at_least`` when given, bump the version
        and clear ``broken`` (the leader tries the schedule again)."""
        sets: list[str] = []
        params: list[Any] = []
        for key, value in fields.items():
            if key in _PLAIN_FIELDS:
                params.append(value)
            elif key in _JSON_FIELDS:
                params.append(_dumps(value))
            else:
                raise ValueError(f"not a schedule field: {key!r}")
            sets.append(f"{key} = ?")
        if cursor_at_least is not None:
            sets.append("cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END")
            params += [cursor_at_least, cursor_at_least]
        sets += ["version = version + 1", "updated_at = ?", "updated_by = ?", "broken = ''",
                 "broken_at = NULL", "change_no = ?"]  # fmt: skip
        params += [now, actor, self._schedules_changed(), schedule_id]
        self.conn.execute(f"UPDATE schedules SET {', '.join(sets)} WHERE schedule_id = ?", params)

    def pause_schedule(self, schedule_id: str, note: str, *, actor: str, now: float) -> None:
        self.conn.execute(
            "UPDATE schedules SET enabled = 0, pause_note = ?, version = version + 1, "
            "updated_at = ?, updated_by = ?, change_no = ? WHERE schedule_id = ?",
            (note, now, actor, self._schedules_changed(), schedule_id),
        )

    def resume_schedule(self, schedule_id: str, *, actor: str, now: float) -> None:
        """Enable, clear ``broken``, and move the cursor up to ``now``: slots that passed while
        paused do not fire."""
        self.conn.execute(
            "UPDATE schedules SET enabled = 1, pause_note = '', version = version + 1, "
            "broken = '', broken_at = NULL, "
            "cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END, updated_at = ?, "
            "updated_by = ?, change_no = ? WHERE schedule_id = ?",
            (now, now, now, actor, self._schedules_changed(), schedule_id),
        )

    def delete_schedule(self, row: ScheduleRow, *, actor: str, now: float) -> None:
        """Remove a schedule; its fires stay (history), its pending ones become ``missed``, and
        its last state is kept so history finds it by id or last name."""
        self.conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (row.schedule_id,))
        self.conn.execute(
            "INSERT INTO deleted_schedules (schedule_id, name, deleted_at, deleted_by, "
            "last_state, change_no) VALUES (?, ?, ?, ?, ?, ?)",
            (row.schedule_id, row.name, now, actor, _dumps(row.as_dict()),
             self._schedules_changed()),
        )  # fmt: skip
        self.conn.execute(
            "UPDATE fires SET state = ?, reason = 'the schedule was deleted' "
            "WHERE schedule_id = ? AND state IN (?, ?)",
            (MISSED, row.schedule_id, PENDING, BUFFERED),
        )

    def deleted_schedule(self, ref: str) -> dict[str, Any] | None:
        """A deleted schedule by its id, else by its last name (the newest deletion): its last
        state with ``state`` ``deleted``, ``deleted_at`` and ``deleted_by``."""
        row = self.conn.execute(
            "SELECT last_state, deleted_at, deleted_by FROM deleted_schedules "
            "WHERE schedule_id = ?",
            (ref,),
        ).fetchone()
        if row is None:
            row = self.conn.execute(
                "SELECT last_state, deleted_at, deleted_by FROM deleted_schedules WHERE name = ? "
                "ORDER BY deleted_at DESC LIMIT 1",
                (ref,),
            ).fetchone()
        if row is None:
            return None
        state = json.loads(row["last_state"])
        return {**state, "state": "deleted", "deleted_at": row["deleted_at"],
                "deleted_by": row["deleted_by"]}  # fmt: skip

    def mark_broken(self, schedule_id: str, version: int, error: str, now: float) -> bool:
        """Set a schedule aside with the leader's error, unless it was edited since
        (``version``): an edit is what clears it. Does not bump the version (leaders would
        retry it at once)."""
        cursor = self.conn.execute(
            "UPDATE schedules SET broken = ?, broken_at = ? WHERE schedule_id = ? "
            "AND version = ? AND broken = ''",
            (error[:MAX_BROKEN_LENGTH] or "broken", now, schedule_id, version),
        )
        return cursor.rowcount > 0

    def broken_count(self) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM schedules WHERE broken <> ''").fetchone()
        return int(row[0])

    def advance_cursor(
        self, schedule_id: str, cursor: float, skipped_through: float | None
    ) -> None:
        """Move the cursor forward only (a resume may already have moved it further)."""
        self.advance_cursors([(schedule_id, cursor, skipped_through)])

    def advance_cursors(self, cursors: Sequence[tuple[str, float, float | None]]) -> None:
        """``advance_cursor`` for many schedules (id, cursor, skipped through) in one batch."""
        self.many(
            "UPDATE schedules SET cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END, "
            "skipped_through = COALESCE(?, skipped_through) WHERE schedule_id = ?",
            [(cursor, cursor, skipped, sid) for sid, cursor, skipped in cursors],
            _PG_ADVANCE_CURSORS,
        )


class FireAnswer(NamedTuple):
    """An agent's answer to a fire's command, to record on the fire; ``status`` is the
    answer's, or ``UNANSWERED``."""

    fire_id: str
    agent_instance: str
    command_id: str
    status: str
    native_id: str | None
    reason: str
    at: float


_FAILED_FIRE: Final = (
    "UPDATE fires SET state = CASE WHEN deliver_by > ? THEN 'pending' ELSE 'failed' END, "
    "agent_instance = NULL, agent_session = NULL, command_id = ?, reason = ?, answered_at = ? "
    "WHERE fire_id = ? AND state = 'delivering' AND agent_instance = ?"
)
_ANSWERED_FIRE: Final = (
    "UPDATE fires SET state = ?, command_id = ?, native_id = ?, reason = ?, answered_at = ? "
    "WHERE fire_id = ? AND (state IN ('delivering', 'unknown')) AND agent_instance = ?"
)
_RELEASE_FIRE: Final = (
    "UPDATE fires SET command_id = ?, state = CASE WHEN native_dedup = 1 THEN 'pending' "
    "ELSE state END, agent_instance = CASE WHEN native_dedup = 1 THEN NULL "
    "ELSE agent_instance END, reason = ? WHERE fire_id = ? AND state = 'delivering' "
    "AND agent_instance = ?"
)


_PG_ANSWER_FORMS: Final = {
    _FAILED_FIRE: Arrays(
        "UPDATE fires AS f SET state = CASE WHEN f.deliver_by > v.at THEN 'pending' "
        "ELSE 'failed' END, agent_instance = NULL, agent_session = NULL, command_id = v.command, "
        "reason = v.reason, answered_at = v.at FROM {rows} AS v(at, command, reason, same, "
        "fire_id, agent) WHERE f.fire_id = v.fire_id AND f.state = 'delivering' "
        "AND f.agent_instance = v.agent",
        ("float8[]", "text[]", "text[]", "float8[]", "text[]", "text[]"),
        key=4,
    ),
    _ANSWERED_FIRE: Arrays(
        "UPDATE fires AS f SET state = v.status, command_id = v.command, native_id = v.native, "
        "reason = v.reason, answered_at = v.at FROM {rows} AS v(status, command, native, reason, "
        "at, fire_id, agent) WHERE f.fire_id = v.fire_id "
        "AND f.state IN ('delivering', 'unknown') AND f.agent_instance = v.agent",
        ("text[]", "text[]", "text[]", "text[]", "float8[]", "text[]", "text[]"),
        key=5,
    ),
    _RELEASE_FIRE: Arrays(
        "UPDATE fires AS f SET command_id = v.command, state = CASE WHEN f.native_dedup = 1 "
        "THEN 'pending' ELSE f.state END, agent_instance = CASE WHEN f.native_dedup = 1 "
        "THEN NULL ELSE f.agent_instance END, reason = v.reason FROM {rows} AS v(command, reason, "
        "fire_id, agent) WHERE f.fire_id = v.fire_id AND f.state = 'delivering' "
        "AND f.agent_instance = v.agent",
        ("text[]", "text[]", "text[]", "text[]"),
        key=2,
    ),
}


def _answer_row(answer: FireAnswer) -> tuple[str, tuple[Any, ...]]:
    fire_id, agent, command_id, status, native_id, reason, at = answer
    if status == UNANSWERED:
        return _RELEASE_FIRE, (command_id, reason, fire_id, agent)
    if status == FAILED:
        return _FAILED_FIRE, (at, command_id, reason, at, fire_id, agent)
    return _ANSWERED_FIRE, (status, command_id, native_id, reason, at, fire_id, agent)


def _answer_runs(answers: Iterable[FireAnswer]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The answers' statements in order, consecutive rows of one statement together (the
    order is kept: two answers about one fire must apply as they came)."""
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for answer in answers:
        statement, row = _answer_row(answer)
        if runs and runs[-1][0] is statement:
            runs[-1][1].append(row)
        else:
            runs.append((statement, [row]))
    return runs


class FireStore(StoreBase):
    """Fires: written by the leader (or a trigger), claimed and answered by delivery."""

    def insert_fires(
        self,
        row: ScheduleRow | FireRecipe,
        fires: Iterable[NewFire],
        now: float,
        idempotency_key: str | None = None,
    ) -> int:
        """Insert fires unless their id exists (another leader wrote it); returns how many new."""
        recipe = row if isinstance(row, FireRecipe) else FireRecipe.of(row)
        rows = [_fire_values(recipe, fire, now, idempotency_key) for fire in fires]
        return self.conn.executemany(_INSERT_FIRE, rows) if rows else 0

    def insert_many_fires(self, fires: Sequence[tuple[FireRecipe, NewFire, float]]) -> int:
        """The fires of many schedules (a leader's tick: each with its recipe and when it was
        popped) in one batch of statements; returns how many were new."""
        rows = [_fire_values(recipe, fire, now, None) for recipe, fire, now in fires]
        return self.many(_INSERT_FIRE, rows, _PG_INSERT_FIRES)

    def fire(self, fire_id: str) -> dict[str, Any] | None:
        """One fire with its task's outcome (``task_state`` and the rest, null until the
        engine reported the task)."""
        row = self.conn.execute(f"{_FIRE_WITH_TASK} WHERE f.fire_id = ?", (fire_id,)).fetchone()
        return None if row is None else _fire_dict(row)

    def fire_by_key(self, schedule_id: str, key: str) -> dict[str, Any] | None:
        """The trigger of ``schedule_id`` made with idempotency key ``key`` (keys are per
        schedule: the same key on another schedule is another trigger)."""
        row = self.conn.execute(
            f"{_FIRE_WITH_TASK} WHERE f.schedule_id = ? AND f.trigger_key = ?",
            (schedule_id, key),
        ).fetchone()
        if row is None:
            # A brain of schema 3 (the previous release, during a rolling upgrade) writes the
            # key in the old column: a retry that reaches this brain still finds its trigger.
            row = self.conn.execute(
                f"{_FIRE_WITH_TASK} WHERE f.schedule_id = ? AND f.idempotency_key = ?",
                (schedule_id, key),
            ).fetchone()
        return None if row is None else _fire_dict(row)

    def claim_fires(
        self,
        agents: Sequence[Agent],
        brain_id: str,
        now: float,
        limit: int = 500,
        *,
        reoffer: bool = False,
    ) -> list[Claimed]:
        """Bind open fires to this brain's agents and mark them ``delivering``.

        A pending fire goes to any agent that serves it (the least loaded first; on-time fires
        before catch-up ones). With ``reoffer`` (after an agent connected), a delivering fire
        whose agent reconnected (its session changed) is offered to that same agent again: the
        agent answers ``duplicate`` if it had enqueued it. Postgres rows are taken with ``FOR
        UPDATE SKIP LOCKED`` so brains never claim the same fire.
        """
        if not agents:
            return []
        apps = sorted({a.app for a in agents})
        marks = ", ".join("?" * len(apps))
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgres" else ""
        by_instance = {a.agent_instance: a for a in agents}
        # A backfill's fires wait for their turn (their claim order), so a long range is paced.
        rows = self.conn.execute(
            f"SELECT {_FIRE_COLUMNS} FROM fires WHERE state = 'pending' AND app IN ({marks}) "
            "AND deliver_by >= ? AND (kind <> 'backfill' OR claim_order <= ?) "
            f"ORDER BY claim_order LIMIT ?{lock}",
            [*apps, now, now, limit],
        ).fetchall()
        if reoffer:
            inst_marks = ", ".join("?" * len(by_instance))
            rows += self.conn.execute(
                f"SELECT {_FIRE_COLUMNS} FROM fires WHERE state = 'delivering' "
                f"AND agent_instance IN ({inst_marks}) AND deliver_by >= ? ORDER BY due_at "
                f"LIMIT ?{lock}",
                [*by_instance, now, limit],
            ).fetchall()
        load: dict[str, int] = {a.agent_instance: 0 for a in agents}
        claimed: list[Claimed] = []
        claims: list[tuple[Any, ...]] = []
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
            command_id = uuid.uuid4().hex
            claims.append((agent.agent_instance, agent.session, 1 if dedup else 0, brain_id, now,
                           command_id, fire_row["fire_id"]))  # fmt: skip
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
                    command_id=command_id,
                )
            )
        self.many(
            "UPDATE fires SET state = 'delivering', agent_instance = ?, agent_session = ?, "
            "native_dedup = ?, claimed_by = ?, sent_at = ?, attempts = attempts + 1, "
            "command_id = ? WHERE fire_id = ?",
            claims,
            _PG_CLAIM_FIRES,
        )
        return claimed

    def record_fire_answer(
        self,
        fire_id: str,
        agent_instance: str,
        *,
        status: str,
        command_id: str,
        native_id: str | None,
        reason: str,
        now: float,
    ) -> None:
        """One agent's answer to a fire's command (see ``record_fire_answers``)."""
        self.record_fire_answers(
            [FireAnswer(fire_id, agent_instance, command_id, status, native_id, reason, now)]
        )

    def record_fire_answers(self, answers: Sequence[FireAnswer]) -> None:
        """Agents' answers to fires' commands, in their order: final for enqueued, duplicate,
        rejected; ``failed`` goes back to pending (nothing was enqueued) until the fire's
        deadline; ``UNANSWERED`` is ``release_unanswered_fire``'s. Each run of answers of one
        kind is one statement (a delivery round's answers are mostly one run)."""
        for statement, rows in _answer_runs(answers):
            self.many(statement, rows, _PG_ANSWER_FORMS[statement])

    def release_unanswered_fire(
        self, fire_id: str, agent_instance: str, command_id: str, reason: str = ""
    ) -> None:
        """No answer by the command's deadline, or the agent could not tell whether the engine
        took it (``reason`` says why). An engine that refuses a repeated job id lets the fire go
        to any agent; otherwise it stays bound to its agent (re-offered only to it, on
        reconnect, where it answers ``duplicate``) until its deadline, then becomes
        ``unknown``."""
        self.conn.execute(_RELEASE_FIRE, (command_id, reason, fire_id, agent_instance))

    def expire_fires(self, now: float) -> tuple[int, int]:
        """Past their deadline: pending fires are ``missed``, unanswered ones ``unknown``."""
        missed = self.conn.execute(
            "UPDATE fires SET state = 'missed', reason = CASE WHEN reason = '' THEN "
            "'no suitable agent took it before its misfire grace ran out' ELSE reason END "
            "WHERE state = 'pending' AND deliver_by < ?",
            (now,),
        ).rowcount
        unknown = self.conn.execute(
            "UPDATE fires SET state = 'unknown', reason = CASE WHEN reason = '' THEN 'no answer "
            "from its agent before the deadline; not re-sent (the engine could run it twice)' "
            "ELSE reason END WHERE state = 'delivering' AND deliver_by < ?",
            (now,),
        ).rowcount
        return max(missed, 0), max(unknown, 0)

    def fire_states(self, fire_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of these fires that exists."""
        rows = self._rows_by_id("fire_id, state", "fires", "fire_id", fire_ids)
        return {str(r[0]): str(r[1]) for r in rows}

    def expiring_fires(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """Pending fires past their deadline (``expire_fires`` makes them ``missed``), with
        their schedule's name, so each miss can be logged by name."""
        rows = self.conn.execute(
            "SELECT f.fire_id, f.schedule_id, f.slot, f.reason, s.name FROM fires f "
            "LEFT JOIN schedules s ON s.schedule_id = f.schedule_id "
            "WHERE f.state = 'pending' AND f.deliver_by < ? ORDER BY f.slot LIMIT ?",
            (now, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def watched_schedules(self) -> list[ScheduleRow]:
        """Enabled schedules that pause after failures (the leader watches their outcomes)."""
        rows = self.conn.execute(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE enabled = 1 "
            "AND pause_after_failures IS NOT NULL"
        ).fetchall()
        return [ScheduleRow.from_db(r) for r in rows]

    def running_fires(self, schedule_id: str, before_slot: float) -> list[dict[str, Any]]:
        """The schedule's fires before ``before_slot`` whose task may still be queued or
        running: not yet delivered, or enqueued with no finished outcome reported; and
        ``buffered`` ones. Newest first. An enqueued fire whose task was never heard of (its
        events lost, or its unfinished task dropped by retention) counts for
        ``UNHEARD_TASK_SECONDS`` after its slot, not for ever."""
        done = ", ".join("?" * len(TASK_DONE_STATES))
        rows = self.conn.execute(
            "SELECT f.fire_id, f.slot, f.state, COALESCE(t.state, f.task_outcome) AS task_state, "
            "COALESCE(t.task_id, f.native_id) AS task_id FROM fires f "
            "LEFT JOIN tasks t ON t.fire_id = f.fire_id AND t.engine = f.engine "
            "WHERE f.schedule_id = ? AND f.slot < ? AND (f.state IN ('pending', "
            "'delivering', 'buffered') OR (f.state IN ('enqueued', 'duplicate') AND "
            f"(COALESCE(t.state, f.task_outcome) IS NULL OR COALESCE(t.state, f.task_outcome) "
            f"NOT IN ({done})) AND (t.task_id IS NOT NULL OR f.task_outcome IS NOT NULL OR "
            "f.slot >= ?))) ORDER BY f.slot DESC LIMIT 10",
            (schedule_id, before_slot, *TASK_DONE_STATES, before_slot - UNHEARD_TASK_SECONDS),
        ).fetchall()
        return [dict(r) for r in rows]

    def decided_fires(self, overlap: str, prefix: str, since: float) -> list[dict[str, Any]]:
        """Fires since the slot ``since`` of schedules with ``overlap`` whose decision starts
        with ``prefix`` (a cancel-previous not yet answered), oldest first."""
        rows = self.conn.execute(
            "SELECT f.fire_id, f.schedule_id, f.engine, f.app, f.decision FROM fires f "
            "JOIN schedules s ON s.schedule_id = f.schedule_id WHERE s.overlap = ? "
            "AND f.slot >= ? AND substr(f.decision, 1, ?) = ? ORDER BY f.slot LIMIT 100",
            (overlap, since, len(prefix), prefix),
        ).fetchall()
        return [dict(r) for r in rows]

    def set_decision(self, fire_id: str, was: str, decision: str) -> bool:
        """Replace a fire's overlap decision if it is still ``was``."""
        cursor = self.conn.execute(
            "UPDATE fires SET decision = ? WHERE fire_id = ? AND decision = ?",
            (decision, fire_id, was),
        )
        return cursor.rowcount > 0

    def buffered_fires(self) -> list[dict[str, Any]]:
        """Every ``buffered`` fire (overlap buffer-one), oldest first."""
        rows = self.conn.execute(
            "SELECT fire_id, schedule_id, slot FROM fires WHERE state = 'buffered' ORDER BY slot"
        ).fetchall()
        return [dict(r) for r in rows]

    def release_buffered(self, fire_id: str, deliver_by: float, now: float) -> bool:
        """A buffered fire whose previous fire finished goes to delivery."""
        cursor = self.conn.execute(
            "UPDATE fires SET state = 'pending', due_at = ?, claim_order = ?, deliver_by = ? "
            "WHERE fire_id = ? AND state = 'buffered'",
            (now, now, deliver_by, fire_id),
        )
        return cursor.rowcount > 0

    def purge_fires(self, cutoff: float, limit: int) -> int:
        """Delete up to ``limit`` settled fires (not pending, delivering or buffered) created
        before ``cutoff``, oldest first; how many went. A slot's fire is created no earlier
        than the slot, so every slot at or after ``cutoff`` still has its fire: a backfill
        from there on never fires a slot twice (``schedules.backfill`` refuses earlier)."""
        cursor = self.conn.execute(
            "DELETE FROM fires WHERE fire_id IN (SELECT fire_id FROM fires WHERE created_at < ? "
            "AND state NOT IN (?, ?, ?) ORDER BY created_at LIMIT ?)",
            (cutoff, *OPEN_STATES, BUFFERED, limit),
        )
        return max(cursor.rowcount, 0)

    def purge_by_result_log(self, limit: int = 5000) -> int:
        """Retention by each schedule's result log policy: the finished tasks of its fires
        (and their events) go when the policy is ``none``, or ``failures`` and the task did not
        fail; each fire keeps its task's final state (``task_outcome``). Returns how many
        tasks went."""
        done = ", ".join("?" * len(TASK_DONE_STATES))
        failed = ", ".join("?" * len(TASK_FAILED_STATES))
        rows = self.conn.execute(
            "SELECT t.engine, t.task_id, t.state, f.fire_id FROM tasks t "
            "JOIN fires f ON f.fire_id = t.fire_id AND f.engine = t.engine "
            "JOIN schedules s ON s.schedule_id = f.schedule_id "
            f"WHERE t.state IN ({done}) AND (s.result_log = 'none' OR "
            f"(s.result_log = 'failures' AND t.state NOT IN ({failed}))) LIMIT ?",
            (*TASK_DONE_STATES, *TASK_FAILED_STATES, limit),
        ).fetchall()
        for row in rows:
            engine, task_id = row[0], row[1]
            self.conn.execute(
                "UPDATE fires SET task_outcome = ? WHERE fire_id = ?", (row[2], row[3])
            )
            self.conn.execute(
                "DELETE FROM events WHERE task_id = ? AND engine = ?", (task_id, engine)
            )
            self.conn.execute(
                "DELETE FROM tasks WHERE engine = ? AND task_id = ?", (engine, task_id)
            )
        return len(rows)

    def fire_history(
        self, schedule_id: str, limit: int = 50, cursor: str | None = None
    ) -> list[dict[str, Any]]:
        """The schedule's newest fires (by slot, then creation, then fire id, descending),
        each with its task's outcome when the engine reported it (``task_state``,
        ``task_finished_at``, ``task_runtime``, ``task_exception``); ``cursor`` (a
        ``next_cursor``) starts after that fire. Raises ``CursorError`` for a malformed one."""
        where, params = "f.schedule_id = ?", [schedule_id]
        if cursor is not None:
            columns = [f"f.{c}" for c in KEYS["fires"]]
            after, more = keyset(columns, decode_cursor("fires", cursor), descending=True)
            where, params = f"{where} AND {after}", [*params, *more]
        rows = self.conn.execute(
            "SELECT f.fire_id, f.kind, f.slot, f.due_at, f.state, f.agent_instance, "
            "f.native_id, f.reason, f.decision, f.created_at, f.sent_at, f.answered_at, "
            "COALESCE(t.state, f.task_outcome) AS task_state, t.finished_at AS task_finished_at, "
            "t.runtime AS task_runtime, t.exception AS task_exception FROM fires f "
            "LEFT JOIN tasks t ON t.fire_id = f.fire_id AND t.engine = f.engine "
            f"WHERE {where} ORDER BY f.slot DESC, f.created_at DESC, f.fire_id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def fire_counts(self, apps: Sequence[str] | None = None) -> dict[str, int]:
        """Fires by state (``missed`` and ``unknown`` included); ``apps`` (when given) counts
        only those apps' fires."""
        where, params = "", list(apps or [])
        if apps is not None:
            where = f" WHERE app IN ({', '.join('?' for _ in apps)})" if apps else " WHERE 1 = 0"
        rows = self.conn.execute(
            f"SELECT state, COUNT(*) FROM fires{where} GROUP BY state", params
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def fires(
        self,
        *,
        app: str | None = None,
        schedule_ids: Sequence[str] | None = None,
        slot_from: float | None = None,
        slot_before: float | None = None,
        answered_after: float | None = None,
        answered_until: float | None = None,
        created_after: float | None = None,
        exclude_kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """Fires matching every filter given, by slot (for tests, benchmarks and soak runs:
        what they read from the table directly before)."""
        clauses: list[str] = []
        params: list[Any] = []
        for sql, value in (
            ("app = ?", app),
            ("slot >= ?", slot_from),
            ("slot < ?", slot_before),
            ("answered_at > ?", answered_after),
            ("answered_at <= ?", answered_until),
            ("created_at > ?", created_after),
            ("kind <> ?", exclude_kind),
        ):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        if schedule_ids is not None:
            if not schedule_ids:
                return []
            clauses.append(f"schedule_id IN ({', '.join('?' * len(schedule_ids))})")
            params.extend(schedule_ids)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT {_FIRE_COLUMNS} FROM fires{where} ORDER BY slot, fire_id", params
        ).fetchall()
        return [_fire_dict(r) for r in rows]

    def first_fire_created_after(self, after: float) -> float | None:
        """When the first fire written after ``after`` was written (a failover benchmark
        measures a new leader's first write with it)."""
        row = self.conn.execute(
            "SELECT MIN(created_at) FROM fires WHERE created_at > ?", (after,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def count_settled_fires(self, app: str, slot_from: float, slot_before: float) -> int:
        """Fires of ``app`` with a slot in [slot_from, slot_before) that are answered or given
        up (neither pending nor delivering)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM fires WHERE app = ? AND slot >= ? AND slot < ? "
            "AND state NOT IN ('pending', 'delivering')",
            (app, slot_from, slot_before),
        ).fetchone()
        return int(row[0])
