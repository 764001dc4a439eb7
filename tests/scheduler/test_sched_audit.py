"""The audit log: every mutation leaves a row chained to the one before by an HMAC under a key
kept outside the database; a row altered in the database makes `z4j audit verify` fail there."""

from __future__ import annotations

import json
import sqlite3
from itertools import pairwise
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.sink import make_brain, schedule_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_an_altered_row_fails_verify_at_that_row(tmp_path: Path) -> None:
    brain = make_brain(tmp_path / "brain")
    brain.start()
    url = ("--brain-url", brain.http_url)
    try:
        spec = {"kind": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"}
        brain.api("POST", "/api/v1/schedules", schedule_body("nightly", spec, app="a"))
        brain.api("PATCH", "/api/v1/schedules/nightly", {"name": "nightly-report"})
        brain.api("POST", "/api/v1/schedules/nightly-report/pause", {"note": "holiday"})
        brain.api("POST", "/api/v1/schedules/nightly-report/resume")
        brain.api("POST", "/api/v1/schedules/nightly-report/trigger")
        brain.api("POST", "/api/v1/tokens", {"name": "worker-1"})
        brain.api("DELETE", "/api/v1/tokens/worker-1")
        brain.api("DELETE", "/api/v1/schedules/nightly-report")

        ok = brain.cli("audit", "verify", *url)
        assert ok.stdout.strip() == "audit log OK: 8 rows verified"
        rows = json.loads(brain.cli("audit", "list", "--json", *url).stdout)
        assert [r["action"] for r in rows] == [
            "schedule.create", "schedule.edit", "schedule.pause", "schedule.resume",
            "schedule.trigger", "token.create", "token.revoke", "schedule.delete",
        ]  # fmt: skip
        assert rows[1]["before"]["name"] == "nightly" and rows[1]["after"]["name"] == (
            "nightly-report"
        )
        assert rows[2]["after"]["pause_note"] == "holiday"
        assert all(r["actor"] == "admin" and r["source"] == "127.0.0.1" for r in rows)
        assert all(r["prev_hmac"] == p["hmac"] for p, r in pairwise(rows))

        # The key is outside the database: a file beside it here (or Z4J_AUDIT_KEY).
        database = Path(brain.database)
        with sqlite3.connect(database) as conn:
            dump = "\n".join(conn.iterdump())
        assert "z4j-test-audit-key" not in dump

        # Someone with database access rewrites history: the pause note of row 3.
        with sqlite3.connect(database) as conn:
            altered = rows[2]["after"] | {"pause_note": "nothing to see"}
            conn.execute(
                "UPDATE audit SET after_state = ? WHERE seq = 3",
                (json.dumps(altered, sort_keys=True, separators=(",", ":")),),
            )
        bad = brain.cli("audit", "verify", *url, check=False)
        assert bad.returncode == 1
        assert bad.stderr.strip() == (
            "z4j: error: audit log altered at row 3: its HMAC does not match its content "
            "(2 rows before it verified)"
        )
        # Deleting a row (and re-chaining without the key is impossible) is found too.
        with sqlite3.connect(database) as conn:
            conn.execute(
                "UPDATE audit SET after_state = ? WHERE seq = 3",
                (json.dumps(rows[2]["after"], sort_keys=True, separators=(",", ":")),),
            )
            conn.execute("DELETE FROM audit WHERE seq = 5")  # fmt: skip
        assert (
            brain.cli("audit", "verify", *url, check=False)
            .stderr.strip()
            .startswith("z4j: error: audit log altered at row 5: row 5 is missing")
        )
    finally:
        brain.stop()


def test_the_key_file_is_created_beside_the_database_without_the_variable(
    tmp_path: Path,
) -> None:
    brain = BrainProcess(tmp_path / "brain")
    brain.env.pop("Z4J_AUDIT_KEY", None)
    brain.start()
    try:
        brain.api("POST", "/api/v1/tokens", {"name": "w"})
        brain.create_token("w2")  # on the database directly: audited with the same key
        url = ("--brain-url", brain.http_url)
        assert brain.cli("audit", "verify", *url).stdout.startswith("audit log OK: 2 rows")
        rows = json.loads(brain.cli("audit", "list", "--json", *url).stdout)
        assert rows[1]["action"] == "token.create" and rows[1]["actor"].startswith("local:")
    finally:
        brain.stop()
    key_file = Path(brain.database + ".audit-key")
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
