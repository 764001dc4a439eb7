"""Helpers of the scheduler's end-to-end tests and benchmarks: brains with the scheduler's
settings, a real Huey consumer whose one task records every execution's job id, and waits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.services import advisory_lock_base

HERE = Path(__file__).resolve().parent
AUDIT_KEY = "z4j-test-audit-key-0123456789abcdef"
SINK_TASK = "sched_sink_app.record"
T = TypeVar("T")


def brain_env() -> dict[str, str]:
    """What every brain of one test shares: the audit key and this run's leader-lock key."""
    return {
        "Z4J_AUDIT_KEY": AUDIT_KEY,
        "Z4J_LEADER_LOCK_KEY": str(advisory_lock_base() + 0x7A03),
    }


def make_brain(workdir: Path, database: str | None = None, port: int | None = None) -> BrainProcess:
    return BrainProcess(workdir, port=port, database=database, env=brain_env())


class Sink:
    """A `huey_consumer` (SqliteHuey) with the z4j agent, connected to one brain."""

    def __init__(self, workdir: Path, brain_url: str, token: str, workers: int = 4) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / "sink.txt"
        self.path.touch()
        self.log_path = workdir / "consumer.log"
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": brain_url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(workdir / "spool"),
            "SINK_FILE": str(self.path),
            "SINK_HUEY_DB": str(workdir / "huey.sqlite3"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", "sched_sink_app.huey",
             "--workers", str(workers), "--delay", "0.01", "--max-delay", "0.05"],
            cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

    def counts(self) -> Counter[str]:
        return Counter(line for line in self.path.read_text().splitlines() if line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def connected_agents(brain: BrainProcess) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = brain.api("GET", "/api/v1/agents?connected=1")["agents"]
    return agents


def live_agents(brain: BrainProcess) -> int:
    """Agents connected to this brain process now (its own count, not the shared table)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{brain.http_url}/healthz", timeout=2) as answer:
            return int(json.loads(answer.read())["agents_connected"])
    except OSError:
        return 0


def schedule_body(name: str, schedule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "task": SINK_TASK,
        "engine": "huey",
        "app": "sink",
        "schedule": schedule,
        **extra,
    }


def fires(brain: BrainProcess, name: str, limit: int = 10000) -> list[dict[str, Any]]:
    answer = brain.api("GET", f"/api/v1/schedules/{name}/fires?limit={limit}")
    found: list[dict[str, Any]] = answer["fires"]
    return sorted(found, key=lambda f: f["slot"])


def is_leader(brain: BrainProcess) -> bool:
    try:
        return bool(brain.api("GET", "/api/v1/scheduler", timeout=2)["leader"])
    except Exception:
        return False
