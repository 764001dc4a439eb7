"""Postgres keeps events in one partition per UTC day: the upgrade that partitions a table
holding events loses none, each day's rows move into that day's partition, a resend is stored
once whichever day it comes back on, and retention drops whole days without waiting on a long
read. SQLite has no partitions and deletes rows (``test_brain_store``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import psycopg
import pytest

from z4j_brain import migrations
from z4j_brain.store import Store, base
from z4j_brain.store.events import DAY, PARTITION_DAYS_AHEAD, partition_day, partition_name
from z4j_core.wire import Event, LifecycleKind

pytestmark = pytest.mark.postgres

#: The store schema that partitions events.
PARTITIONED = 11
#: 2026-12-07 00:00 UTC, as a day number since the epoch.
TODAY = 20794


@pytest.fixture
def url() -> Iterator[str]:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database() as database:
        yield database


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store.open(url)
    yield s
    s.close()


def ev(seq: int) -> Event:
    return Event(
        seq=seq, kind=LifecycleKind.SUCCEEDED, at=1.0 + seq, engine="e", task_id=f"t{seq}",
        task_name="n",
    )  # fmt: skip


def store_on(store: Store, day: float, seqs: range, agent: str = "agent-1") -> int:
    with store.transaction():
        return store.store_events(agent, "app", [ev(s) for s in seqs], day * DAY + 60)


def rows_in(store: Store, table: str) -> int:
    return int(store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def ensure(store: Store, now: float) -> list[str]:
    with store.transaction():
        return store.ensure_event_partitions(now)


def test_partition_names_are_utc_days_both_ways() -> None:
    assert partition_name(TODAY) == "events_20261207"
    assert partition_name(0) == "events_19700101"
    assert partition_day("events_20261207") == TODAY
    assert partition_day(partition_name(157_000)) == 157_000  # year 2399


def test_upgrading_a_table_of_events_keeps_every_row_and_files_each_under_its_day(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store of the release before partitioning, holding events of three days.
    before = tuple(m for m in migrations.MIGRATIONS if m[0] < PARTITIONED)
    monkeypatch.setattr(base, "MIGRATIONS", before)
    monkeypatch.setattr(base, "LATEST_VERSION", PARTITIONED - 1)
    old = Store.open(url)
    assert old.schema_version() == PARTITIONED - 1
    for offset in range(3):
        store_on(old, TODAY - 2 + offset, range(offset * 10, offset * 10 + 10))
    before = old.events()
    old.close()
    monkeypatch.undo()

    store = Store.open(url)
    assert store.schema_version() == migrations.LATEST_VERSION
    kind = store.conn.execute("SELECT relkind FROM pg_class WHERE relname = 'events'").fetchone()
    assert kind[0] == "p"  # partitioned
    assert store.events() == before
    assert rows_in(store, "events_default") == 30

    made = ensure(store, TODAY * DAY + 5)
    days = range(TODAY - 2, TODAY + PARTITION_DAYS_AHEAD + 1)
    assert made == [partition_name(d) for d in days]
    assert store.event_partitions() == made
    assert rows_in(store, "events_default") == 0
    assert [rows_in(store, partition_name(d)) for d in days] == [10, 10, 10, 0, 0]
    assert store.events() == before  # same rows, same positions
    assert ensure(store, TODAY * DAY + 5) == []  # made once
    store.close()


def test_new_events_go_to_their_day_and_a_resend_is_stored_once_on_any_day(
    store: Store,
) -> None:
    ensure(store, TODAY * DAY)
    assert store_on(store, TODAY, range(0, 5)) == 5
    # Sent again the next day with more: only the new ones are stored, in the next day's table.
    assert store_on(store, TODAY + 1, range(3, 8)) == 3
    assert store_on(store, TODAY + 1, range(0, 8)) == 0
    assert store_on(store, TODAY + 1, range(0, 1), agent="agent-2") == 1  # another agent's seq 0
    assert rows_in(store, partition_name(TODAY)) == 5
    assert rows_in(store, partition_name(TODAY + 1)) == 4
    assert rows_in(store, "events_default") == 0
    positions = [e["position"] for e in store.events()]
    assert positions == sorted(set(positions)) and len(positions) == 9


def test_retention_drops_the_days_that_ended_before_the_cutoff(store: Store) -> None:
    ensure(store, (TODAY - 3) * DAY)
    for day in range(TODAY - 3, TODAY):
        store_on(store, day, range(day * 10, day * 10 + 10))
    stray = store_on(store, TODAY - 400, range(1, 3), agent="clock-far-behind")  # default
    assert stray == 2 and rows_in(store, "events_default") == 2

    cutoff = (TODAY - 1) * DAY + 600  # ten minutes into yesterday
    with store.transaction():
        dropped, _about = store.drop_event_partitions(cutoff)
        purged = store.purge(cutoff)
    assert dropped == [partition_name(TODAY - 3), partition_name(TODAY - 2)]
    # The default partition's rows are deleted one by one; yesterday's stay until it has ended.
    assert purged[0] == 2 and rows_in(store, "events_default") == 0
    assert {e["agent_instance"] for e in store.events()} == {"agent-1"}
    assert store.count_events() == 10
    assert store.event_partitions()[0] == partition_name(TODAY - 1)


def test_a_long_read_makes_partition_upkeep_wait_for_the_next_pass_not_stall_writes(
    store: Store, url: str
) -> None:
    ensure(store, (TODAY - 2) * DAY)
    store_on(store, TODAY - 2, range(10))
    with psycopg.connect(url) as reader:
        reader.execute("SELECT COUNT(*) FROM events").fetchone()  # its transaction stays open
        started = time.monotonic()
        with pytest.raises(Exception, match="lock timeout"), store.transaction():
            store.drop_event_partitions(TODAY * DAY)
        assert time.monotonic() - started < 30  # gave up, did not wait for the reader
        reader.rollback()
    with store.transaction():
        dropped, _about = store.drop_event_partitions(TODAY * DAY)
        setting = store.conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
    assert dropped == [partition_name(TODAY - 2), partition_name(TODAY - 1)]
    assert setting == "0"  # put back for the rest of the writer's transaction


def test_a_brain_makes_the_coming_days_partitions_before_it_serves(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from z4j_brain.brain import Brain
    from z4j_brain.config import BrainConfig

    config = BrainConfig.load(database=url, env={"Z4J_ADMIN_TOKEN": "z4j_admin_" + "x" * 40})
    brain = Brain(config)
    with caplog.at_level(logging.INFO, logger="z4j"):
        brain.prepare()
    today = int(time.time() // DAY)
    store = Store.open(url)
    try:
        assert store.event_partitions()[: PARTITION_DAYS_AHEAD + 1] == [
            partition_name(d) for d in range(today, today + PARTITION_DAYS_AHEAD + 1)
        ]
    finally:
        store.close()
    assert "made the events' day partitions" in caplog.text


def test_a_brains_retention_pass_drops_the_days_past_the_retention(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from z4j_brain.brain import Brain
    from z4j_brain.config import BrainConfig

    today = int(time.time() // DAY)
    store = Store.open(url)
    ensure(store, (today - 5) * DAY)
    store_on(store, today - 5, range(0, 10))  # older than the retention: its day goes
    store_on(store, today - 1, range(10, 15))  # within it: kept (moved out of the default)
    store.close()
    env = {"Z4J_ADMIN_TOKEN": "z4j_admin_" + "x" * 40, "Z4J_EVENT_RETENTION_DAYS": "2"}
    brain = Brain(BrainConfig.load(database=url, env=env))
    brain.prepare()
    brain.writer.start()
    try:
        with caplog.at_level(logging.INFO, logger="z4j"):
            asyncio.run(brain.purge())
    finally:
        brain.writer.close()
    store = Store.open(url)
    try:
        assert partition_name(today - 5) not in store.event_partitions()
        assert partition_name(today - 1) in store.event_partitions()
        assert store.count_events() == 5
    finally:
        store.close()
    assert f"dropped the events' day partitions {partition_name(today - 5)}" in caplog.text
