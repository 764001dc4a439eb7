"""The agent and a real brain process over a real socket: the link's promises end to end."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from e2e import run_host, stored_events

from z4j_core.testing.brainproc import BrainProcess


def test_brain_killed_mid_stream_loses_and_doubles_nothing(
    brain: BrainProcess, tmp_path: Path
) -> None:
    count = 20_000
    token = brain.create_token("streamer")
    brain.start()
    host = run_host(brain, token, tmp_path / "spool", "stream", str(count), "5000", deadline=90)
    time.sleep(1.5)  # mid-stream
    brain.kill()
    time.sleep(3)
    brain.start()
    out, err = host.communicate(timeout=120)
    assert host.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["dropped"] == 0 and summary["errors"] == 0

    rows = stored_events(brain)
    per_task = Counter(task for _, _, task in rows)
    assert len(per_task) == count, f"{count - len(per_task)} events missing"
    assert max(per_task.values()) == 1, "an event was stored twice"
    assert summary["acked"] >= count


def test_brain_down_at_start_host_is_not_blocked_and_events_arrive_later(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("early")
    host = run_host(brain, token, tmp_path / "spool", "stream", "30000", "20000", deadline=90)
    time.sleep(4)  # all emitted while no brain listens
    brain.start()
    out, err = host.communicate(timeout=120)
    assert host.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["start_seconds"] < 0.5  # generous; the benchmark measures the real figure
    assert summary["dropped"] == 0
    # 30,000 events piled up with no brain, yet memory held at most the bound (10,000) plus
    # one spool segment being filled: the rest waited on disk.
    assert summary["max_pending"] <= 10_000 + 2_000
    assert len({task for _, _, task in stored_events(brain)}) == 30_000


def test_a_hanging_command_delays_neither_another_command_nor_events(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("commands")
    brain.start()
    host = run_host(brain, token, tmp_path / "spool", "serve", "25")
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline and not brain.api("GET", "/api/v1/agents?connected=1")["agents"]
    ):
        time.sleep(0.1)

    def command(task: str) -> dict[str, Any]:
        body = {
            "kind": "enqueue",
            "engine": "testengine",
            "app": "hostapp",
            "task": task,
            "deadline": 20,
        }
        result: dict[str, Any] = brain.api("POST", "/api/v1/commands", body, timeout=30)
        return result

    hanging: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: hanging.update(command("hang")), daemon=True)
    thread.start()
    time.sleep(0.5)
    events_before = len(stored_events(brain))
    quick = command("quick")
    assert quick["status"] == "enqueued", quick
    assert not hanging, "the hanging command answered before it was released"
    unknown = command("no.such.task")
    assert unknown["status"] == "rejected" and "no.such.task" in unknown["reason"]
    time.sleep(1.0)
    assert len(stored_events(brain)) > events_before, "events stopped while a command hung"
    host.communicate(timeout=60)
    thread.join(30)


def test_agent_check_reports_round_trip_and_names_failures(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("checker")
    brain.start()
    ok = brain.cli("agent", "check", "--brain-url", brain.url, "--token", token)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: connected to"), ok.stderr

    began = time.monotonic()
    wrong = brain.cli(
        "agent", "check", "--brain-url", brain.url, "--token", "z4j_wrong", check=False
    )
    assert wrong.returncode != 0
    assert "refused the token" in wrong.stderr and "Traceback" not in wrong.stderr

    brain.stop()
    down = brain.cli("agent", "check", "--brain-url", brain.url, "--token", token, check=False)
    assert down.returncode != 0 and "cannot reach" in down.stderr
    assert time.monotonic() - began < 2 * 15 + 10


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run with pytest")
