"""The audit log: one row per mutation, each HMAC-chained to the one before.

Owns the key (``Z4J_AUDIT_KEY``, else a file outside the database created on first start), the
canonical form a row's HMAC covers, appending a row inside the caller's transaction, and
verifying the chain. Never stores the key in the database and never logs it. An ``AuditLog``
is shared by threads: it holds only the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from z4j_brain.db import AUDIT_LOCK
from z4j_brain.store import Store

__all__ = ["AUDIT_LOCK", "Actor", "AuditKeyError", "AuditLog", "VerifyResult", "load_key"]

GENESIS: Final = "0" * 64


class AuditKeyError(Exception):
    """The audit key cannot be read or created; the message says where and what to do."""


def load_key(configured: str | None, key_file: Path | None) -> bytes:
    """The configured key, else the key file's (created with a fresh key if absent)."""
    if configured:
        return configured.encode()
    if key_file is None:
        raise AuditKeyError("no audit key: set Z4J_AUDIT_KEY")
    try:
        text = key_file.read_text().strip()
    except FileNotFoundError:
        text = secrets.token_hex(32)
        try:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another brain created it meanwhile
            return load_key(None, key_file)
        except OSError as exc:
            raise AuditKeyError(
                f"cannot create the audit key file {key_file}: {exc.strerror} "
                "(set Z4J_AUDIT_KEY instead)"
            ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit key file {key_file}: {exc.strerror}") from None
    if len(text) < 16:
        raise AuditKeyError(f"the audit key in {key_file} is shorter than 16 characters")
    return text.encode()


def canonical(row: dict[str, Any]) -> bytes:
    """What a row's HMAC covers: every column but the HMAC, as sorted compact JSON."""
    content = {
        "seq": int(row["seq"]),
        "at": repr(float(row["at"])),
        "actor": row["actor"],
        "source": row["source"],
        "action": row["action"],
        "target": row["target"],
        "before": row["before_state"],
        "after": row["after_state"],
        "prev": row["prev_hmac"],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Actor:
    """Who made a change (the token's name) and from where (an address, or ``local``)."""

    name: str
    source: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    bad_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "count": self.count, "bad_seq": self.bad_seq, "reason": self.reason}


class AuditLog:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, row: dict[str, Any]) -> str:
        return hmac.new(self._key, canonical(row), hashlib.sha256).hexdigest()

    def append(
        self,
        store: Store,
        *,
        actor: Actor,
        action: str,
        target: str,
        before: Any,
        after: Any,
        now: float,
    ) -> int:
        """Add a row inside the caller's transaction; returns its sequence number."""
        store.lock_audit()
        last = store.last_audit()
        seq = 1 if last is None else last[0] + 1
        row = {
            "seq": seq,
            "at": now,
            "actor": actor.name,
            "source": actor.source,
            "action": action,
            "target": target,
            "before_state": None if before is None else _json(before),
            "after_state": None if after is None else _json(after),
            "prev_hmac": GENESIS if last is None else last[1],
        }
        row["hmac"] = self.sign(row)
        store.insert_audit(row)
        return seq

    def verify(self, store: Store) -> VerifyResult:
        """Walk the chain from the first row; stop at the first row that does not match."""
        previous = GENESIS
        count = 0
        expected_seq = 1
        after = 0
        while True:
            rows = store.audit_rows(after, 1000)
            if not rows:
                return VerifyResult(True, count)
            for row in rows:
                seq = int(row["seq"])
                if seq != expected_seq:
                    return VerifyResult(
                        False, count, expected_seq, f"row {expected_seq} is missing"
                    )
                if row["prev_hmac"] != previous:
                    return VerifyResult(
                        False, count, seq, "its previous-HMAC does not match the row before"
                    )
                if not hmac.compare_digest(self.sign(row), str(row["hmac"])):
                    return VerifyResult(False, count, seq, "its HMAC does not match its content")
                previous = str(row["hmac"])
                count += 1
                expected_seq += 1
                after = seq


def list_rows(store: Store, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """``store.audit_entries`` (kept for callers of this module)."""
    return store.audit_entries(after, limit)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
