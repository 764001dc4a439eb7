"""The store's schema, as numbered migrations applied in order at start.

Owns every ``CREATE`` the brain runs. The SQL is kept portable between SQLite and Postgres
(no ``AUTOINCREMENT``, no ``WITHOUT ROWID``, times as ``DOUBLE PRECISION`` epoch seconds, JSON
as ``TEXT``, hashes as lowercase hex ``TEXT``) so a Postgres store can run the same list.
Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

from typing import Final


class OnPostgres(str):
    """A statement only Postgres runs: a feature SQLite lacks and a single-file store does not
    need (partitioning)."""


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
    (
        4,
        (
            # A schedule the leader could not compute or fire is set aside as broken, with the
            # error; an edit clears it. The others keep firing.
            "ALTER TABLE schedules ADD COLUMN broken TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE schedules ADD COLUMN broken_at DOUBLE PRECISION",
            # A trigger's idempotency key is scoped to its schedule (the column of version 3
            # is unique across all schedules; it is no longer written).
            "ALTER TABLE fires ADD COLUMN trigger_key TEXT",
            "UPDATE fires SET trigger_key = idempotency_key, idempotency_key = NULL "
            "WHERE idempotency_key IS NOT NULL",
            "CREATE UNIQUE INDEX fires_trigger_key ON fires (schedule_id, trigger_key)",
            # What a deleted schedule was: its history stays reachable by its id and its last
            # name, and its id (which its fire ids carry) is never given to another schedule.
            """CREATE TABLE deleted_schedules (
                schedule_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                deleted_at DOUBLE PRECISION NOT NULL,
                deleted_by TEXT NOT NULL,
                last_state TEXT NOT NULL
            )""",
            "CREATE INDEX deleted_schedules_name ON deleted_schedules (name, deleted_at)",
        ),
    ),
    (
        5,
        (
            # Per schedule: what a slot does while the previous fire's task is still queued or
            # running (allow, skip, buffer-one, cancel-previous); after how many consecutive
            # failed task outcomes the brain pauses it (NULL: never); and what retention keeps
            # of its fires' tasks (all, failures, none).
            "ALTER TABLE schedules ADD COLUMN overlap TEXT NOT NULL DEFAULT 'allow'",
            "ALTER TABLE schedules ADD COLUMN pause_after_failures INTEGER",
            "ALTER TABLE schedules ADD COLUMN result_log TEXT NOT NULL DEFAULT 'all'",
            # The overlap policy's decision on a slot ('' when it fired as usual): kept beside
            # the fire's state, which delivery later moves on (a buffered fire gets enqueued).
            "ALTER TABLE fires ADD COLUMN decision TEXT NOT NULL DEFAULT ''",
            # A fire's task's final state, kept when retention drops the task by its
            # schedule's result log policy: history and health still read the outcome.
            "ALTER TABLE fires ADD COLUMN task_outcome TEXT",
            # Buffered fires and the ones still running are found by schedule and state.
            "CREATE INDEX fires_schedule_state ON fires (schedule_id, state)",
        ),
    ),
    (
        6,
        (
            # An agent token may be bound to the app (and engine) it serves; NULL: unbound.
            "ALTER TABLE tokens ADD COLUMN app TEXT",
            "ALTER TABLE tokens ADD COLUMN engine TEXT",
            # Named operators: a role, the app patterns they see (JSON list; ["*"]: every
            # app), and the keyed hash of their token (never the token).
            """CREATE TABLE operators (
                name TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL UNIQUE,
                role TEXT NOT NULL,
                apps TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION,
                rotated_at DOUBLE PRECISION
            )""",
            # Web sessions: the keyed hash of the cookie's secret, who opened it and with which
            # credential (the session ends when that credential is revoked, expires or rotates).
            """CREATE TABLE web_sessions (
                session_hash TEXT PRIMARY KEY,
                operator TEXT NOT NULL,
                credential_hash TEXT NOT NULL,
                source TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                last_seen_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
        ),
    ),
    (
        7,
        (
            # Actions an operator asked for (retry, cancel, purge; docs/actions.md), one row
            # each, with the agent's answer. ``action_id`` is the action frame's command id. A
            # retry's new run is ``new_task_id``: the tasks API links both runs through it.
            # ``bulk_id`` names the bulk action a row belongs to. Never holds task arguments.
            """CREATE TABLE actions (
                action_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                engine TEXT NOT NULL,
                app TEXT NOT NULL,
                task_id TEXT,
                task TEXT,
                queue TEXT,
                options TEXT NOT NULL DEFAULT '{}',
                status TEXT NOT NULL,
                reason TEXT NOT NULL DEFAULT '',
                new_task_id TEXT,
                count BIGINT,
                agent_instance TEXT,
                bulk_id TEXT,
                requested_by TEXT NOT NULL,
                requested_from TEXT NOT NULL,
                requested_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION
            )""",
            "CREATE INDEX actions_task ON actions (task_id, engine)",
            "CREATE INDEX actions_new_task ON actions (new_task_id, engine)",
            "CREATE INDEX actions_bulk ON actions (bulk_id)",
            # One row per bulk action: the filter it matched with and how many tasks.
            """CREATE TABLE bulk_actions (
                bulk_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                filter TEXT NOT NULL,
                matched BIGINT NOT NULL,
                requested_by TEXT NOT NULL,
                requested_from TEXT NOT NULL,
                requested_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION
            )""",
            # The last queue report of each agent (replaced whole per engine app).
            """CREATE TABLE queue_depths (
                agent_instance TEXT NOT NULL,
                engine TEXT NOT NULL,
                app TEXT NOT NULL,
                queue TEXT NOT NULL,
                ready BIGINT NOT NULL,
                scheduled BIGINT,
                running BIGINT,
                failed BIGINT,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (agent_instance, engine, app, queue)
            )""",
        ),
    ),
    (
        8,
        (
            # Keyset paging (z4j_brain.paging): each list reads an index range in its sort
            # order, filtered first page and deep page alike, never a scan and a sort. The
            # task list sorts by (updated_at, engine, task_id) descending; each filter the
            # list offers leads an index of its own, followed by that key (without one for
            # the engine, SQLite would take the primary key for an engine filter and sort every
            # task of that engine).
            "DROP INDEX tasks_updated_at",
            "DROP INDEX tasks_state",
            "CREATE INDEX tasks_recent ON tasks (updated_at, engine, task_id)",
            "CREATE INDEX tasks_state_recent ON tasks (state, updated_at, engine, task_id)",
            "CREATE INDEX tasks_name_recent ON tasks (name, updated_at, engine, task_id)",
            "CREATE INDEX tasks_app_recent ON tasks (app, updated_at, engine, task_id)",
            "CREATE INDEX tasks_engine_recent ON tasks (engine, updated_at, task_id)",
            # A search by task id alone (the primary key leads with the engine).
            "CREATE INDEX tasks_task_id ON tasks (task_id)",
            # A schedule's fire history, newest first.
            "DROP INDEX fires_schedule",
            "CREATE INDEX fires_schedule_recent ON fires (schedule_id, slot, created_at, fire_id)",
            # The action list, newest first.
            "CREATE INDEX actions_recent ON actions (requested_at, action_id)",
        ),
    ),
    (
        9,
        (
            # Retention reaches what used to grow for ever: commands (with the event
            # retention), settled fires (with the fire retention) and agents long gone (with
            # their inventories and queue reports). Each purge reads its rows oldest first.
            "CREATE INDEX commands_created ON commands (created_at)",
            "CREATE INDEX fires_created ON fires (created_at)",
            # Running totals that must outlive the rows they summed (an agent's dropped events
            # stay counted after the agent is forgotten: the metric is a counter).
            """CREATE TABLE counters (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL
            )""",
            "INSERT INTO counters (name, value) VALUES ('dropped_by_forgotten_agents', 0)",
        ),
    ),
    (
        10,
        (
            # What is read every second or every scrape finds its few rows without reading
            # every schedule: the ones that pause after failures (the leader's housekeeping)
            # and the broken ones (/metrics).
            "CREATE INDEX schedules_watched ON schedules (schedule_id) "
            "WHERE pause_after_failures IS NOT NULL",
            "CREATE INDEX schedules_broken ON schedules (schedule_id) WHERE broken <> ''",
        ),
    ),
    (
        11,
        tuple(
            map(
                OnPostgres,
                (
                    # Events partitioned by the UTC day they were stored, so retention drops a
                    # day's table instead of deleting its rows one by one. Every row goes to the
                    # default partition first; the brain then moves each day's rows into that
                    # day's partition as it makes it (``ensure_event_partitions``). A partition
                    # key must be part of every unique index, so ``(agent_instance, seq)`` is
                    # no longer a key: the store skips stored events itself, under the
                    # event-position lock every event write holds. The lock first: a brain
                    # of the previous release may still be storing events (a rolling
                    # upgrade), and a row it committed during the copy would be dropped with
                    # the old table; its writes wait, fail, and their agents send them again.
                    "LOCK TABLE events IN EXCLUSIVE MODE",
                    "CREATE TABLE events_partitioned (LIKE events INCLUDING DEFAULTS) "
                    "PARTITION BY RANGE (stored_at)",
                    "CREATE TABLE events_default PARTITION OF events_partitioned DEFAULT",
                    "INSERT INTO events_partitioned SELECT * FROM events",
                    "DROP TABLE events",
                    "ALTER TABLE events_partitioned RENAME TO events",
                    "CREATE INDEX events_seq ON events (agent_instance, seq)",
                    "CREATE INDEX events_position ON events (position)",
                    "CREATE INDEX events_task ON events (task_id, engine)",
                    "CREATE INDEX events_stored_at ON events (stored_at)",
                ),
            )
        ),
    ),
    (
        12,
        (
            # Each write of a schedule row records the change count it bumped, so a woken
            # leader reads the rows changed since it last looked instead of every version
            # (seconds with a million schedules, and no fire goes out meanwhile).
            "ALTER TABLE schedules ADD COLUMN change_no BIGINT NOT NULL DEFAULT 0",
            "CREATE INDEX schedules_change_no ON schedules (change_no)",
            "ALTER TABLE deleted_schedules ADD COLUMN change_no BIGINT NOT NULL DEFAULT 0",
            "CREATE INDEX deleted_schedules_change_no ON deleted_schedules (change_no)",
        ),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1][0]
