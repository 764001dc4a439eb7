"""Backup and restore drills, as docs/operations.md (Backups) tells an operator to do them: an
online backup of a running brain's store (SQLite's `.backup`, Postgres' `pg_dump -Fc`), slots
fired after it, then the store restored and the brain started on it.

The restored brain resumes from the restored cursors, so it fires again the slots that had
fired after the backup; the agent remembers the fire ids it enqueued and answers `duplicate`,
so no slot runs twice, and none is lost (catch-up `all`). `audit verify` passes on the restored
chain.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from upgrade_harness import (
    agents_connected,
    make_brain,
    per_second,
    ran_once_each,
    schedule_fires,
    start_sink,
)

from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
CURRENT = Path(sys.executable)


def _drill(tmp_path: Path, database: str | None, backup: Any, restore: Any) -> None:
    brain = make_brain(tmp_path / "brain", CURRENT, database)
    brain.start()
    token = brain.create_token("sink")
    sink = start_sink(tmp_path / "sink", CURRENT, brain.url, token)
    try:
        wait_for(lambda: agents_connected(brain) == 1, 30, "the sink's agent")
        # forced: the agent is connected, its inventory may not have arrived yet
        brain.api("POST", "/api/v1/schedules", {**per_second("drill"), "force": True})
        wait_for(lambda: len(schedule_fires(brain, "drill")) >= 3, 20, "fires before the backup")
        backup()
        backed_up_at = time.time()
        wait_for(
            lambda: (
                len([f for f in schedule_fires(brain, "drill") if f["slot"] > backed_up_at + 1])
                >= 3
            ),
            20,
            "fires after the backup",
        )
        brain.stop()
        stopped_at = time.time()
        restore()
        brain.start()
        wait_for(
            lambda: any(
                f["slot"] > stopped_at + 1 and f["state"] == "enqueued"
                for f in schedule_fires(brain, "drill")
            ),
            30,
            "fires after the restore",
        )
        time.sleep(2)
        fires = schedule_fires(brain, "drill")
        ran_once_each(sink, [f for f in fires if f["state"] in ("enqueued", "duplicate")])
        refired = [f for f in fires if backed_up_at + 1 < f["slot"] < stopped_at - 1]
        assert refired and all(f["state"] == "duplicate" for f in refired), refired
        assert brain.api("GET", "/api/v1/audit/verify")["ok"]
    finally:
        sink.stop()
        brain.stop()


def test_sqlite_online_backup_and_restore(tmp_path: Path) -> None:
    copy = tmp_path / "backup.sqlite3"
    live = tmp_path / "brain" / "brain.sqlite3"

    def backup() -> None:
        subprocess.run(["sqlite3", str(live), f".backup '{copy}'"], check=True)

    def restore() -> None:
        for leftover in (live.with_name(live.name + "-wal"), live.with_name(live.name + "-shm")):
            leftover.unlink(missing_ok=True)
        live.write_bytes(copy.read_bytes())

    _drill(tmp_path, None, backup, restore)


@pytest.mark.postgres
def test_postgres_dump_and_restore(tmp_path: Path) -> None:
    from z4j_core.testing.postgres import server_url, temporary_database

    dump = tmp_path / "brain.dump"
    with temporary_database("backup") as url:
        name = url.rsplit("/", 1)[1]

        def backup() -> None:
            subprocess.run(["pg_dump", "-Fc", "-f", str(dump), url], check=True)

        def restore() -> None:
            admin = server_url("postgres")
            subprocess.run(["psql", admin, "-qc", f'DROP DATABASE "{name}" WITH (FORCE)'],
                           check=True)  # fmt: skip
            subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
            subprocess.run(["pg_restore", "--no-owner", "-d", url, str(dump)], check=True)

        _drill(tmp_path, url, backup, restore)
