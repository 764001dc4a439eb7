"""The scheduler rig of the end-to-end tests and benchmarks: brains with the scheduler's
settings, a real Huey consumer (apps/huey_sink.py) whose one task records every execution's job
id, and reads of the brain's scheduler over its HTTP API. Never reads the brain's tables.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env
from z4j_core.testing.services import advisory_lock_base

SINK_APP = "z4j_core.testing.apps.huey_sink"
AUDIT_KEY = "z4j-test-audit-key-0123456789abcdef"
SINK_TASK = f"{SINK_APP}.record"
#: The sink app's native periodic task (agents report it; z4j only observes it).
SINK_NATIVE_TASK = f"{SINK_APP}.nightly"
#: Records its run, then raises.
SINK_FAIL_TASK = f"{SINK_APP}.fail"
#: Records its run, then sleeps (``seconds``, 3 by default).
SINK_SLOW_TASK = f"{SINK_APP}.slow"
T = TypeVar("T")


def brain_env() -> dict[str, str]:
    """What every brain of one test shares: the audit key and this run's leader-lock key."""
    return {
        "Z4J_AUDIT_KEY": AUDIT_KEY,
        "Z4J_LEADER_LOCK_KEY": str(advisory_lock_base() + 0x7A03),
    }


def make_brain(workdir: Path, database: str | None = None, port: int | None = None) -> BrainProcess:
    return BrainProcess(workdir, port=port, database=database, env=brain_env())


#: The sink app's folder: an interpreter whose z4j has no `z4j_core.testing.apps` (the previous
#: release's, in the upgrade tests) imports the app from here as the top-level `huey_sink`.
SINK_APP_DIR = Path(__file__).resolve().parent / "apps"


class Sink:
    """A `huey_consumer` (SqliteHuey) with the z4j agent, connected to one brain.

    `python` runs it (another release's interpreter, say) with the app imported as `app` from
    `app_dir` (default: this package's sink app, by its module name)."""

    def __init__(
        self,
        workdir: Path,
        brain_url: str,
        token: str,
        workers: int = 4,
        *,
        python: str | Path = sys.executable,
        app: str = SINK_APP,
        app_dir: Path | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / "sink.txt"
        self.path.touch()
        self.log_path = workdir / "consumer.log"
        huey = ENGINES["huey"]
        run = WorkerRun(str(python), f"{app}.huey", concurrency=workers,
                        options=("--delay", "0.01", "--max-delay", "0.05"))  # fmt: skip
        env = worker_env(
            app_dir or workdir,
            brain_url=brain_url,
            token=token,
            spool_dir=workdir / "spool",
            extra={"SINK_FILE": str(self.path), "SINK_HUEY_DB": str(workdir / "huey.sqlite3")},
            tz=None,
        )
        self.worker = WorkerProcess.start(huey, run, env, self.log_path, cwd=workdir)
        self.worker.stop_timeout = 15.0
        self.process = self.worker.process

    def counts(self) -> Counter[str]:
        return Counter(line for line in self.path.read_text().splitlines() if line)

    def stop(self) -> None:
        self.worker.stop()

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
    """A schedule of the sink's task. ``force``: these tests create schedules before (or
    without) the sink's agent reporting its tasks; the checks have tests of their own."""
    return {
        "name": name,
        "task": SINK_TASK,
        "engine": "huey",
        "app": "sink",
        "schedule": schedule,
        "force": True,
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
