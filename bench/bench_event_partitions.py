"""Postgres events partitioned by day: what the upgrade costs and what retention saves.

For each size: a store of schema 10 (before partitioning) holding that many events spread over
a week is migrated to the current schema (migration 11 copies the table into a partitioned one),
then the brain's start-up step moves each day's rows into its partition. Then retention removes
the two oldest days, timed both ways on the same rows: dropping their partitions against deleting
them row by row in the brain's chunks of 5,000 (on a copy of the table, unpartitioned).

Prints figures; asserts nothing. Run: python bench/bench_event_partitions.py [--quick]
Needs z4j-brain and psycopg importable and Postgres at 127.0.0.1:5432 (trust auth).
"""

from __future__ import annotations

import argparse
import time

from benchjson import Recorder, add_option

from z4j_brain import migrations
from z4j_brain.store import Store, base
from z4j_brain.store.events import DAY, PURGE_CHUNK
from z4j_core.testing.postgres import temporary_database
from z4j_core.wire import Event, LifecycleKind

DAYS = 7
BATCH = 1000
NOW_DAY = 20794  # 2026-12-07
PARTITIONED = 11  # the store schema that partitions events


def fill(store: Store, count: int) -> None:
    """``count`` events over ``DAYS`` days, stored the brain's way (a batch at a time)."""
    per_day = count // DAYS
    seq = 0
    for day in range(NOW_DAY - DAYS + 1, NOW_DAY + 1):
        for start in range(0, per_day, BATCH):
            batch = [
                Event(
                    seq=seq + i,
                    kind=LifecycleKind.SUCCEEDED,
                    at=1.0,
                    engine="celery",
                    task_id=f"t{seq + i}",
                    task_name="app.tasks.add",
                    args="(1, 2)",
                    kwargs="{}",
                    result="3",
                    runtime=0.01,
                    queue="celery",
                )
                for i in range(min(BATCH, per_day - start))
            ]
            seq += len(batch)
            stored_at = day * DAY + (start / per_day) * DAY
            with store.transaction():
                store.store_events("agent-1", "shop", batch, stored_at)


def timed(job: object) -> float:
    started = time.perf_counter()
    job()  # type: ignore[operator]
    return time.perf_counter() - started


def run(count: int, recorder: Recorder) -> None:
    with temporary_database("parts") as url:
        saved = base.MIGRATIONS, base.LATEST_VERSION
        before = tuple(m for m in migrations.MIGRATIONS if m[0] < PARTITIONED)
        base.MIGRATIONS, base.LATEST_VERSION = before, PARTITIONED - 1
        try:
            old = Store.open(url)
            fill(old, count)
            # A copy of the table as it was, for the row-by-row retention below.
            with old.transaction():
                old.conn.execute("CREATE TABLE events_rows AS SELECT * FROM events")
                old.conn.execute("CREATE INDEX ON events_rows (stored_at)")
                old.conn.execute("CREATE UNIQUE INDEX ON events_rows (position)")
            old.close()
        finally:
            base.MIGRATIONS, base.LATEST_VERSION = saved
        migrate_s = timed(lambda: Store.open(url).close())
        store = Store.open(url)

        def ensure() -> None:
            with store.transaction():
                store.ensure_event_partitions(NOW_DAY * DAY)

        move_s = timed(ensure)
        cutoff = (NOW_DAY - DAYS + 3) * DAY  # the two oldest days have ended
        dropped: list[str] = []

        def drop() -> None:
            with store.transaction():
                dropped.extend(store.drop_event_partitions(cutoff)[0])

        drop_s = timed(drop)

        def delete_rows() -> None:
            while True:
                with store.transaction():
                    went = store.conn.execute(
                        "DELETE FROM events_rows WHERE position IN (SELECT position FROM "
                        "events_rows WHERE stored_at < ? LIMIT ?)",
                        (cutoff, PURGE_CHUNK),
                    ).rowcount
                if went < PURGE_CHUNK:
                    return

        delete_s = timed(delete_rows)
        store.close()
    per_s = count / (migrate_s + move_s)
    print(
        f"{count:>10,} events: migration {migrate_s:6.2f} s, moving into days {move_s:6.2f} s "
        f"({per_s:,.0f} events/s through both); retention of 2 days: drop {len(dropped)} "
        f"partitions {drop_s * 1000:7.1f} ms, delete by rows {delete_s:6.2f} s"
    )
    config = {"events": count, "days": DAYS}
    recorder.add("partition_upgrade", "s", [migrate_s + move_s], **config)
    recorder.add("retention_drop_2_days", "ms", [drop_s * 1000], **config)
    recorder.add("retention_delete_2_days", "ms", [delete_s * 1000], **config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced counts")
    add_option(parser)
    args = parser.parse_args()
    recorder = Recorder("bench_event_partitions", args.json)
    for count in (70_000,) if args.quick else (70_000, 700_000, 2_100_000):
        run(count, recorder)
    recorder.write()


if __name__ == "__main__":
    main()
