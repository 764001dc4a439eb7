"""Agents, the brains that hold their connections, and the inventories agents report."""

from __future__ import annotations

import json
from typing import Any, Final

from z4j_brain.db import FORGET_AGENTS_LOCK
from z4j_brain.store.base import StoreBase
from z4j_core.wire.frames import ACTION_CAPABILITIES, Hello, Inventory

#: The ``counters`` row of the events dropped by agents since forgotten.
FORGOTTEN_DROPPED: Final = "dropped_by_forgotten_agents"


class AgentStore(StoreBase):
    def agent_connected(
        self,
        hello: Hello,
        labels: dict[str, str],
        token_name: str,
        session_id: str,
        now: float,
        *,
        brain_id: str | None = None,
    ) -> None:
        engines = json.dumps(
            [
                {
                    "name": e.name,
                    "version": e.version,
                    "capabilities": sorted(c.value for c in e.advertised),
                    "actions": sorted(c.value for c in e.advertised if c in ACTION_CAPABILITIES),
                }
                for e in hello.engines
            ]
        )
        self.conn.execute(
            "INSERT INTO agents (agent_instance, token_name, app, host, pid, engines, labels, "
            "agent_version, session_id, connected, connected_at, last_seen_at, brain_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) "
            "ON CONFLICT (agent_instance) DO UPDATE SET token_name = excluded.token_name, "
            "app = excluded.app, host = excluded.host, pid = excluded.pid, "
            "engines = excluded.engines, labels = excluded.labels, "
            "agent_version = excluded.agent_version, session_id = excluded.session_id, "
            "connected = 1, connected_at = excluded.connected_at, "
            "last_seen_at = excluded.last_seen_at, brain_id = excluded.brain_id",
            (
                hello.agent_instance,
                token_name,
                hello.app,
                hello.host,
                hello.pid,
                engines,
                json.dumps(labels, sort_keys=True),
                hello.agent_version,
                session_id,
                now,
                now,
                brain_id,
            ),
        )

    def agent_disconnected(self, agent_instance: str, session_id: str, now: float) -> None:
        """Mark the agent gone, unless a newer session of it has connected meanwhile."""
        self.conn.execute(
            "UPDATE agents SET connected = 0, last_seen_at = ? "
            "WHERE agent_instance = ? AND session_id = ?",
            (now, agent_instance, session_id),
        )

    def brain_alive(self, brain_id: str, host: str, pid: int, now: float) -> None:
        """Record that brain ``brain_id`` runs (at start, then every few seconds)."""
        self.conn.execute(
            "INSERT INTO brains (brain_id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (brain_id) DO UPDATE SET seen_at = excluded.seen_at",
            (brain_id, host, pid, now, now),
        )

    def disconnect_orphans(self, stale_before: float, now: float) -> int:
        """Forget brains not seen since ``stale_before`` (killed ones) and mark the agents that
        were connected to no live brain disconnected; returns how many agents."""
        self.conn.execute("DELETE FROM brains WHERE seen_at < ?", (stale_before,))
        return int(
            self.conn.execute(
                "UPDATE agents SET connected = 0, last_seen_at = ? WHERE connected = 1 AND "
                "(brain_id IS NULL OR brain_id NOT IN (SELECT brain_id FROM brains))",
                (now,),
            ).rowcount
        )

    def brain_gone(self, brain_id: str, now: float) -> None:
        """A clean stop: the brain's row goes, its agents are disconnected."""
        self.conn.execute("DELETE FROM brains WHERE brain_id = ?", (brain_id,))
        self.conn.execute(
            "UPDATE agents SET connected = 0, last_seen_at = ? "
            "WHERE brain_id = ? AND connected = 1",
            (now, brain_id),
        )

    def agent_dropped(self, agent_instance: str, total: int, reason: str, now: float) -> None:
        # Reports are cumulative per agent instance: never let a late one lower the count.
        self.conn.execute(
            "UPDATE agents SET dropped_total = CASE WHEN ? > dropped_total THEN ? "
            "ELSE dropped_total END, dropped_reason = ?, last_seen_at = ? "
            "WHERE agent_instance = ?",
            (total, total, reason, now, agent_instance),
        )

    def agent_seen(self, agent_instance: str, now: float) -> None:
        self.conn.execute(
            "UPDATE agents SET last_seen_at = ? WHERE agent_instance = ?", (now, agent_instance)
        )

    def agents(
        self, connected_only: bool = False, seen_since: float | None = None
    ) -> list[dict[str, Any]]:
        """Agents, most recently seen first; ``seen_since`` keeps those connected or seen at or
        after that time."""
        where, params = "", []
        if connected_only:
            where = " WHERE connected = 1"
        elif seen_since is not None:
            where, params = " WHERE connected = 1 OR last_seen_at >= ?", [seen_since]
        rows = self.conn.execute(
            "SELECT agent_instance, token_name, app, host, pid, engines, labels, agent_version, "
            "session_id, connected, connected_at, last_seen_at, dropped_total, dropped_reason "
            f"FROM agents{where} ORDER BY last_seen_at DESC, agent_instance",
            params,
        ).fetchall()
        result = []
        for r in rows:
            item = dict(r)
            item["engines"] = json.loads(item["engines"])
            item["labels"] = json.loads(item["labels"])
            item["connected"] = bool(item["connected"])
            result.append(item)
        return result

    def dropped_events_total(self) -> int:
        """Events the agents reported dropping, summed over every agent instance known, and
        those forgotten (``forget_agents``): it never goes down."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(dropped_total), 0) + (SELECT value FROM counters "
            f"WHERE name = '{FORGOTTEN_DROPPED}') FROM agents"
        ).fetchone()
        return int(row[0])

    def forget_agents(self, seen_before: float) -> int:
        """Forget the agents disconnected and not seen since ``seen_before``, with their
        inventories and last queue reports; their dropped events stay in the total. Returns
        how many agents went."""
        self.lock_for_transaction(FORGET_AGENTS_LOCK)
        gone = "SELECT agent_instance FROM agents WHERE connected = 0 AND last_seen_at < ?"
        self.conn.execute(
            "UPDATE counters SET value = value + (SELECT COALESCE(SUM(dropped_total), 0) FROM "
            f"agents WHERE agent_instance IN ({gone})) WHERE name = '{FORGOTTEN_DROPPED}'",
            (seen_before,),
        )
        for table in ("inventory", "queue_depths"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE agent_instance IN ({gone})", (seen_before,)
            )
        cursor = self.conn.execute(
            f"DELETE FROM agents WHERE agent_instance IN ({gone})", (seen_before,)
        )
        return max(cursor.rowcount, 0)

    def replace_inventory(self, agent_instance: str, inventory: Inventory, now: float) -> None:
        self.conn.execute(
            "INSERT INTO inventory (agent_instance, engine, app, tasks, schedules, queues, "
            "workers, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (agent_instance, engine, app) DO UPDATE SET tasks = excluded.tasks, "
            "schedules = excluded.schedules, queues = excluded.queues, "
            "workers = excluded.workers, updated_at = excluded.updated_at",
            (
                agent_instance,
                inventory.engine,
                inventory.app,
                _json(inventory.tasks),
                _json(inventory.schedules),
                json.dumps(inventory.queues),
                json.dumps(inventory.workers),
                now,
            ),
        )

    def inventory(self, agent_instance: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT agent_instance, engine, app, tasks, schedules, queues, workers, updated_at "
            "FROM inventory"
        )
        params: list[Any] = []
        if agent_instance is not None:
            sql += " WHERE agent_instance = ?"
            params.append(agent_instance)
        rows = self.conn.execute(sql + " ORDER BY agent_instance, engine, app", params)
        result = []
        for r in rows.fetchall():
            item = dict(r)
            for key in ("tasks", "schedules", "queues", "workers"):
                item[key] = json.loads(item[key])
            result.append(item)
        return result


def _json(value: Any) -> str:
    import msgspec

    return msgspec.json.encode(value).decode("utf-8")
