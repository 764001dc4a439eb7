"""The reconnect storm, shared by `test_storm.py` (reduced) and `bench/bench_storm.py` (1,000).

A real brain process; simulated agents (`storm_host.py`: many real `Link`s per process, each
with its own identity and a real token) connect and each sends an event batch; the brain is
stopped with SIGTERM and started again on the same port and database; every agent reconnects
on its own backoff with full jitter and sends one more batch. Meanwhile a prober asks the
brain's `/healthz` and one API route (`/api/v1/tasks`) every 100 ms and records each latency.
`run_storm` returns what happened; the caller asserts (the test) or prints (the benchmark).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.brainstore import BrainStore

HOST = "z4j_core.testing.storm_host"
PROBE_EVERY = 0.1  # seconds between probes of /healthz (and of the API route)
PROBE_TIMEOUT = 10.0  # generous: a probe slower than this counts as unanswered
SETTLE = 11.0  # sessions older than the link's STABLE_SESSION (10 s) reset its backoff


@dataclass
class Probe:
    t: float
    route: str
    latency: float | None  # None: refused, failed or timed out
    agents_connected: int | None = None


class Host:
    """One `storm_host.py` process and what it reported so far."""

    def __init__(self, brain: BrainProcess, first: int, count: int, tokens: list[str]) -> None:
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": brain.url,
            "STORM_TOKENS": ",".join(tokens),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", HOST, str(first), str(count)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.opens: list[dict[str, Any]] = []
        self.status: dict[str, Any] = {"connected": 0, "acked": 0}
        self.statuses: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.stderr = ""
        self._lock = threading.Lock()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._errors = threading.Thread(target=self._drain, args=(self.process.stderr,))
        for thread in (self._reader, self._errors):
            thread.daemon = True
            thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._lock:
                if message["type"] == "open":
                    self.opens.append(message)
                elif message["type"] == "status":
                    self.status = message
                    self.statuses.append(message)
                elif message["type"] == "final":
                    self.final = message

    def _drain(self, stream: IO[str]) -> None:
        text = stream.read()
        self.stderr = text[-4000:]

    def opens_of(self, n: int) -> list[dict[str, Any]]:
        """Every agent's ``n``-th session."""
        with self._lock:
            return [o for o in self.opens if o["n"] == n]

    def reopens_after(self, instant: float) -> dict[int, float]:
        """Agent index -> the instant of its first session opened after ``instant``."""
        found: dict[int, float] = {}
        with self._lock:
            for o in self.opens:
                if o["t"] > instant and o["i"] not in found:
                    found[o["i"]] = o["t"]
        return found

    def stop(self) -> dict[str, Any] | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        self._errors.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.final


class Prober:
    """Asks /healthz and /api/v1/tasks every PROBE_EVERY seconds on two threads."""

    def __init__(self, brain: BrainProcess) -> None:
        self.brain = brain
        self.samples: list[Probe] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(route,), daemon=True)
            for route in ("/healthz", "/api/v1/tasks?limit=10")
        ]

    def start(self) -> Prober:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Probe]:
        self._stop.set()
        for thread in self._threads:
            thread.join(PROBE_TIMEOUT + 5)
        return sorted(self.samples, key=lambda p: p.t)

    def _loop(self, route: str) -> None:
        while not self._stop.is_set():
            began = time.time()
            self.samples.append(self._probe(route, began))
            self._stop.wait(max(0.0, PROBE_EVERY - (time.time() - began)))

    def _probe(self, route: str, began: float) -> Probe:
        request = urllib.request.Request(
            f"{self.brain.http_url}{route}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as answer:
                body = json.loads(answer.read())
        except (OSError, ValueError):
            return Probe(began, route, None)
        latency = time.time() - began
        return Probe(began, route, latency, body.get("agents_connected"))


@dataclass
class StormResult:
    agents: int
    hosts: int
    sigterm_at: float = 0.0
    down_at: float = 0.0  # the old brain process exited
    exit_code: int | None = None  # the old brain's (0: it shut down cleanly on SIGTERM)
    disconnected_at: float | None = None  # no agent connected any more (hosts report twice a s)
    back_at: float = 0.0  # the new brain's first answer to a probe or first agent session
    first_opens: list[float] = field(default_factory=list)
    reopens: dict[int, float] = field(default_factory=dict)  # agent index -> reconnect instant
    probes: list[Probe] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    events_by_agent: Counter[str] = field(default_factory=Counter)
    instances: set[str] = field(default_factory=set)
    all_back: bool = False

    @property
    def reconnect_delays(self) -> list[float]:
        """Seconds from the new brain being back to each agent's new session."""
        return sorted(t - self.back_at for t in self.reopens.values())

    def probes_after_back(self) -> list[Probe]:
        return [p for p in self.probes if p.t >= self.back_at]

    def unanswered_after_back(self) -> list[Probe]:
        return [p for p in self.probes_after_back() if p.latency is None]


def stored_events_by_agent(brain: BrainProcess) -> Counter[str]:
    """Events of the storm's agents stored in the brain's database, per agent instance."""
    return Counter(BrainStore(brain.database).events_per_agent("storm"))


def stop_patiently(brain: BrainProcess, patience: float = 120.0) -> int | None:
    """SIGTERM, then wait for the exit (SIGKILL only past ``patience``); the exit code."""
    process = brain.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(patience)
    except subprocess.TimeoutExpired:
        brain.kill()
        return None


def all_disconnected_at(hosts: list[Host], after: float) -> float | None:
    """The first status instant after ``after`` at which every host reported no connection."""
    instants = sorted({s["t"] for h in hosts for s in h.statuses if s["t"] > after})
    for instant in instants:
        latest = [next((s for s in reversed(h.statuses) if s["t"] <= instant), None) for h in hosts]
        if all(s is not None and s["connected"] == 0 for s in latest):
            return float(instant)
    return None


def wait_until(probe: Any, timeout: float, what: str, hosts: list[Host]) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        for host in hosts:
            if host.process.poll() is not None:
                raise AssertionError(f"a storm host exited early:\n{host.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def run_storm(
    workdir: Path,
    agents: int,
    *,
    hosts: int = 4,
    tokens: int = 10,
    database: str | None = None,
    deadline: float = 300.0,
) -> StormResult:
    """Connect ``agents`` simulated agents, restart the brain, wait until all are back."""
    result = StormResult(agents, hosts)
    brain = BrainProcess(workdir / "brain", database=database)
    brain.start()
    running: list[Host] = []
    prober: Prober | None = None
    try:
        secrets = [
            brain.api("POST", "/api/v1/tokens", {"name": f"storm-{k}"})["token"]
            for k in range(tokens)
        ]
        per_host = -(-agents // hosts)
        for first in range(0, agents, per_host):
            running.append(Host(brain, first, min(per_host, agents - first), secrets))

        def first_sessions_acked() -> bool:
            opened = sum(len(h.opens_of(1)) for h in running)
            acked = sum(int(h.status["acked"]) for h in running)
            return opened == agents and acked >= agents

        wait_until(first_sessions_acked, deadline, f"{agents} agents' first sessions", running)
        result.first_opens = sorted(o["t"] for h in running for o in h.opens_of(1))
        time.sleep(max(0.0, result.first_opens[-1] + SETTLE - time.time()))

        prober = Prober(brain).start()
        time.sleep(1.0)  # a second of probes before the restart
        result.sigterm_at = time.time()
        result.exit_code = stop_patiently(brain)
        result.down_at = time.time()
        brain.start(timeout=60)
        answered = [p.t for p in prober.samples if p.latency is not None and p.t > result.down_at]
        back_at = min([time.time(), *answered])

        def all_reconnected_and_acked() -> bool:
            reopened = sum(len(h.reopens_after(result.down_at)) for h in running)
            acked = sum(int(h.status["acked"]) for h in running)
            return reopened >= agents and acked >= 2 * agents

        wait_until(all_reconnected_and_acked, deadline, "every agent to come back", running)
        result.all_back = True
        time.sleep(1.0)  # a second of probes after the storm
        result.probes = prober.stop()
        prober = None
        result.reopens = {i: t for h in running for i, t in h.reopens_after(result.down_at).items()}
        result.disconnected_at = all_disconnected_at(running, result.sigterm_at)
        # Back: the first sign of the new brain, an answered probe or an agent's new session
        # (probes come every 100 ms, so an agent may get in first).
        result.back_at = min(back_at, *result.reopens.values())
        result.instances = {o["instance"] for h in running for o in h.opens_of(1)}
        result.events_by_agent = stored_events_by_agent(brain)
    finally:
        if prober is not None:
            result.probes = prober.stop()
        for host in running:
            final = host.stop()
            if final is not None:
                result.finals.extend(final["agents"])
        brain.stop()
    return result
