"""Helpers for the end-to-end link tests: the host process and the brain's stored rows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from z4j_core.testing.brainproc import BrainProcess

HOST = Path(__file__).parent / "agent_host.py"


def run_host(
    brain: BrainProcess, token: str, spool: Path, *args: str, deadline: float = 60
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(spool),
        "HOST_DEADLINE": str(deadline),
    }
    return subprocess.Popen(
        [sys.executable, str(HOST), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_events(brain: BrainProcess) -> list[tuple[str, int, str]]:
    with sqlite3.connect(brain.database) as db:
        rows = db.execute("SELECT agent_instance, seq, task_id FROM events").fetchall()
    return [(str(a), int(s), str(t)) for a, s, t in rows]
