"""Full disks. Under the brain's SQLite store: the brain refuses to acknowledge what it could not
store and says why, the agent keeps everything and resends, and when space returns every event
is stored exactly once. Under an agent's spool: what the spool cannot take is dropped, counted
and reported to the brain; nothing acknowledged is lost.

Each full disk is a tmpfs made for the test (a few MiB), grown back when it has been seen
full. Mounting needs root (as on the CI machine); elsewhere the test skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import BrainProcess, free_port
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = 40_000
SMALL, LARGE = "3m", "256m"


def _mount(folder: Path, size: str, *, remount: bool = False) -> subprocess.CompletedProcess[str]:
    options = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )


def _stream(
    brain: BrainProcess, token: str, spool: Path, *, rate: int, deadline: int
) -> subprocess.Popen[str]:
    """An app with the agent emitting `EVENTS` events at `rate`/s, then waiting until they are
    settled (acknowledged or dropped) and printing its stats as JSON."""
    env = {**os.environ, "Z4J_BRAIN_URL": brain.url, "Z4J_TOKEN": token,
           "Z4J_SPOOL_DIR": str(spool), "HOST_DEADLINE": str(deadline)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "z4j_core.testing.agent_host", "stream", str(EVENTS), str(rate)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small filesystem for the test needs root to mount a tmpfs")
    mounted = _mount(folder, SMALL)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_under_the_store_loses_nothing_and_recovers(
    small_disk: Path, tmp_path: Path
) -> None:
    brain = BrainProcess(tmp_path / "brain", database=str(small_disk / "brain.sqlite3"))
    brain.start()
    token = brain.create_token("host")
    host = _stream(brain, token, tmp_path / "spool", rate=4000, deadline=180)
    try:
        wait_for(
            lambda: "disk is full" in brain.log_path.read_text(errors="replace"),
            120,
            "the brain to meet the full disk",
        )
        log = brain.log_path.read_text(errors="replace")
        assert (
            "(not acknowledged; the agent resends): OperationalError: database or disk is full"
            in log
        )
        grown = _mount(small_disk, LARGE, remount=True)
        assert grown.returncode == 0, grown.stderr
        output, _ = host.communicate(timeout=240)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["acked"] == EVENTS, summary
    assert summary.get("dropped", 0) == 0, summary
    brain.stop()
    # Every event once: none lost, none stored twice.
    assert BrainStore(brain.database).count_events("task-") == EVENTS


def test_a_full_disk_under_the_agents_spool_is_counted_and_reported(
    small_disk: Path, tmp_path: Path
) -> None:
    """The brain is down while the app emits more than the agent holds in memory: the spool
    fills its small disk, and what it cannot take is dropped, counted and reported to the brain
    once it is back; everything else arrives once."""
    brain = BrainProcess(tmp_path / "brain", port=free_port())
    token = brain.create_token("host")
    host = _stream(brain, token, small_disk / "spool", rate=8000, deadline=120)
    try:
        wait_for(
            # Less room than one more segment of the spool (about 80 KiB) needs.
            lambda: shutil.disk_usage(small_disk).free < 256 * 1024,
            60,
            "the spool's disk to fill",
        )
        brain.start()
        output, errors = host.communicate(timeout=200)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)
    summary = json.loads(output.strip().splitlines()[-1])
    assert "cannot take events" in errors, errors[-2000:]
    assert summary["dropped"] > 0 and summary["acked"] + summary["dropped"] == EVENTS, summary
    agents = brain.api("GET", "/api/v1/agents")["agents"]
    brain.stop()
    assert [a["dropped_total"] for a in agents] == [summary["dropped"]], agents
    assert BrainStore(brain.database).count_events("task-") == summary["acked"]
