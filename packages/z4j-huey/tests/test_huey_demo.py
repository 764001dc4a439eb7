"""The README's demo, run for a few seconds: it shows the agent connecting and each task's
lifecycle, answers the repeated fire `duplicate`, and leaves nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

MAIN = Path(__file__).resolve().parents[3] / "scripts" / "demo_app" / "main.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_the_demo_shows_the_lifecycle_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    result = subprocess.run(
        [sys.executable, str(MAIN), "--duration", "6"],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "agent connected: app=demo" in out
    assert "observed schedule demo_tasks.refresh_report: cron '*/5 * * * *'" in out
    assert re.search(r"succeeded demo_tasks\.add \[\S+\] in \d+ ms", out), out
    assert re.search(r"failed\s+demo_tasks\.charge_card .*RuntimeError: card declined", out), out
    assert "sent fire demo_tasks.add -> duplicate" in out
    assert "no_such_task -> rejected (unknown task" in out
    assert "sk-live-not-for-your-eyes" not in out, "a secret reached the brain"
    assert "first task succeeded" in out
    # Schedules owned by the brain, driven through the CLI.
    assert "created schedule 'tick'" in out and "created schedule 'lights-on'" in out
    assert re.search(r"triggered 'tick': fire \S+_\d{8}T\d{12,}Z", out), out
    assert "observed (huey_periodic, read-only" in out
    assert "edited schedule 'heartbeat': every 1 second" in out
    assert re.search(r"\d{8}T\d{6}Z\s+scheduled\s+enqueued\s+\S+\s+\S+\s+succeeded", out), out
    assert re.search(r"audit log OK: \d+ rows verified", out), out
    pids = [int(p) for p in re.findall(r"pid (\d+)", out.splitlines()[-1])]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
