"""The console overview's figures: tasks finished per engine and time bucket, and fires by how
they went (on time, late, missed), over a recent window. Aggregated in SQL so the page reads a
few dozen rows however many tasks the window holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from z4j_brain.db import POSTGRES
from z4j_brain.store.base import StoreBase


def _apps_where(column: str, apps: Sequence[str] | None) -> tuple[str, list[Any]]:
    if apps is None:
        return "", []
    if not apps:
        return " AND 1 = 0", []
    return f" AND {column} IN ({', '.join('?' for _ in apps)})", list(apps)


class OverviewStore(StoreBase):
    def _bucket(self, column: str) -> str:
        # Values are never negative (the rows are at or after the window's start), so SQLite's
        # truncating CAST is a floor; Postgres rounds a CAST, so it floors explicitly.
        if self.dialect == POSTGRES:
            return f"FLOOR(({column} - ?) / ?)"
        return f"CAST(({column} - ?) / ? AS INTEGER)"

    def task_outcomes(
        self,
        since: float,
        bucket_seconds: float,
        apps: Sequence[str] | None = None,
        states: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Tasks whose latest state (one of ``states``; any when empty) changed at or after
        ``since``, counted by engine, bucket (``bucket_seconds`` wide, 0 the first) and state.
        Named states read the (state, updated_at, engine) index alone, never the rows."""
        within, params = _apps_where("app", apps)
        if states:
            within += f" AND state IN ({', '.join('?' for _ in states)})"
            params += list(states)
        bucket = self._bucket("updated_at")
        # Grouped by position: Postgres would not see the bucket's expression, with its own
        # parameters, as the selected one.
        rows = self.conn.execute(
            f"SELECT engine, {bucket} AS bucket, state, COUNT(*) AS n FROM tasks "
            f"WHERE updated_at >= ?{within} GROUP BY 1, 2, 3",
            [since, bucket_seconds, since, *params],
        ).fetchall()
        return [
            {"engine": str(r[0]), "bucket": int(r[1]), "state": str(r[2]), "count": int(r[3])}
            for r in rows
        ]

    def fire_timeliness(
        self, since: float, late_after: float, apps: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Fires of slots at or after ``since``: how many were sent within ``late_after``
        seconds of their slot (``on_time``), later (``late``), went ``missed`` or ``unknown``
        (``missed``), or are not sent yet (``waiting``)."""
        within, params = _apps_where("app", apps)
        rows = self.conn.execute(
            "SELECT CASE WHEN state IN ('missed', 'unknown') THEN 'missed' "
            "WHEN sent_at IS NULL THEN 'waiting' "
            "WHEN sent_at - slot <= ? THEN 'on_time' ELSE 'late' END AS how, COUNT(*) "
            f"FROM fires WHERE slot >= ?{within} GROUP BY 1",
            [late_after, since, *params],
        ).fetchall()
        counts = {"on_time": 0, "late": 0, "missed": 0, "waiting": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts
