"""The brain's commands as a user runs them: `z4j tokens ...` and `z4j brain serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from z4j_brain.cli import run
from z4j_brain.store import Store
from z4j_core.wire.signing import token_hash


def test_tokens_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "b.sqlite3")
    assert run(["tokens", "create", "w1", "--labels", "env=prod", "--database", db]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("z4j_")
    store = Store.open(db)
    (row,) = store.token_rows()
    store.close()
    assert row.token_hash == token_hash(token).hex() and row.labels == {"env": "prod"}
    assert run(["tokens", "list", "--json", "--database", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["status"] == "active" and token not in json.dumps(listed)
    assert run(["tokens", "revoke", "w1", "--database", db]) == 0
    assert run(["tokens", "list", "--database", db]) == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tokens", "revoke", "nope"], "no token named 'nope'"),
        (["tokens", "create", "x", "--labels", "oops"], "is not key=value"),
        (["tokens", "create", "x", "--expires", "soon"], "duration 'soon'"),
    ],
)
def test_user_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run([*argv, "--database", str(tmp_path / "b.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("z4j: error: ") and message in err and err.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_creates_the_database_prints_the_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "Z4J_HOME": str(tmp_path / "home")}
    env.pop("Z4J_ADMIN_TOKEN", None)
    stderr_path = tmp_path / "stderr.txt"
    with (
        stderr_path.open("w") as stderr_file,
        subprocess.Popen(
            [sys.executable, "-m", "z4j_core.cli", "brain", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith(f"z4j brain serving on http://127.0.0.1:{port}")
            assert proc.stdout.readline() == f"console: http://127.0.0.1:{port}/\n"
            assert (tmp_path / "home" / "brain.sqlite3").exists()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                assert json.loads(response.read())["status"] == "ok"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = stderr_path.read_text()
    admin_lines = [x for x in stderr.splitlines() if "admin token" in x]
    assert len(admin_lines) == 1 and "z4j_admin_" in admin_lines[0]
    assert "Traceback" not in stderr


def test_serve_on_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "z4j_core.cli",
                "brain",
                "serve",
                "--port",
                str(port),
                "--database",
                str(tmp_path / "b.sqlite3"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0 and time.monotonic() - started < 30
    assert f"z4j: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was written before the port was bound: no database, no lock or key file beside
    # it, no admin token printed, no leadership claimed.
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert "admin token" not in result.stderr and "z4j_admin_" not in result.stderr
    assert "leader" not in result.stderr
