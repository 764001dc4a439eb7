"""What the fault tests and `bench/bench_faults.py` share: a brain behind a proxy, a host
process with the agent, its status file, the brain's stored events, and waits.

The brain announces a short heartbeat (`HEARTBEAT` seconds), so a silent peer is noticed after
three of them (see docs/protocol.md, Heartbeats); operators tune the same variable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.faults.proxy import ThreadedProxy

HOST = "z4j_core.testing.faults.host"
HEARTBEAT = 1.0
T = TypeVar("T")


def make_brain(workdir: Path, **env: str) -> BrainProcess:
    return BrainProcess(workdir, env={"Z4J_HEARTBEAT_SECONDS": str(HEARTBEAT), **env})


@contextmanager
def brain_behind_proxy(workdir: Path, **env: str) -> Iterator[tuple[BrainProcess, ThreadedProxy]]:
    brain = make_brain(workdir / "brain", **env)
    brain.start()
    proxy = ThreadedProxy(brain.port).start()
    try:
        yield brain, proxy
    finally:
        proxy.close()
        if brain.process is not None and brain.process.poll() is None:
            os.kill(brain.process.pid, signal.SIGCONT)  # a test may have left it stopped
        brain.stop()


@dataclass
class Host:
    """One `faults/host.py` process and its status file. Its output goes to files, never to
    pipes nobody reads while it runs (a chatty agent would block on a full pipe)."""

    process: subprocess.Popen[bytes]
    status_path: Path
    out_path: Path
    err_path: Path

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def stderr_tail(self) -> str:
        return self.err_path.read_text(errors="replace")[-3000:]

    def finish(self, timeout: float) -> dict[str, Any]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the host did not finish in {timeout} s:\n{self.stderr_tail()}"
            ) from None
        assert self.process.returncode == 0, self.stderr_tail()
        summary: dict[str, Any] = json.loads(self.out_path.read_text().strip().splitlines()[-1])
        return summary

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_host(
    url: str,
    token: str,
    workdir: Path,
    *args: str,
    deadline: float = 60,
    stop_timeout: float | None = None,
    extra_env: dict[str, str] | None = None,
    pythonpath: list[str] | None = None,
) -> Host:
    workdir.mkdir(parents=True, exist_ok=True)
    status = workdir / "status.json"
    env = {
        **os.environ,
        "Z4J_BRAIN_URL": url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(workdir / "spool"),
        "HOST_DEADLINE": str(deadline),
        "HOST_STATUS": str(status),
        **(extra_env or {}),
    }
    if stop_timeout is not None:
        env["HOST_STOP_TIMEOUT"] = str(stop_timeout)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")])
    out_path, err_path = workdir / "host.out", workdir / "host.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        command = [sys.executable, "-m", HOST, *args]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    return Host(process, status, out_path, err_path)


def stored_task_counts(brain: BrainProcess, prefix: str = "task-") -> Counter[str]:
    """How many rows the brain stored per task id (an event's identity in these tests)."""
    return BrainStore(brain.database).task_event_counts(prefix)


def check_every_event_once(brain: BrainProcess, count: int) -> tuple[int, int]:
    """Returns (missing, stored twice) for task ids task-0000000 .. count-1."""
    counts = stored_task_counts(brain)
    wanted = {f"task-{i:07d}" for i in range(count)}
    missing = len(wanted - set(counts))
    doubled = sum(1 for n in counts.values() if n > 1)
    return missing, doubled


def print_figure(scenario: str, **figures: Any) -> None:
    """One line per scenario, for the test log and the bench: never asserted on."""
    shown = ", ".join(
        f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in figures.items()
    )
    print(f"[faults] {scenario}: {shown}", flush=True)
