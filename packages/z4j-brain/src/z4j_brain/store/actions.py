"""Actions operators asked for (retry, cancel, purge), bulk actions, and queue depths.

An action row never holds a task's arguments: a retry's arguments come from the engine or the
agent's host, never from the brain. The retry links (``retry_of``, ``retried_as``) are read
from the rows of done retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from z4j_brain.paging import KEYS, decode_cursor
from z4j_brain.store.base import StoreBase, keyset
from z4j_core.wire.frames import QueueReport

ACTION_COLUMNS: Final = (
    "action_id, kind, engine, app, task_id, task, queue, options, status, reason, new_task_id, "
    "count, agent_instance, bulk_id, requested_by, requested_from, requested_at, finished_at"
)
#: Statuses of an action that has not ended yet.
OPEN_ACTION_STATUSES: Final = ("pending", "unknown")
#: Most task ids looked up in one ``IN (...)`` (SQLite's default variable limit is 999+).
_CHUNK: Final = 500


class ActionStore(StoreBase):
    def insert_action(
        self,
        *,
        action_id: str,
        kind: str,
        engine: str,
        app: str,
        task_id: str | None,
        task: str | None,
        queue: str | None,
        options: dict[str, Any],
        status: str,
        reason: str,
        agent_instance: str | None,
        bulk_id: str | None,
        requested_by: str,
        requested_from: str,
        requested_at: float,
    ) -> None:
        finished = None if status in OPEN_ACTION_STATUSES else requested_at
        self.conn.execute(
            f"INSERT INTO actions ({ACTION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?)",
            (
                action_id,
                kind,
                engine,
                app,
                task_id,
                task,
                queue,
                json.dumps(options, sort_keys=True),
                status,
                reason,
                agent_instance,
                bulk_id,
                requested_by,
                requested_from,
                requested_at,
                finished,
            ),
        )

    def answer_action(
        self,
        action_id: str,
        *,
        status: str,
        reason: str,
        new_task_id: str | None,
        count: int | None,
        now: float,
        agent_instance: str | None = None,
    ) -> None:
        """Record an agent's answer; a late answer replaces ``unknown``, never a real one (and,
        given ``agent_instance``, only the agent the action went to may give it)."""
        sql = (
            "UPDATE actions SET status = ?, reason = ?, new_task_id = ?, count = ?, "
            "finished_at = ? WHERE action_id = ? AND status IN ('pending', 'unknown')"
        )
        params: list[Any] = [status, reason, new_task_id, count, now, action_id]
        if agent_instance is not None:
            sql += " AND agent_instance = ?"
            params.append(agent_instance)
        self.conn.execute(
            sql,
            params,
        )

    def action(self, action_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {ACTION_COLUMNS} FROM actions WHERE action_id = ?", (action_id,)
        ).fetchone()
        return None if row is None else _action_dict(row)

    def actions(
        self,
        *,
        task_id: str | None = None,
        bulk_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        apps: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Actions, newest first (then by action id, descending); ``task_id`` matches the task
        acted on or a retry's new run; ``cursor`` (a ``next_cursor``) starts after that action;
        ``apps`` (when given) keeps only those apps' actions. Raises ``CursorError`` for a
        malformed cursor."""
        clauses: list[str] = []
        params: list[Any] = []
        if task_id is not None:
            clauses.append("(task_id = ? OR new_task_id = ?)")
            params += [task_id, task_id]
        if bulk_id is not None:
            clauses.append("bulk_id = ?")
            params.append(bulk_id)
        if apps is not None:
            clauses.append(f"app IN ({', '.join('?' * len(apps))})" if apps else "1 = 0")
            params += apps
        if cursor is not None:
            after, more = keyset(KEYS["actions"], decode_cursor("actions", cursor), descending=True)
            clauses.append(after)
            params += more
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT {ACTION_COLUMNS} FROM actions{where} "
            "ORDER BY requested_at DESC, action_id DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [_action_dict(r) for r in rows]

    def action_counts(self, bulk_id: str) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, COUNT(*) FROM actions WHERE bulk_id = ? GROUP BY status", (bulk_id,)
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def retry_links(
        self, tasks: Iterable[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], list[str]]]:
        """For (engine, task id) pairs: the run each retried (``retry_of``) and the runs each
        was retried as (``retried_as``, oldest first), from done retries."""
        wanted = list(dict.fromkeys(tasks))
        retry_of: dict[tuple[str, str], str] = {}
        retried_as: dict[tuple[str, str], list[str]] = {}
        for start in range(0, len(wanted), _CHUNK):
            ids = [task_id for _, task_id in wanted[start : start + _CHUNK]]
            marks = ", ".join("?" * len(ids))
            rows = self.conn.execute(
                "SELECT engine, task_id, new_task_id FROM actions WHERE kind = 'retry' AND "
                f"status = 'done' AND new_task_id IS NOT NULL AND (new_task_id IN ({marks}) "
                f"OR task_id IN ({marks})) ORDER BY requested_at, action_id",
                [*ids, *ids],
            ).fetchall()
            for engine, old, new in rows:
                retry_of[(engine, new)] = old
                retried_as.setdefault((engine, old), []).append(new)
        return retry_of, retried_as

    # -- bulk actions ----------------------------------------------------------------------------

    def insert_bulk(
        self,
        *,
        bulk_id: str,
        kind: str,
        criteria: dict[str, Any],
        matched: int,
        requested_by: str,
        requested_from: str,
        requested_at: float,
    ) -> None:
        self.conn.execute(
            "INSERT INTO bulk_actions (bulk_id, kind, filter, matched, requested_by, "
            "requested_from, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                bulk_id,
                kind,
                json.dumps(criteria, sort_keys=True),
                matched,
                requested_by,
                requested_from,
                requested_at,
            ),
        )

    def finish_bulk(self, bulk_id: str, now: float) -> None:
        self.conn.execute(
            "UPDATE bulk_actions SET finished_at = ? WHERE bulk_id = ?", (now, bulk_id)
        )

    def bulk(self, bulk_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT bulk_id, kind, filter, matched, requested_by, requested_from, requested_at, "
            "finished_at FROM bulk_actions WHERE bulk_id = ?",
            (bulk_id,),
        ).fetchone()
        if row is None:
            return None
        item = dict(row)
        item["filter"] = json.loads(item["filter"])
        item["counts"] = self.action_counts(bulk_id)
        return item

    def tasks_matching(
        self,
        *,
        states: Iterable[str],
        name: str | None,
        engine: str | None,
        app: str | None,
        updated_since: float | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Tasks a bulk action acts on: (engine, task_id, name, app, queue, state,
        state_agent, state_host), oldest update first."""
        where, params = _bulk_where(states, name, engine, app, updated_since)
        rows = self.conn.execute(
            "SELECT t.engine, t.task_id, t.name, t.app, t.queue, t.state, t.state_agent, "
            "a.host AS state_host FROM tasks t LEFT JOIN agents a "
            "ON a.agent_instance = t.state_agent "
            f"WHERE {where} ORDER BY t.updated_at, t.task_id LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [dict(r) for r in rows]

    def count_tasks_matching(
        self,
        *,
        states: Iterable[str],
        name: str | None,
        engine: str | None,
        app: str | None,
        updated_since: float | None,
    ) -> int:
        where, params = _bulk_where(states, name, engine, app, updated_since)
        row = self.conn.execute(f"SELECT COUNT(*) FROM tasks t WHERE {where}", params).fetchone()
        return int(row[0])

    def task_row(self, task_id: str, engine: str | None) -> list[dict[str, Any]]:
        """The tasks of that id (one per engine, or the one of ``engine``), with the agent that
        reported the latest state and its host."""
        sql = (
            "SELECT t.engine, t.task_id, t.name, t.app, t.queue, t.state, t.state_agent, "
            "a.host AS state_host FROM tasks t LEFT JOIN agents a "
            "ON a.agent_instance = t.state_agent WHERE t.task_id = ?"
        )
        params: list[Any] = [task_id]
        if engine is not None:
            sql += " AND t.engine = ?"
            params.append(engine)
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    # -- queue depths ----------------------------------------------------------------------------

    def replace_queue_depths(self, agent_instance: str, report: QueueReport, now: float) -> None:
        self.conn.execute(
            "DELETE FROM queue_depths WHERE agent_instance = ? AND engine = ? AND app = ?",
            (agent_instance, report.engine, report.app),
        )
        for depth in report.queues:
            self.conn.execute(
                "INSERT INTO queue_depths (agent_instance, engine, app, queue, ready, scheduled, "
                "running, failed, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (agent_instance, engine, app, queue) DO NOTHING",
                (
                    agent_instance,
                    report.engine,
                    report.app,
                    depth.name,
                    depth.ready,
                    depth.scheduled,
                    depth.running,
                    depth.failed,
                    now,
                ),
            )

    def queue_apps(self, engine: str, queue: str) -> list[str]:
        """The apps whose agents reported ``queue`` of ``engine``, or whose tasks ran there."""
        rows = self.conn.execute(
            "SELECT app FROM queue_depths WHERE engine = ? AND queue = ? "
            "UNION SELECT app FROM tasks WHERE engine = ? AND queue = ? AND app IS NOT NULL",
            (engine, queue, engine, queue),
        ).fetchall()
        return sorted({str(r[0]) for r in rows})

    def queue_depths(
        self, engine: str | None = None, app: str | None = None
    ) -> list[dict[str, Any]]:
        """The freshest report of each (engine, app, queue) from a connected agent."""
        clauses = ["a.connected = 1"]
        params: list[Any] = []
        for column, value in (("q.engine", engine), ("q.app", app)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        rows = self.conn.execute(
            "SELECT q.engine, q.app, q.queue, q.ready, q.scheduled, q.running, q.failed, "
            "q.agent_instance AS agent, q.updated_at FROM queue_depths q JOIN agents a "
            f"ON a.agent_instance = q.agent_instance WHERE {' AND '.join(clauses)} "
            "ORDER BY q.engine, q.app, q.queue, q.updated_at DESC",
            params,
        ).fetchall()
        freshest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in rows:
            item = dict(r)
            freshest.setdefault((item["engine"], item["app"], item["queue"]), item)
        return list(freshest.values())


def _action_dict(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["action"] = item.pop("kind")
    item["options"] = json.loads(item["options"])
    return item


def _bulk_where(
    states: Iterable[str],
    name: str | None,
    engine: str | None,
    app: str | None,
    updated_since: float | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (over ``tasks t``) and its parameters of a bulk action's filter."""
    chosen = list(states)
    clauses = [f"t.state IN ({', '.join('?' * len(chosen))})"]
    params: list[Any] = list(chosen)
    for column, value in (("t.name", name), ("t.engine", engine), ("t.app", app)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if updated_since is not None:
        clauses.append("t.updated_at >= ?")
        params.append(updated_since)
    return " AND ".join(clauses), params
