"""Native twins: native schedules that agents observe for the same engine, app and task as a
brain schedule, so the task runs for both (typically right after `z4j schedules adopt`, until
the native one is removed).

Owns matching a schedule against the stored inventories (one entry per source and name,
whichever agents report it) and saying, per native scheduler, how to remove the twin (the
hints are the core's, `z4j_core.scheduling.adopt.remove_hint`). Pure: the caller reads the
store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from z4j_brain.store import ScheduleRow
from z4j_core.scheduling.adopt import remove_hint


def native_twins(row: ScheduleRow, inventory: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The native schedules of `row`'s engine, app and task, by (source, name), with the
    agents that report each and how to remove it."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for item in inventory:
        if item["engine"] != row.engine or item["app"] != row.app:
            continue
        for native in item.get("schedules") or []:
            if native.get("task") != row.task:
                continue
            source, name = str(native.get("source")), str(native.get("name"))
            twin = found.setdefault(
                (source, name),
                {
                    "source": source,
                    "name": name,
                    "expression": str(native.get("expression", "")),
                    "agents": [],
                    "remove": remove_hint(source, name),
                },
            )
            twin["agents"].append(str(item["agent_instance"]))
    return [found[key] for key in sorted(found)]
