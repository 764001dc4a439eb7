"""A real brain in a child process, for end-to-end tests and benchmarks.

Runs `z4j brain serve` exactly as an operator would (the CLI, a real socket, a real database
file) and drives it through its CLI and HTTP API. Imports nothing from the brain package, so a
suite can run it from any environment that has the `z4j` command with the brain installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ADMIN_TOKEN = "z4j_admin_test_" + "a" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BrainProcess:
    """One brain process on a SQLite file (or a database URL) in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        database: str | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        *,
        new_session: bool = False,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        """new_session: run the brain in a session of its own, so a Ctrl-C meant for the
        program driving it (which stops it in order) does not reach it first. ``serve_args`` go
        after the default ``z4j brain serve`` arguments, so they win (``("--log-level", "debug")``,
        ``("--host", "0.0.0.0")``)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.database = database or str(self.workdir / "brain.sqlite3")
        self.python = python
        self.env = {**os.environ, "Z4J_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
        self.new_session = new_session
        self.serve_args = serve_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "brain.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/agent"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.python, "-m", "z4j_core.cli", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"z4j {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def create_token(self, name: str, *extra: str) -> str:
        result = self.cli("tokens", "create", name, "--database", self.database, *extra)
        return result.stdout.strip().splitlines()[-1]

    def start(self, timeout: float = 30.0) -> BrainProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [
                self.python,
                "-m",
                "z4j_core.cli",
                "brain",
                "serve",
                "--port",
                str(self.port),
                "--database",
                self.database,
                "--log-level",
                "warning",
                *self.serve_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=self.new_session,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the brain exited at start:\n{self.log_path.read_text()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as response,
            ):
                if response.status == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"the brain did not become healthy:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.http_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()}") from None

    def __enter__(self) -> BrainProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
