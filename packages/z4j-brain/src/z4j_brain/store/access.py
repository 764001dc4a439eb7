"""Commands sent to agents and their answers, and the tokens agents and operators present."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from z4j_brain.db import IntegrityError
from z4j_brain.store.base import Arrays, StoreBase, StoreError


class NewCommand(NamedTuple):
    """A command to record as ``pending`` before it is sent."""

    command_id: str
    agent_instance: str
    kind: str
    engine: str
    app: str
    task: str
    payload: dict[str, Any]
    fire_id: str | None
    created_at: float
    deadline_at: float


@dataclass(frozen=True)
class TokenRow:
    name: str
    token_hash: str
    labels: dict[str, str]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    #: The app (and engine) an agent using it may present; None: unbound (any).
    app: str | None = None
    engine: str | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class OperatorRow:
    name: str
    token_hash: str
    role: str
    apps: list[str]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    rotated_at: float | None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class SessionRow:
    session_hash: str
    operator: str
    credential_hash: str
    source: str
    created_at: float
    last_seen_at: float
    expires_at: float
    revoked_at: float | None


#: An answer is recorded once; a late real answer replaces ``unknown`` (no answer by the deadline).
_ANSWER_COMMAND = (
    "UPDATE commands SET status = ?, native_id = ?, reason = ?, answered_at = ? "
    "WHERE command_id = ? AND status IN ('pending', 'unknown')"
)

_PG_ANSWER_COMMANDS: Final = Arrays(
    "UPDATE commands AS c SET status = v.status, native_id = v.native, reason = v.reason, "
    "answered_at = v.at FROM {rows} AS v(status, native, reason, at, command_id) "
    "WHERE c.command_id = v.command_id AND c.status IN ('pending', 'unknown')",
    ("text[]", "text[]", "text[]", "float8[]", "text[]"),
    key=4,
)
_PG_INSERT_COMMANDS: Final = Arrays(
    "INSERT INTO commands (command_id, agent_instance, kind, engine, app, task, payload, "
    "fire_id, status, created_at, deadline_at) SELECT command_id, agent, kind, engine, app, "
    "task, payload, fire_id, 'pending', created_at, deadline_at FROM {rows} AS v(command_id, "
    "agent, kind, engine, app, task, payload, fire_id, created_at, deadline_at)",
    ("text[]",) * 8 + ("float8[]", "float8[]"),
)


class CommandStore(StoreBase):
    def insert_command(
        self,
        *,
        command_id: str,
        agent_instance: str,
        kind: str,
        engine: str,
        app: str,
        task: str,
        payload: dict[str, Any],
        fire_id: str | None,
        created_at: float,
        deadline_at: float,
    ) -> None:
        command = NewCommand(command_id, agent_instance, kind, engine, app, task, payload,
                             fire_id, created_at, deadline_at)  # fmt: skip
        self.insert_commands([command])

    def insert_commands(self, commands: Sequence[NewCommand]) -> None:
        """Record ``pending`` commands, in one statement (a tick's claimed fires)."""
        self.many(
            "INSERT INTO commands (command_id, agent_instance, kind, engine, app, task, payload, "
            "fire_id, status, created_at, deadline_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            [(*c[:6], json.dumps(c.payload, sort_keys=True), *c[7:]) for c in commands],
            _PG_INSERT_COMMANDS,
        )

    def purge_commands(self, cutoff: float, limit: int) -> int:
        """Delete up to ``limit`` commands created before ``cutoff``, oldest first; how many
        went (a fire keeps its own copy of the answer: agent, state, job id)."""
        cursor = self.conn.execute(
            "DELETE FROM commands WHERE command_id IN (SELECT command_id FROM commands "
            "WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            (cutoff, limit),
        )
        return max(cursor.rowcount, 0)

    def answer_command(
        self,
        command_id: str,
        status: str,
        native_id: str | None,
        reason: str,
        now: float,
        *,
        agent_instance: str | None = None,
    ) -> bool:
        """Record how a command ended; False if it was already answered (or, given
        ``agent_instance``, went to another agent). A late real answer replaces ``unknown``
        (recorded when the deadline passed without one)."""
        sql = _ANSWER_COMMAND
        params: list[Any] = [status, native_id, reason, now, command_id]
        if agent_instance is not None:
            sql += " AND agent_instance = ?"
            params.append(agent_instance)
        return self.conn.execute(sql, params).rowcount == 1

    def answer_commands(self, answers: Sequence[tuple[str, str, str | None, str, float]]) -> None:
        """``answer_command`` for many (command id, status, native id, reason, now), in one
        statement: a tick's answers."""
        self.many(
            _ANSWER_COMMAND,
            [(status, native_id, reason, now, command_id)
             for command_id, status, native_id, reason, now in answers],
            _PG_ANSWER_COMMANDS,
        )  # fmt: skip

    def command(self, command_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT command_id, agent_instance, kind, engine, app, task, payload, fire_id, "
            "status, native_id, reason, created_at, deadline_at, answered_at "
            "FROM commands WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        item = dict(row)
        item["payload"] = json.loads(item["payload"])
        return item


class TokenStore(StoreBase):
    def create_token(
        self,
        name: str,
        token_hash_hex: str,
        labels: dict[str, str],
        now: float,
        expires_at: float | None,
        *,
        app: str | None = None,
        engine: str | None = None,
    ) -> None:
        try:
            self.conn.execute(
                "INSERT INTO tokens (name, token_hash, labels, created_at, expires_at, app, "
                "engine) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    token_hash_hex,
                    json.dumps(labels, sort_keys=True),
                    now,
                    expires_at,
                    app,
                    engine,
                ),
            )
        except IntegrityError:
            raise StoreError(
                f"a token named {name!r} already exists (names stay taken after revoke)"
            ) from None

    def revoke_token(self, name: str, now: float) -> bool:
        """Revoke ``name``; False if there is no such token. Revoking twice keeps the first time."""
        cursor = self.conn.execute(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?", (now, name)
        )
        return cursor.rowcount == 1

    def token_rows(self) -> list[TokenRow]:
        rows = self.conn.execute(
            "SELECT name, token_hash, labels, created_at, expires_at, revoked_at, app, engine "
            "FROM tokens ORDER BY name"
        ).fetchall()
        return [
            TokenRow(
                name=r["name"],
                token_hash=r["token_hash"],
                labels=json.loads(r["labels"]),
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                revoked_at=r["revoked_at"],
                app=r["app"],
                engine=r["engine"],
            )
            for r in rows
        ]

    def admin_token_hash(self) -> str | None:
        row = self.conn.execute(
            "SELECT token_hash FROM admin_tokens WHERE name = 'admin'"
        ).fetchone()
        return None if row is None else str(row[0])

    def set_admin_token_hash(self, token_hash_hex: str, now: float) -> None:
        self.conn.execute(
            "INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ('admin', ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, "
            "created_at = excluded.created_at",
            (token_hash_hex, now),
        )

    # -- operators -------------------------------------------------------------------------------

    def create_operator(
        self,
        name: str,
        token_hash_hex: str,
        role: str,
        apps: list[str],
        *,
        now: float,
        expires_at: float | None,
    ) -> None:
        try:
            self.conn.execute(
                "INSERT INTO operators (name, token_hash, role, apps, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, token_hash_hex, role, json.dumps(apps), now, expires_at),
            )
        except IntegrityError:
            raise StoreError(
                f"an operator named {name!r} already exists (names stay taken after revoke)"
            ) from None

    def revoke_operator(self, name: str, now: float) -> bool:
        """Revoke ``name`` and end its sessions; False if there is no such operator."""
        cursor = self.conn.execute(
            "UPDATE operators SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?", (now, name)
        )
        self.conn.execute(
            "UPDATE web_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE operator = ?",
            (now, name),
        )
        return cursor.rowcount == 1

    def rotate_operator(self, name: str, token_hash_hex: str, now: float) -> bool:
        """Give a live operator a new token (the old one and its sessions stop); False if there
        is no such live operator."""
        cursor = self.conn.execute(
            "UPDATE operators SET token_hash = ?, rotated_at = ? "
            "WHERE name = ? AND revoked_at IS NULL",
            (token_hash_hex, now, name),
        )
        if cursor.rowcount != 1:
            return False
        self.conn.execute(
            "UPDATE web_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE operator = ?",
            (now, name),
        )
        return True

    def operator_rows(self) -> list[OperatorRow]:
        rows = self.conn.execute(
            "SELECT name, token_hash, role, apps, created_at, expires_at, revoked_at, rotated_at "
            "FROM operators ORDER BY name"
        ).fetchall()
        return [
            OperatorRow(
                name=r["name"],
                token_hash=r["token_hash"],
                role=r["role"],
                apps=json.loads(r["apps"]),
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                revoked_at=r["revoked_at"],
                rotated_at=r["rotated_at"],
            )
            for r in rows
        ]

    def operator(self, name: str) -> OperatorRow | None:
        found = [r for r in self.operator_rows() if r.name == name]
        return found[0] if found else None

    # -- web sessions ----------------------------------------------------------------------------

    def create_session(self, row: SessionRow) -> None:
        self.conn.execute(
            "INSERT INTO web_sessions (session_hash, operator, credential_hash, source, "
            "created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.session_hash,
                row.operator,
                row.credential_hash,
                row.source,
                row.created_at,
                row.last_seen_at,
                row.expires_at,
            ),
        )

    def session(self, session_hash: str) -> SessionRow | None:
        r = self.conn.execute(
            "SELECT session_hash, operator, credential_hash, source, created_at, last_seen_at, "
            "expires_at, revoked_at FROM web_sessions WHERE session_hash = ?",
            (session_hash,),
        ).fetchone()
        return None if r is None else SessionRow(**dict(r))

    def touch_session(self, session_hash: str, now: float) -> None:
        self.conn.execute(
            "UPDATE web_sessions SET last_seen_at = ? WHERE session_hash = ?", (now, session_hash)
        )

    def end_session(self, session_hash: str, now: float) -> bool:
        cursor = self.conn.execute(
            "UPDATE web_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE session_hash = ?",
            (now, session_hash),
        )
        return cursor.rowcount == 1

    def purge_sessions(self, before: float) -> int:
        """Forget sessions that ended or expired before ``before``."""
        cursor = self.conn.execute(
            "DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at < ?", (before, before)
        )
        return max(cursor.rowcount, 0)

    def known_apps(self) -> list[str]:
        """Every app an agent presented or a schedule names (what a scope can match)."""
        rows = self.conn.execute(
            "SELECT app FROM agents UNION SELECT app FROM schedules ORDER BY app"
        ).fetchall()
        return [str(r[0]) for r in rows]
