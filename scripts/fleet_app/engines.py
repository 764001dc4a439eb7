"""The six engines of the fleet: where each runs, how its worker starts, what it must report.

One row per engine. `commands` are the processes that make up its deployment (a worker, and for
RQ the `rq cron` process that holds its native schedule); each runs in its own session from the
`apps/` folder, configured by the Z4J_* variables and FLEET_REDIS_URL.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

APPS = Path(__file__).resolve().parent / "apps"
APP = "fleet"


@dataclass(frozen=True)
class Solar:
    event: str
    latitude: float
    longitude: float
    timezone: str


@dataclass(frozen=True)
class Engine:
    name: str
    environment: str  # envs.ENVIRONMENTS key
    task: str  # the task the brain's schedules fire, as the engine names it
    native_source: str  # the inventory's source of the native schedule the app declares
    lifecycle: frozenset[str]  # event kinds every fired task must reach the brain with
    stop_signal: signal.Signals  # the engine's graceful stop
    solar: Solar
    # How long a graceful stop may take before the process group is killed. taskiq-redis's
    # worker blocks in BRPOP (no socket timeout, as docs/engines/taskiq.md requires) and does
    # not stop on SIGINT while its queue is idle; by the time the fleet stops, every event was
    # already stored (it settles first), so killing it loses nothing.
    stop_timeout: float = 20.0

    def commands(self, python: Path, redis_url: str) -> list[list[str]]:
        py, bin_dir = str(python), python.parent
        if self.name == "celery":
            return [[py, "-m", "celery", "-A", "fleet_celery", "worker", "--pool", "prefork",
                     "--concurrency", "2", "--queues", "fleet-celery", "--hostname", "fleet@%h",
                     "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                     "--without-heartbeat"]]  # fmt: skip
        if self.name == "rq":
            rq = str(bin_dir / "rq")
            return [
                [rq, "worker", "-w", "z4j_rq.Worker", "-c", "fleet_rq_settings", "-u", redis_url,
                 "--with-scheduler", "default"],
                [rq, "cron", str(APPS / "fleet_rq_cron.py"), "-u", redis_url],
            ]  # fmt: skip
        if self.name == "dramatiq":
            return [[py, "-m", "dramatiq", "fleet_dramatiq", "--processes", "1", "--threads",
                     "2", "--worker-shutdown-timeout", "5000"]]  # fmt: skip
        if self.name == "huey":
            return [[py, "-m", "huey.bin.huey_consumer", "fleet_huey.huey", "--workers", "2",
                     "--delay", "0.05", "--max-delay", "0.2"]]  # fmt: skip
        if self.name == "arq":
            return [[str(bin_dir / "arq"), "fleet_arq.WorkerSettings"]]
        if self.name == "taskiq":
            return [[py, "-m", "taskiq", "worker", "fleet_taskiq:broker", "--workers", "1",
                     "--max-async-tasks", "4", "--shutdown-timeout", "5"]]  # fmt: skip
        raise ValueError(f"no worker command for engine {self.name!r}")


QUEUED = frozenset({"enqueued", "started", "succeeded"})

ENGINES = (
    Engine("celery", "celery", "fleet_celery.record", "celery_beat", QUEUED | {"received"},
           signal.SIGTERM, Solar("sunrise", 35.68, 139.69, "Asia/Tokyo")),
    Engine("rq", "main", "fleet_rq.record", "rq_cron", QUEUED, signal.SIGTERM,
           Solar("sunset", 48.85, 2.35, "Europe/Paris")),
    Engine("dramatiq", "main", "fleet_dramatiq.record", "periodiq", QUEUED, signal.SIGTERM,
           Solar("dawn", 40.71, -74.01, "America/New_York")),
    Engine("huey", "main", "fleet_huey.record", "huey_periodic", QUEUED, signal.SIGINT,
           Solar("dusk", -33.87, 151.21, "Australia/Sydney")),
    Engine("arq", "arq", "record", "arq_cron", QUEUED, signal.SIGTERM,
           Solar("noon", 52.52, 13.40, "Europe/Berlin")),
    Engine("taskiq", "taskiq", "fleet_taskiq.record", "taskiq_labels", QUEUED, signal.SIGINT,
           Solar("sunset", -23.55, -46.63, "America/Sao_Paulo"), stop_timeout=6.0),
)  # fmt: skip
BY_NAME = {engine.name: engine for engine in ENGINES}
