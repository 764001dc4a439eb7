"""The brain's store: the one interface behind which every SQL statement of the brain lives,
for SQLite and Postgres alike (as APScheduler 4's ``DataStore`` holds every storage operation).

A ``Store`` wraps one connection and is used by one thread: the gateway's writes and every
mutation go through ``StoreWriter`` (one thread, one connection, group commit); reads open their
own ``Store`` on their own thread. Write methods never commit: the caller wraps them in
``transaction()``, so a change and its audit row, or fires and the cursor they settle, commit
together. Driver differences (placeholders, rows, locks, LISTEN/NOTIFY) live in ``db``; the
schema in ``migrations``. Never logs event contents or token hashes.

The interface, by part (each part is a module of this package):

``base``      open, close, transaction, schema_version, migrate, lock_for_transaction,
              notify, table_dump
``events``    store_events, purge, task_events, events_after, latest_position, tasks,
              count_events, events, events_by_agent, distinct_task_events
``agents``    agent_connected, agent_disconnected, agent_seen, agent_dropped, agents,
              dropped_events_total, brain_alive, brain_gone, disconnect_orphans,
              replace_inventory, inventory, forget_agents
``access``    insert_command, insert_commands, answer_command, answer_commands, command,
              purge_commands; create_token, revoke_token, token_rows, admin_token_hash,
              set_admin_token_hash
``schedules`` schedule, schedules, schedule_changes, schedule_versions_after,
              schedules_by_id, existing_schedule_ids, schedules_to_hold,
              schedules_to_hold_after, fire_recipes, schedule_id_of_name, schedule_id_use,
              insert_schedule, update_schedule, pause_schedule, resume_schedule,
              delete_schedule, deleted_schedule, mark_broken, broken_count, advance_cursor;
              insert_fires, fire, fire_by_key, claim_fires,
              record_fire_answer, release_unanswered_fire, expire_fires,
              fire_history, fire_counts, fires, first_fire_created_after, count_settled_fires,
              fire_states, expiring_fires, watched_schedules, running_fires, buffered_fires,
              release_buffered, purge_by_result_log, purge_fires
``audit``     lock_audit, last_audit, insert_audit, audit_rows, audit_entries
``actions``   insert_action, answer_action, action, actions, action_counts, retry_links,
              insert_bulk, finish_bulk, bulk, tasks_matching, count_tasks_matching, task_row,
              replace_queue_depths, queue_depths
``overview``  task_outcomes, fire_timeliness (the console's overview)
"""

from __future__ import annotations

from z4j_brain.store.access import (
    CommandStore,
    OperatorRow,
    SessionRow,
    TokenRow,
    TokenStore,
)
from z4j_brain.store.actions import ActionStore
from z4j_brain.store.agents import AgentStore
from z4j_brain.store.audit import AUDIT_COLUMNS, AuditStore
from z4j_brain.store.base import StoreError
from z4j_brain.store.events import STATE_RANK, EventStore
from z4j_brain.store.overview import OverviewStore
from z4j_brain.store.schedules import (
    FIRE_STATES,
    OPEN_STATES,
    Agent,
    Claimed,
    FireRecipe,
    FireStore,
    NewFire,
    ScheduleRow,
    ScheduleStore,
)

__all__ = [
    "AUDIT_COLUMNS",
    "FIRE_STATES",
    "OPEN_STATES",
    "STATE_RANK",
    "Agent",
    "Claimed",
    "FireRecipe",
    "NewFire",
    "OperatorRow",
    "ScheduleRow",
    "SessionRow",
    "Store",
    "StoreError",
    "TokenRow",
]


class Store(
    EventStore,
    AgentStore,
    CommandStore,
    TokenStore,
    ScheduleStore,
    FireStore,
    AuditStore,
    ActionStore,
    OverviewStore,
):
    """One connection's view of the whole store. Not thread-safe: one thread per ``Store``."""
