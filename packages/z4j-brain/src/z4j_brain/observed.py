"""Native schedules the agents observe (celery beat, rq cron, huey periodic tasks...), listed
once each per (engine, app, source, name), however many agents report them.

An agent's inventory stands while it is connected (agents resend it only when it changes), so
an agent connected now still reports what its inventory lists; a disconnected one reported it
until it was last seen. A schedule no connected agent reports, last reported longer ago than
``STALE_AFTER_SECONDS``, is shown ``stale``, never dropped. Pure over the store's inventory and
agent rows; reads no clock (``now`` is passed in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

#: How long after its last report a native schedule no connected agent reports is ``stale``:
#: long enough to ride out a worker's restart or a deploy, short enough that a scheduler that
#: was removed stops looking live within the hour.
STALE_AFTER_SECONDS: Final = 600.0


def observed_schedules(
    inventories: Iterable[Mapping[str, Any]],
    agents: Iterable[Mapping[str, Any]],
    now: float,
) -> list[dict[str, Any]]:
    """One item per (engine, app, source, name) (``shapes.Observed``), by engine, app, name:
    the schedule as its newest report spells it, the agents that report it and when each last
    did, and whether it is stale."""
    by_agent = {a["agent_instance"]: a for a in agents}
    grouped: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for inventory in inventories:
        agent = by_agent.get(inventory["agent_instance"])
        connected = bool(agent and agent["connected"])
        if connected:
            reported_at = now
        elif agent is not None:
            reported_at = max(float(agent["last_seen_at"]), float(inventory["updated_at"]))
        else:
            reported_at = float(inventory["updated_at"])
        for native in inventory["schedules"]:
            key = (inventory["engine"], inventory["app"], native["source"], native["name"])
            item = grouped.get(key)
            if item is None or reported_at > item["last_reported_at"]:
                seen = [] if item is None else item["agents"]
                item = {
                    "engine": inventory["engine"],
                    "app": inventory["app"],
                    "source": native["source"],
                    "name": native["name"],
                    "task": native["task"],
                    "kind": native["kind"],
                    "expression": native["expression"],
                    "next_runs": list(native.get("next_runs") or []),
                    "agents": seen,
                    "last_reported_at": reported_at,
                }
                grouped[key] = item
            item["agents"].append(
                {
                    "agent_instance": inventory["agent_instance"],
                    "connected": connected,
                    "reported_at": reported_at,
                }
            )
    result = []
    for key in sorted(grouped):
        item = grouped[key]
        item["agents"].sort(key=lambda a: (-a["reported_at"], a["agent_instance"]))
        anyone = any(a["connected"] for a in item["agents"])
        item["stale"] = not anyone and now - item["last_reported_at"] > STALE_AFTER_SECONDS
        result.append(item)
    return result
