"""The z4j demo: a brain, a Huey app with the agent, a consumer, and tasks sent through the brain.

Run through `./scripts/demo [--duration N]`, which prepares the environment. Everything lives in a
temporary folder and every process it starts is stopped before it exits. To show more (schedules
firing, more engines), add a step to `STEPS`: each is a function of the running `Demo`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import webbrowser
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess

HERE = Path(__file__).resolve().parent
APP = "demo"
COLORS = {
    "succeeded": "32",
    "failed": "31",
    "retried": "33",
    "started": "36",
    "enqueued": "37",
    "scheduled": "37",
    "expired": "35",
}


def color(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if sys.stdout.isatty() else text


class Demo:
    def __init__(self, workdir: Path, began: float) -> None:
        self.workdir = workdir
        self.began = began
        self.brain = BrainProcess(workdir / "brain")
        self.consumer: subprocess.Popen[bytes] | None = None
        self.first_success: float | None = None
        self.kinds: Counter[str] = Counter()
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None

    def say(self, text: str) -> None:
        print(f"{time.monotonic() - self.began:6.1f}s  {text}", flush=True)

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> None:
        token = self.brain.create_token("demo")
        self.brain.start()
        self.say(f"brain listening on {self.brain.http_url} (SQLite in {self.workdir})")
        self.say(
            f"console: {self.brain.http_url}/ (log in with the demo's admin token "
            f"{ADMIN_TOKEN}; --duration 600 leaves time to look around)"
        )
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": self.brain.url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(self.workdir / "spool"),
            "DEMO_HUEY_DB": str(self.workdir / "huey.sqlite3"),
            "PYTHONPATH": str(HERE),
        }
        log = open(self.workdir / "consumer.log", "ab")  # noqa: SIM115 -- handed to the child
        self.consumer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "huey.bin.huey_consumer",
                "demo_tasks.huey",
                "--workers",
                "2",
                "--delay",
                "0.05",
                "--max-delay",
                "0.2",
            ],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.say(f"huey consumer started (pid {self.consumer.pid}, 2 thread workers)")
        self._tail = threading.Thread(target=self._tail_events, daemon=True)
        self._tail.start()

    def wait_for_agent(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            agents = self.brain.api("GET", "/api/v1/agents?connected=1")["agents"]
            if agents:
                agent: dict[str, Any] = agents[0]
                engines = ", ".join(
                    f"{e['name']} {e['version']} [{', '.join(e['capabilities'])}]"
                    for e in agent["engines"]
                )
                self.say(
                    color("agent connected", "1;32")
                    + f": app={agent['app']} host={agent['host']} pid={agent['pid']} {engines}"
                )
                return agent
            if self.consumer is not None and self.consumer.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(f"no agent connected; consumer log:\n{self.consumer_log()}")

    def stop(self) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join(2)
        if self.consumer is not None and self.consumer.poll() is None:
            self.consumer.send_signal(signal.SIGINT)
            try:
                self.consumer.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.consumer.pid, signal.SIGKILL)
                self.consumer.wait(5)
        self.brain.stop()

    def consumer_log(self) -> str:
        path = self.workdir / "consumer.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- the brain's view --------------------------------------------------------------------

    def _tail_events(self) -> None:
        after = 0
        while not self._stop.is_set():
            try:
                page = self.brain.api("GET", f"/api/v1/events?after={after}&limit=500")
            except Exception:
                time.sleep(0.2)
                continue
            for event in page["events"]:
                self._show(event)
            after = page["next_after"]
            time.sleep(0.1)

    def _show(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        self.kinds[kind] += 1
        if kind == "succeeded" and self.first_success is None:
            self.first_success = time.monotonic()
        details = []
        if event.get("args") not in (None, "()"):
            details.append(f"args={event['args']}")
        if event.get("kwargs") not in (None, "{}"):
            details.append(f"kwargs={event['kwargs']}")
        if event.get("runtime") is not None:
            details.append(f"in {event['runtime'] * 1000:.0f} ms")
        if event.get("exception"):
            details.append(f"{event['exception']}: {event.get('message') or ''}")
        if kind == "retried" and event.get("retries") is not None:
            details.append(f"{event['retries']} retries left")
        self.say(
            f"  {color(kind.ljust(9), COLORS.get(kind, '0'))} {event['task_name']} "
            f"[{event['task_id'][:14]}] {' '.join(details)}"
        )

    def send(self, task: str, *args: Any, **body: Any) -> dict[str, Any]:
        request = {
            "kind": "enqueue",
            "engine": "huey",
            "app": APP,
            "task": task,
            "args": list(args),
        }
        request.update(body)
        answer: dict[str, Any] = self.brain.api("POST", "/api/v1/commands", request)
        note = f" ({answer['reason']})" if answer.get("reason") else ""
        self.say(f"sent {request['kind']} {task} -> {answer['status']}{note}")
        return answer


# -- what the demo shows, step by step -----------------------------------------------------------


def show_inventory(demo: Demo) -> None:
    for _ in range(50):
        items = demo.brain.api("GET", "/api/v1/inventory")["inventory"]
        if items:
            item = items[0]
            demo.say(f"inventory: {len(item['tasks'])} tasks registered")
            for schedule in item["schedules"]:
                first = time.strftime("%H:%M", time.localtime(schedule["next_runs"][0]))
                demo.say(
                    f"  observed schedule {schedule['task']}: {schedule['kind']} "
                    f"'{schedule['expression']}', next at {first} (read-only)"
                )
            return
        time.sleep(0.1)


def send_tasks(demo: Demo) -> None:
    demo.send("demo_tasks.add", 2, 3)
    demo.send(
        "demo_tasks.send_welcome_email",
        "ada@example.com",
        kwargs={"api_token": "sk-live-not-for-your-eyes"},
    )
    demo.send("demo_tasks.charge_card", 4200)
    demo.send("demo_tasks.flaky_sync")
    fire = {
        "kind": "fire",
        "fire_id": "demo-fire-0001",
        "schedule_id": "demo-schedule",
        "slot": "2030-01-01T09:00:00+00:00",
    }
    demo.send("demo_tasks.add", 40, 2, **fire)
    demo.send("demo_tasks.add", 40, 2, **fire)  # the same fire again: answered duplicate
    demo.send("demo_tasks.no_such_task")


def z4j(demo: Demo, *args: str) -> str:
    """Run the `z4j` command as an operator would, show it and its output."""
    demo.say(color("$ z4j " + " ".join(args), "1"))
    result = demo.brain.cli(*args, "--brain-url", demo.brain.http_url, check=False)
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        print(f"         {line}", flush=True)
    if result.returncode != 0 and args[:2] != ("audit", "verify"):
        raise SystemExit(f"z4j {' '.join(args)} failed")
    return result.stdout


def wait_for_fires(demo: Demo, name: str, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    fires: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        fires = demo.brain.api("GET", f"/api/v1/schedules/{name}/fires")["fires"]
        if sum(f["task_state"] == "succeeded" for f in fires) >= count:
            break
        time.sleep(0.2)
    return fires


def schedules(demo: Demo) -> None:
    """Schedules owned by the brain: created, fired, triggered and edited live from the CLI."""
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
    task = "demo_tasks.add"
    z4j(demo, "schedules", "add", "tick", "--task", task, "--engine", "huey",
        "--cron", "* * * * * */10", "--args", "[1, 1]")  # fmt: skip
    z4j(demo, "schedules", "add", "heartbeat", "--task", task, "--engine", "huey",
        "--every", "3s", "--args", "[2, 2]", "--catch-up", "one")  # fmt: skip
    z4j(demo, "schedules", "add", "launch", "--task", task, "--engine", "huey",
        "--at", soon, "--args", "[3, 3]")  # fmt: skip
    z4j(demo, "schedules", "add", "lights-on", "--task", task, "--engine", "huey",
        "--solar", "sunset", "--lat", "48.85", "--lon", "2.35", "--tz", "Europe/Paris")  # fmt: skip
    z4j(demo, "schedules", "list", "--all")
    z4j(demo, "schedules", "trigger", "tick", "--idempotency-key", "demo-1")
    fires = wait_for_fires(demo, "heartbeat", 2, 10)
    demo.say(color("fires arriving", "1;32") + f": heartbeat fired {len(fires)} times so far")
    z4j(demo, "schedules", "edit", "heartbeat", "--every", "1s")
    time.sleep(2.5)
    wait_for_fires(demo, "launch", 1, 8)
    z4j(demo, "schedules", "history", "heartbeat", "--limit", "6")
    z4j(demo, "schedules", "history", "launch")
    z4j(demo, "schedules", "pause", "heartbeat", "--note", "demo over")
    z4j(demo, "audit", "list")
    z4j(demo, "audit", "verify")


STEPS: list[Callable[[Demo], None]] = [show_inventory, send_tasks, schedules]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to run (20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--open", action="store_true", help="open the console in the default web browser"
    )
    options = parser.parse_args(argv)
    began = float(os.environ.get("Z4J_DEMO_BEGAN_MONOTONIC") or time.monotonic())
    workdir = Path(tempfile.mkdtemp(prefix="z4j-demo-"))
    demo = Demo(workdir, began)
    ran_for = time.monotonic()
    try:
        demo.start()
        if options.open:
            webbrowser.open(f"{demo.brain.http_url}/login")
        demo.wait_for_agent()
        for step in STEPS:
            step(demo)
        while time.monotonic() - ran_for < options.duration:
            time.sleep(0.2)
    except KeyboardInterrupt:
        demo.say("interrupted")
    finally:
        demo.stop()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    states = Counter(demo.kinds)
    print(json.dumps({"summary": dict(sorted(states.items()))}))
    if demo.first_success is not None:
        print(f"first task succeeded {demo.first_success - began:.1f}s after the demo began")
    pids = [p for p in (demo.brain.process, demo.consumer) if p is not None]
    print(f"stopped: brain pid {pids[0].pid}, consumer pid {pids[-1].pid}; nothing left running")
    return 0 if demo.first_success is not None else 1


if __name__ == "__main__":
    sys.exit(main())
