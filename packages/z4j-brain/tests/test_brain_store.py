"""The store: migrations, idempotent event storage, latest task state, retention."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import strategies as st

from z4j_brain.migrations import LATEST_VERSION
from z4j_brain.store import Store, StoreError
from z4j_core.testing.hostile import examples
from z4j_core.wire import Event, Inventory, LifecycleKind, TaskInfo


def ev(seq: int, kind: LifecycleKind, task_id: str = "t1", **fields: object) -> Event:
    return Event(
        seq=seq, kind=kind, at=100.0 + seq, engine="e", task_id=task_id, task_name="n", **fields
    )  # type: ignore[arg-type]


def store_batch(store: Store, agent: str, events: list[Event], at: float = 1000.0) -> int:
    with store.transaction():
        return store.store_events(agent, "app", events, at)


def test_migrate_from_empty_then_rerun_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "db.sqlite3"
    store = Store.open(path, migrate=False)
    assert store.schema_version() == 0
    assert store.migrate() == list(range(1, LATEST_VERSION + 1))
    assert store.schema_version() == LATEST_VERSION
    assert store.migrate() == []
    store.close()
    again = Store.open(path)
    assert again.schema_version() == LATEST_VERSION
    mode = again.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again.close()


def test_a_newer_schema_is_refused(store: Store) -> None:
    with store.transaction():
        store.conn.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION + 1,))
    with pytest.raises(StoreError, match="newer"):
        store.migrate()


def test_a_resent_batch_creates_no_duplicates(store: Store) -> None:
    events = [ev(i, LifecycleKind.STARTED, task_id=f"t{i}") for i in range(5)]
    assert store_batch(store, "agent-1", events) == 5
    assert store_batch(store, "agent-1", events) == 0
    # Overlapping resend: only the new ones count.
    more = [ev(i, LifecycleKind.STARTED, task_id=f"t{i}") for i in range(3, 8)]
    assert store_batch(store, "agent-1", more) == 3
    assert store.count_events() == 8
    # The same seq from another agent instance is another event.
    assert store_batch(store, "agent-2", events[:1]) == 1
    assert len(store.task_events("t0")) == 2


def test_a_batch_rolled_back_leaves_nothing_behind_for_the_next(store: Store) -> None:
    # A batch rolled back (its COPY on Postgres included) leaves no event and no task state, and
    # the same agent's next batches are stored whole, the task that recurs brought up to date.
    store.conn.begin()
    store.store_events("agent-1", "app", [ev(0, LifecycleKind.STARTED, task_id="lost")], 1.0)
    store.conn.rollback()
    events = [ev(i, LifecycleKind.SUCCEEDED, task_id=f"t{i}") for i in range(3)]
    assert store_batch(store, "agent-1", events) == 3
    assert store_batch(store, "agent-1", [ev(3, LifecycleKind.FAILED, task_id="t0")]) == 1
    assert sorted((t["task_id"], t["state"]) for t in store.tasks()) == [
        ("t0", "failed"),
        ("t1", "succeeded"),
        ("t2", "succeeded"),
    ]
    assert store.count_events() == 4


def test_each_event_is_queryable_by_task(store: Store) -> None:
    store_batch(
        store,
        "a",
        [
            ev(0, LifecycleKind.ENQUEUED, queue="q1"),
            ev(1, LifecycleKind.ENQUEUED, task_id="other"),
            ev(2, LifecycleKind.FAILED, exception="ValueError", traceback="tb"),
        ],
    )
    events = store.task_events("t1")
    assert [e["kind"] for e in events] == ["enqueued", "failed"]
    assert events[0]["queue"] == "q1" and events[1]["exception"] == "ValueError"
    assert events[0]["app"] == "app" and events[0]["agent_instance"] == "a"
    assert store.task_events("t1", engine="nope") == []


def test_latest_state_follows_one_agents_sequence(store: Store) -> None:
    store_batch(store, "w", [ev(0, LifecycleKind.RECEIVED), ev(1, LifecycleKind.STARTED)])
    store_batch(store, "w", [ev(2, LifecycleKind.SUCCEEDED, runtime=1.5)])
    (task,) = store.tasks()
    assert task["state"] == "succeeded"
    assert task["received_at"] == 100.0 and task["started_at"] == 101.0
    assert task["finished_at"] == 102.0 and task["runtime"] == 1.5
    # A resend of an older event from the same agent changes nothing.
    store_batch(store, "w", [ev(1, LifecycleKind.STARTED)])
    assert store.tasks()[0]["state"] == "succeeded"


def test_a_late_started_from_another_agent_never_overwrites_succeeded(store: Store) -> None:
    store_batch(store, "worker", [ev(7, LifecycleKind.SUCCEEDED, worker="w1")])
    store_batch(store, "app", [ev(0, LifecycleKind.ENQUEUED, queue="default")])
    store_batch(store, "other", [ev(3, LifecycleKind.STARTED)])
    (task,) = store.tasks()
    assert task["state"] == "succeeded"
    # ...but the late events still fill in what was unknown.
    assert task["queue"] == "default" and task["enqueued_at"] == 100.0
    assert task["started_at"] == 103.0 and task["worker"] == "w1"


def test_out_of_order_within_one_batch_and_retries(store: Store) -> None:
    # The worker retried; a new attempt began on another worker; a late "retried" resend from
    # the first worker must not undo the new attempt's success.
    store_batch(
        store, "w1", [ev(0, LifecycleKind.STARTED), ev(1, LifecycleKind.RETRIED, exception="E")]
    )
    store_batch(store, "w2", [ev(0, LifecycleKind.STARTED)])
    assert store.tasks()[0]["state"] == "started"
    store_batch(store, "w2", [ev(1, LifecycleKind.SUCCEEDED)])
    store_batch(store, "w1", [ev(1, LifecycleKind.RETRIED, exception="E")])
    (task,) = store.tasks()
    assert task["state"] == "succeeded"
    assert task["exception"] == "E"  # the last failure stays visible


def test_dead_lettered_follows_failed(store: Store) -> None:
    store_batch(store, "w", [ev(0, LifecycleKind.FAILED)])
    store_batch(store, "dlq", [ev(0, LifecycleKind.DEAD_LETTERED)])
    store_batch(store, "x", [ev(0, LifecycleKind.FAILED)])
    assert store.tasks()[0]["state"] == "dead_lettered"


def test_tasks_filters(store: Store) -> None:
    store_batch(
        store,
        "w",
        [ev(0, LifecycleKind.SUCCEEDED, task_id="a"), ev(1, LifecycleKind.FAILED, task_id="b")],
    )
    assert [t["task_id"] for t in store.tasks(state="failed")] == ["b"]
    assert {t["task_id"] for t in store.tasks(engine="e")} == {"a", "b"}
    assert store.tasks(name="none") == []
    assert len(store.tasks(limit=1)) == 1


def test_retention_purges_old_events_and_tasks(store: Store) -> None:
    store_batch(store, "a", [ev(0, LifecycleKind.SUCCEEDED, task_id="old")], at=100.0)
    store_batch(store, "a", [ev(1, LifecycleKind.SUCCEEDED, task_id="new")], at=500.0)
    with store.transaction():
        assert store.purge(cutoff=300.0) == (1, 1)
    assert [e["task_id"] for e in store.events_after(0)] == ["new"]
    assert [t["task_id"] for t in store.tasks()] == ["new"]
    # Purged events are gone for good: a resend of a purged seq is stored anew (it is a resend
    # older than the retention, which the agent would not have kept).
    with store.transaction():
        assert store.purge(cutoff=300.0) == (0, 0)


def test_retention_purges_in_chunks_that_add_up_to_the_whole(store: Store) -> None:
    old = [ev(i, LifecycleKind.SUCCEEDED, task_id=f"old{i}") for i in range(7)]
    store_batch(store, "a", old, at=100.0)
    store_batch(store, "a", [ev(7, LifecycleKind.SUCCEEDED, task_id="new")], at=500.0)
    chunks = []
    while True:
        with store.transaction():
            chunks.append(store.purge(cutoff=300.0, limit=3))
        if max(chunks[-1]) < 3:
            break
    assert chunks == [(3, 3), (3, 3), (1, 1)]
    assert [e["task_id"] for e in store.events_after(0)] == ["new"]
    assert [t["task_id"] for t in store.tasks()] == ["new"]


def test_events_after_pages_by_position(store: Store) -> None:
    store_batch(store, "a", [ev(i, LifecycleKind.STARTED, task_id=f"t{i}") for i in range(5)])
    first = store.events_after(0, limit=2)
    assert [e["seq"] for e in first] == [0, 1]
    rest = store.events_after(first[-1]["position"], limit=10)
    assert [e["seq"] for e in rest] == [2, 3, 4]


def test_inventory_replaces_per_engine_and_app(store: Store) -> None:
    with store.transaction():
        store.replace_inventory(
            "a", Inventory(engine="e", app="x", tasks=[TaskInfo(name="t1")], queues=["q"]), 1.0
        )
        store.replace_inventory(
            "a", Inventory(engine="e", app="x", tasks=[TaskInfo(name="t2")]), 2.0
        )
    (item,) = store.inventory("a")
    assert item["tasks"] == [{"name": "t2"}] and item["queues"] == [] and item["updated_at"] == 2.0


def test_commands_record_answers_and_late_answers_replace_unknown(store: Store) -> None:
    with store.transaction():
        store.insert_command(
            command_id="c1",
            agent_instance="a",
            kind="enqueue",
            engine="e",
            app="x",
            task="t",
            payload={"args": [1]},
            fire_id=None,
            created_at=1.0,
            deadline_at=2.0,
        )
    assert store.command("c1")["status"] == "pending"  # type: ignore[index]
    with store.transaction():
        assert store.answer_command("c1", "unknown", None, "no answer", 3.0)
        assert store.answer_command("c1", "enqueued", "job-1", "", 4.0)
        assert not store.answer_command("c1", "failed", None, "", 5.0)
    row = store.command("c1")
    assert row is not None and row["status"] == "enqueued" and row["native_id"] == "job-1"


def test_dropped_reports_never_lower_the_count(store: Store) -> None:
    from z4j_core.wire import EngineInfo, Hello

    hello = Hello(
        protocol_version=1,
        agent_instance="a",
        app="x",
        host="h",
        pid=1,
        agent_version="v",
        engines=[EngineInfo(name="e", version="1")],
    )
    with store.transaction():
        store.agent_connected(hello, {"k": "v"}, "tok", "s1", 1.0)
        store.agent_dropped("a", 10, "spool full", 2.0)
        store.agent_dropped("a", 4, "late", 3.0)
    (agent,) = store.agents()
    assert agent["dropped_total"] == 10 and agent["connected"] is True
    assert agent["engines"] == [{"name": "e", "version": "1", "capabilities": [], "actions": []}]
    with store.transaction():
        store.agent_disconnected("a", "other-session", 4.0)
    assert store.agents()[0]["connected"] is True
    with store.transaction():
        store.agent_disconnected("a", "s1", 4.0)
    assert store.agents(connected_only=True) == []
    assert len(store.agents(seen_since=4.0)) == 1 and store.agents(seen_since=4.5) == []


def test_text_with_nul_characters_is_stored(store: Store) -> None:
    # SQLite keeps them; Postgres text cannot, so they become U+FFFD there. Never a failure that
    # would leave the batch unacknowledged forever.
    events = [ev(0, LifecycleKind.FAILED, message="bad\x00byte", exception="E\x00")]
    assert store_batch(store, "a", events) == 1
    (event,) = store.task_events("t1")
    assert event["message"] in ("bad\x00byte", "bad\ufffdbyte")
    assert store.tasks()[0]["exception"] in ("E\x00", "E\ufffd")


def test_a_batch_with_the_same_task_many_times_keeps_the_last_state(store: Store) -> None:
    kinds = [LifecycleKind.ENQUEUED, LifecycleKind.RECEIVED, LifecycleKind.STARTED]
    events = [ev(i, kind) for i, kind in enumerate(kinds)]
    events += [ev(3, LifecycleKind.SUCCEEDED, runtime=2.0), ev(4, LifecycleKind.STARTED, "t2")]
    assert store_batch(store, "w", events) == 5
    tasks = {t["task_id"]: t for t in store.tasks()}
    assert tasks["t1"]["state"] == "succeeded" and tasks["t1"]["runtime"] == 2.0
    assert tasks["t1"]["enqueued_at"] == 100.0 and tasks["t1"]["started_at"] == 102.0
    assert tasks["t2"]["state"] == "started"


_kinds = st.sampled_from(list(LifecycleKind))
_maybe = st.sampled_from([None, "x", "y"])


@st.composite
def _batches(draw: st.DrawFn) -> list[tuple[str, list[Event]]]:
    """Batches of two agents about three tasks: any kinds in any order, fields given or not."""
    seqs = {"a1": 0, "a2": 0}
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        agent = draw(st.sampled_from(sorted(seqs)))
        events = []
        for _ in range(draw(st.integers(1, 8))):
            seqs[agent] += draw(st.integers(1, 2))
            event = Event(
                seq=seqs[agent], kind=draw(_kinds), at=float(draw(st.integers(0, 9))),
                engine="e", task_id=draw(st.sampled_from(["t1", "t2", "t3"])),
                task_name=draw(st.sampled_from(["n", "m"])), queue=draw(_maybe),
                worker=draw(_maybe), runtime=draw(st.none() | st.just(1.5)),
                retries=draw(st.none() | st.integers(0, 2)), exception=draw(_maybe),
                message=draw(_maybe), fire_id=draw(_maybe),
            )  # fmt: skip
            events.append(event)
        batches.append((agent, events))
    return batches


@pytest.mark.postgres
def test_postgres_keeps_the_task_state_that_events_one_by_one_leave(tmp_path: Path) -> None:
    """Postgres folds a task's events of one batch into one write where that is exact
    (``_folded``); SQLite applies them one by one. Any batches from two agents leave the same
    tasks in both."""
    from hypothesis import HealthCheck, given, settings

    from z4j_brain.store.events import TASK_COLUMNS
    from z4j_core.testing.postgres import temporary_database

    read = f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY engine, task_id"
    with temporary_database() as url:
        postgres, sqlite = Store.open(url), Store.open(tmp_path / "one-by-one.sqlite3")

        @given(_batches())
        @settings(
            max_examples=examples(300), deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )  # fmt: skip
        def check(batches: list[tuple[str, list[Event]]]) -> None:
            for store in (postgres, sqlite):
                with store.transaction():
                    store.conn.execute("DELETE FROM tasks")
                    store.conn.execute("DELETE FROM events")
                for at, (agent, events) in enumerate(batches):
                    store_batch(store, agent, events, at=1000.0 + at)
            expected = [tuple(r) for r in sqlite.conn.execute(read).fetchall()]
            assert [tuple(r) for r in postgres.conn.execute(read).fetchall()] == expected

        try:
            check()
        finally:
            postgres.close()
            sqlite.close()


def test_agents_of_a_stopped_or_stale_brain_are_disconnected_others_stay(store: Store) -> None:
    from brain_helpers import make_hello

    with store.transaction():
        store.brain_alive("b1", "h", 1, 100.0)
        store.brain_alive("b2", "h", 2, 100.0)
        store.agent_connected(make_hello("a1"), {}, "t", "s", 100.0, brain_id="b1")
        store.agent_connected(make_hello("a2"), {}, "t", "s", 100.0, brain_id="b2")
        store.agent_connected(make_hello("a3"), {}, "t", "s", 100.0, brain_id="b3")  # b3 never seen
    with store.transaction():
        assert store.disconnect_orphans(stale_before=50.0, now=101.0) == 1
    assert {a["agent_instance"] for a in store.agents(connected_only=True)} == {"a1", "a2"}
    with store.transaction():
        store.brain_gone("b1", 102.0)
        store.brain_alive("b2", "h", 2, 140.0)
    assert {a["agent_instance"] for a in store.agents(connected_only=True)} == {"a2"}
    with store.transaction():  # b2 stops refreshing: stale after the threshold
        assert store.disconnect_orphans(stale_before=150.0, now=200.0) == 1
    assert store.agents(connected_only=True) == []


def test_the_reads_tests_and_benchmarks_make(store: Store) -> None:
    """The store's read methods that replace direct table access in tests/ and bench/."""
    S, F = LifecycleKind.STARTED, LifecycleKind.SUCCEEDED
    store_batch(store, "a1", [ev(1, S, "task-1"), ev(2, F, "task-1"), ev(3, F, "task_%")])
    store_batch(store, "a2", [ev(1, F, "other")])
    assert store.count_events() == 4
    assert store.count_events(task_id_prefix="task-") == 2  # a prefix, not a LIKE pattern
    assert store.count_events(task_id_prefix="task_") == 1
    assert store.count_events(app="app", engine="e") == 4
    assert store.count_events(engine="nope") == 0
    assert [e["task_id"] for e in store.events(kinds=["succeeded"])] == [
        "task-1",
        "task_%",
        "other",
    ]
    assert [e["seq"] for e in store.events(task_id_prefix="task-", limit=1)] == [1]
    assert store.events(kinds=[]) == []
    assert store.events_by_agent("app") == {"a1": 3, "a2": 1}
    assert store.distinct_task_events("e") == 4
    dump = store.table_dump()
    assert len(dump["events"]) == 4 and "schedules" in dump
