"""Helpers for the end-to-end link tests: the host process and the brain's stored rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from z4j_core.testing import brainapi
from z4j_core.testing.brainproc import BrainProcess

HOST = "z4j_core.testing.agent_host"


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
        [sys.executable, "-m", HOST, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_events(brain: BrainProcess) -> list[tuple[str, int, str]]:
    """(agent instance, sequence number, task id) of every event stored, read over the API."""
    events = brainapi.events(brain)
    return [(str(e["agent_instance"]), int(e["seq"]), str(e["task_id"])) for e in events]
