"""The previous release, built from this repository's history, beside the current one.

`previous_python()` returns the interpreter of a virtualenv holding z4j-core, z4j-brain and
z4j-huey as they were at `PREVIOUS_RELEASE` (main before the second wave), taken with
`git archive` from this checkout's own history and installed with uv from those sources (never
by name from the index). Cached in `.venv-previous-<commit>` under a stamp, so only the first
run pays for it. `start_sink()` runs the scheduler tests' Huey sink under either interpreter, so an
agent of either release can serve a brain of either release.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.services import advisory_lock_base
from z4j_core.testing.sink import SINK_APP_DIR, Sink
from z4j_core.testing.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: The previous release: main at the end of the first wave.
PREVIOUS_RELEASE = "b4a8c5d"
PACKAGES = ("z4j-core", "z4j-brain", "z4j-huey")
THIRD_PARTY = ("huey", "psycopg[binary]")
#: The task as both releases' sinks register it (the app is imported as `huey_sink`).
SINK_TASK = "huey_sink.record"
AUDIT_KEY = "z4j-upgrade-audit-key-0123456789abcdef"


def _uv() -> list[str]:
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is needed to build the previous release (pip install uv)")
    return [found]


def previous_python() -> Path:
    """The previous release's interpreter (built once, then cached)."""
    folder = ROOT / f".venv-previous-{PREVIOUS_RELEASE}"
    python = folder / "bin" / "python"
    stamp = folder / "z4j-stamp"
    wanted = (
        f"{PREVIOUS_RELEASE} {' '.join(PACKAGES)} {' '.join(THIRD_PARTY)} {sys.version_info[:2]}"
    )
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="z4j-previous-") as scratch:
        source = Path(scratch)
        archive = subprocess.Popen(
            ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE, "packages"],
            stdout=subprocess.PIPE,
        )
        assert archive.stdout is not None
        with archive.stdout:
            subprocess.run(["tar", "-x", "-C", str(source)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError(
                f"git archive {PREVIOUS_RELEASE} failed: the previous release must be in this "
                "checkout's history (a shallow clone lacks it)"
            )
        uv = _uv()
        subprocess.run(
            [*uv, "venv", "--quiet", "--python", sys.executable, str(folder)], check=True
        )
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(python),
             *(str(source / "packages" / name) for name in PACKAGES), *THIRD_PARTY],
            check=True,
        )  # fmt: skip
    stamp.write_text(wanted)
    return python


def start_sink(workdir: Path, python: Path, brain_url: str, token: str) -> Sink:
    """The sink app served by `python`'s z4j (either release), imported as `huey_sink`."""
    return Sink(workdir, brain_url, token, workers=2, python=python, app="huey_sink",
                app_dir=SINK_APP_DIR)  # fmt: skip


def make_brain(
    workdir: Path, python: Path, database: str | None = None, port: int | None = None
) -> BrainProcess:
    """A brain of the release `python` belongs to, with the tests' audit key and lock key."""
    env = {"Z4J_AUDIT_KEY": AUDIT_KEY, "Z4J_LEADER_LOCK_KEY": str(advisory_lock_base() + 0x7A26)}
    return BrainProcess(workdir, port=port, database=database, python=str(python), env=env)


def per_second(name: str, **extra: Any) -> dict[str, Any]:
    anchor = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    schedule = {"kind": "interval", "every": "1s", "anchor": anchor, "catch_up": "all",
                "misfire_grace": "60s", **extra}  # fmt: skip
    return {"name": name, "task": SINK_TASK, "engine": "huey", "app": "sink", "schedule": schedule}


def schedule_fires(brain: BrainProcess, name: str) -> list[dict[str, Any]]:
    found = brain.api("GET", f"/api/v1/schedules/{name}/fires?limit=10000")["fires"]
    return sorted(found, key=lambda f: f["slot"])


def agents_connected(brain: BrainProcess) -> int:
    return len(brain.api("GET", "/api/v1/agents?connected=1")["agents"])


def sink_ready(brain: BrainProcess) -> bool:
    """The sink's agent is connected and has reported its task: a brain that checks a new
    schedule's task against the agents' inventories takes the schedule only then (an agent
    connects before its first inventory is stored)."""
    if agents_connected(brain) != 1:
        return False
    inventory = brain.api("GET", "/api/v1/inventory")["inventory"]
    return any(task.get("name") == SINK_TASK for item in inventory for task in item["tasks"])


def ran_once_each(sink: Sink, fires: list[dict[str, Any]]) -> list[float]:
    """Every fire of the schedule ran exactly once, and its slots leave no gap; the slots."""
    scheduled = [f for f in fires if f["kind"] != "trigger"]
    slots = [f["slot"] for f in scheduled]
    assert len(slots) == len(set(slots)), "a slot has two fires"
    assert all(b - a == 1 for a, b in pairwise(slots)), f"a gap: {slots}"
    wait_for(
        lambda: all(sink.counts()[f["fire_id"]] >= 1 for f in scheduled), 30, "every fire to run"
    )
    counts = sink.counts()
    twice = {fid: n for fid, n in counts.items() if n > 1}
    assert not twice, f"ran twice: {twice}"
    return slots
