"""The audit table: appending a chained row and reading rows in order. The chain itself (the
key, the canonical form, verification) is ``z4j_brain.audit``'s."""

from __future__ import annotations

import json
from typing import Any, Final

from z4j_brain.db import AUDIT_LOCK
from z4j_brain.paging import decode_cursor
from z4j_brain.store.base import StoreBase

AUDIT_COLUMNS: Final = (
    "seq",
    "at",
    "actor",
    "source",
    "action",
    "target",
    "before_state",
    "after_state",
    "prev_hmac",
    "hmac",
)


class AuditStore(StoreBase):
    def lock_audit(self) -> None:
        """Serialise appends across brains sharing Postgres (sequence and previous HMAC),
        until the transaction ends."""
        self.lock_for_transaction(AUDIT_LOCK)

    def last_audit(self) -> tuple[int, str] | None:
        """The newest row's sequence number and HMAC."""
        row = self.conn.execute("SELECT seq, hmac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def insert_audit(self, row: dict[str, Any]) -> None:
        """A row with every column of ``AUDIT_COLUMNS`` (states as JSON text)."""
        self.conn.execute(
            f"INSERT INTO audit ({', '.join(AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})",
            tuple(row[c] for c in AUDIT_COLUMNS),
        )

    def audit_rows(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows after sequence number ``after``, in order, as stored (what the HMAC covers)."""
        rows = self.conn.execute(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def audit_entries(
        self, after: int = 0, limit: int = 100, cursor: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows as the API shows them: ``before`` and ``after`` decoded; ``cursor`` (a
        ``next_cursor``) starts after that row (as ``after`` does with its sequence number).
        Raises ``CursorError`` for a malformed cursor."""
        if cursor is not None:
            (seq,) = decode_cursor("audit", cursor)
            after = max(after, seq)
        result = []
        for item in self.audit_rows(after, limit):
            item["before"] = json.loads(item.pop("before_state") or "null")
            item["after"] = json.loads(item.pop("after_state") or "null")
            result.append(item)
        return result
