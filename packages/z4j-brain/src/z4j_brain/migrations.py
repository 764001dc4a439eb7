"""The store's schema, as numbered migrations applied in order at start.

Owns every ``CREATE`` the brain runs. The SQL is kept portable between SQLite and Postgres
(no ``AUTOINCREMENT``, no ``WITHOUT ROWID``, times as ``DOUBLE PRECISION`` epoch seconds, JSON
as ``TEXT``, hashes as lowercase hex ``TEXT``) so a Postgres store can run the same list.
Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

from typing import Final

#: (version, statements). ``schema_version`` holds the highest version applied.
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE tokens (
                name TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL UNIQUE,
                labels TEXT NOT NULL DEFAULT '{}',
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION
            )""",
            """CREATE TABLE admin_tokens (
                name TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE agents (
                agent_instance TEXT PRIMARY KEY,
                token_name TEXT NOT NULL,
                app TEXT NOT NULL,
                host TEXT NOT NULL,
                pid BIGINT NOT NULL,
                engines TEXT NOT NULL,
                labels TEXT NOT NULL,
                agent_version TEXT NOT NULL,
                session_id TEXT,
                connected INTEGER NOT NULL DEFAULT 0,
                connected_at DOUBLE PRECISION,
                last_seen_at DOUBLE PRECISION,
                dropped_total BIGINT NOT NULL DEFAULT 0,
                dropped_reason TEXT NOT NULL DEFAULT ''
            )""",
            """CREATE TABLE events (
                agent_instance TEXT NOT NULL,
                seq BIGINT NOT NULL,
                position BIGINT NOT NULL,
                stored_at DOUBLE PRECISION NOT NULL,
                app TEXT NOT NULL,
                kind TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                engine TEXT NOT NULL,
                task_id TEXT NOT NULL,
                task_name TEXT NOT NULL,
                queue TEXT,
                worker TEXT,
                args TEXT,
                kwargs TEXT,
                result TEXT,
                runtime DOUBLE PRECISION,
                retries INTEGER,
                exception TEXT,
                message TEXT,
                traceback TEXT,
                fire_id TEXT,
                extra TEXT,
                PRIMARY KEY (agent_instance, seq)
            )""",
            "CREATE UNIQUE INDEX events_position ON events (position)",
            "CREATE INDEX events_task ON events (task_id, engine)",
            "CREATE INDEX events_stored_at ON events (stored_at)",
            """CREATE TABLE tasks (
                engine TEXT NOT NULL,
                task_id TEXT NOT NULL,
                name TEXT NOT NULL,
                state TEXT NOT NULL,
                state_rank INTEGER NOT NULL,
                state_agent TEXT NOT NULL,
                state_seq BIGINT NOT NULL,
                app TEXT,
                queue TEXT,
                worker TEXT,
                enqueued_at DOUBLE PRECISION,
                received_at DOUBLE PRECISION,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                runtime DOUBLE PRECISION,
                retries INTEGER,
                exception TEXT,
                message TEXT,
                traceback TEXT,
                fire_id TEXT,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (engine, task_id)
            )""",
            "CREATE INDEX tasks_updated_at ON tasks (updated_at)",
            "CREATE INDEX tasks_state ON tasks (state)",
            """CREATE TABLE inventory (
                agent_instance TEXT NOT NULL,
                engine TEXT NOT NULL,
                app TEXT NOT NULL,
                tasks TEXT NOT NULL,
                schedules TEXT NOT NULL,
                queues TEXT NOT NULL,
                workers TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (agent_instance, engine, app)
            )""",
            """CREATE TABLE commands (
                command_id TEXT PRIMARY KEY,
                agent_instance TEXT NOT NULL,
                kind TEXT NOT NULL,
                engine TEXT NOT NULL,
                app TEXT NOT NULL,
                task TEXT NOT NULL,
                payload TEXT NOT NULL,
                fire_id TEXT,
                status TEXT NOT NULL,
                native_id TEXT,
                reason TEXT NOT NULL DEFAULT '',
                created_at DOUBLE PRECISION NOT NULL,
                deadline_at DOUBLE PRECISION NOT NULL,
                answered_at DOUBLE PRECISION
            )""",
            "CREATE INDEX commands_fire_id ON commands (fire_id)",
        ),
    ),
    (
        2,
        (
            # Brains sharing a database (Postgres), each alive while it refreshes seen_at;
            # an agent's row names the brain it is connected to.
            """CREATE TABLE brains (
                brain_id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                pid BIGINT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                seen_at DOUBLE PRECISION NOT NULL
            )""",
            "ALTER TABLE agents ADD COLUMN brain_id TEXT",
        ),
    ),
    (
        3,
        (
            # Schedules the brain owns. ``schedule_id`` is immutable (fire ids derive from it);
            # ``name`` is unique and may change. ``spec`` is the core's ``to_dict()``; ``cursor``
            # is the newest slot settled (epoch seconds), advanced by the leader in the same
            # transaction as the fires it writes; ``version`` grows with every edit so leaders
            # on other brains see what changed.
            """CREATE TABLE schedules (
                schedule_id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                task TEXT NOT NULL,
                engine TEXT NOT NULL,
                app TEXT NOT NULL,
                labels TEXT NOT NULL DEFAULT '{}',
                args TEXT NOT NULL DEFAULT '[]',
                kwargs TEXT NOT NULL DEFAULT '{}',
                options TEXT NOT NULL DEFAULT '{}',
                spec TEXT NOT NULL,
                enabled INTEGER NOT NULL DEFAULT 1,
                pause_note TEXT NOT NULL DEFAULT '',
                description TEXT NOT NULL DEFAULT '',
                cursor DOUBLE PRECISION NOT NULL,
                skipped_through DOUBLE PRECISION,
                version BIGINT NOT NULL DEFAULT 1,
                created_at DOUBLE PRECISION NOT NULL,
                created_by TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                updated_by TEXT NOT NULL
            )""",
            # One row per fire; the primary key is the core's deterministic fire id, so a
            # second leader computing the same slot cannot add a second fire.
            """CREATE TABLE fires (
                fire_id TEXT PRIMARY KEY,
                schedule_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                slot DOUBLE PRECISION NOT NULL,
                due_at DOUBLE PRECISION NOT NULL,
                deliver_by DOUBLE PRECISION NOT NULL,
                claim_order DOUBLE PRECISION NOT NULL,
                engine TEXT NOT NULL,
                app TEXT NOT NULL,
                task TEXT NOT NULL,
                labels TEXT NOT NULL,
                payload TEXT NOT NULL,
                state TEXT NOT NULL,
                agent_instance TEXT,
                agent_session TEXT,
                native_dedup INTEGER NOT NULL DEFAULT 0,
                claimed_by TEXT,
                command_id TEXT,
                native_id TEXT,
                reason TEXT NOT NULL DEFAULT '',
                attempts INTEGER NOT NULL DEFAULT 0,
                idempotency_key TEXT UNIQUE,
                created_at DOUBLE PRECISION NOT NULL,
                sent_at DOUBLE PRECISION,
                answered_at DOUBLE PRECISION
            )""",
            "CREATE INDEX fires_schedule ON fires (schedule_id, slot)",
            # Delivery takes pending fires in claim order: on-time ones by due time, catch-up
            # ones behind the on-time slots of the next moments (a backlog never starves them).
            "CREATE INDEX fires_state ON fires (state, claim_order)",
            "CREATE INDEX tasks_fire_id ON tasks (fire_id)",
            # The audit log: each row's HMAC covers its content and the previous row's HMAC,
            # under a key kept outside the database.
            """CREATE TABLE audit (
                seq BIGINT PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                actor TEXT NOT NULL,
                source TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                before_state TEXT,
                after_state TEXT,
                prev_hmac TEXT NOT NULL,
                hmac TEXT NOT NULL
            )""",
        ),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1][0]
