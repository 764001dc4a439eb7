"""Agent <-> brain link faults, each a function the tests assert on and the bench prints.

Every scenario starts a real brain (SQLite) behind a `ThreadedProxy`, a real host process with
the agent emitting a steady stream of events through the proxy, injects one fault, and returns
figures: events lost and stored twice (counted by task id in the brain's database), recovery
time, the agent's memory and drop counts. Timings are measured, never asserted here.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.faults.harness import (
    HEARTBEAT,
    Host,
    brain_behind_proxy,
    check_every_event_once,
    start_host,
)
from z4j_core.testing.waiting import wait_for

#: A silent peer is given up after three heartbeats; the tests wait far longer than that.
DETECT_DEADLINE = 3 * HEARTBEAT + 15


def _reconnected_after(host: Host, sessions_before: int, timeout: float, what: str) -> float:
    """Wait for a new session; returns the monotonic instant the host first saw it."""
    status = wait_for(
        lambda: (
            s if (s := host.status()) and s["sessions"] > sessions_before and s["connected"] else {}
        ),
        timeout,
        what,
    )
    return float(status["now"])


def _disconnected(host: Host, timeout: float, what: str) -> float:
    status = wait_for(
        lambda: s if (s := host.status()) and not s["connected"] else {}, timeout, what
    )
    return float(status["now"])


def _until_acked(host: Host, at_least: int, timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (s := host.status()) and s["acked"] >= at_least and s, timeout, "events acked"
    )


def _totals(brain: BrainProcess, host: Host, count: int, timeout: float) -> dict[str, Any]:
    summary = host.finish(timeout)
    missing, doubled = check_every_event_once(brain, count)
    return {
        "events": count,
        "lost": missing,
        "stored_twice": doubled,
        "agent_dropped": summary["dropped"],
        "agent_errors": summary["errors"],
        "acked": summary["acked_at_end"],
        "max_rss_mb": summary["max_rss"] / 2**20,
        "max_pending": summary["max_pending"],
        "slowest_emit_ms": summary["slowest_emit"] * 1000,
    }


def cut_mid_batch(
    workdir: Path, count: int = 20_000, rate: float = 2000, cuts: int = 3, spacing: float = 0
) -> dict[str, Any]:
    """Reset the link (RST both ways) while batches are in flight, `cuts` times, at least
    `spacing` seconds after the previous reconnect (a session that lived 10 s resets the
    agent's backoff; quicker cuts show the backoff growing, as for a flapping link)."""
    with brain_behind_proxy(workdir) as (brain, proxy):
        token = brain.create_token("cutter")
        host = start_host(
            proxy.url(), token, workdir / "host", "stream", str(count), str(rate), deadline=120
        )
        try:
            recoveries, in_flight = [], []
            back = time.monotonic()
            for n in range(cuts):
                status = _until_acked(host, (n + 1) * count // (cuts + 2), timeout=120)
                time.sleep(max(0.0, back + spacing - time.monotonic()))
                status = host.status()
                # Hold bytes 0.2 s in the proxy so a window of batches is surely unacknowledged.
                proxy.set_mode("delay", 0.2)
                time.sleep(0.3)
                in_flight.append(host.status()["in_flight"])
                cut_at = time.monotonic()
                proxy.restore()  # reset both sides, and pass again
                back = _reconnected_after(host, status["sessions"], 30, "a reconnect after a cut")
                recoveries.append(back - cut_at)
            figures = _totals(brain, host, count, 120)
        finally:
            host.kill()
    return {**figures, "cuts": cuts, "unacked_at_cut": in_flight, "recovery_s": recoveries}


def blackhole(
    workdir: Path,
    *,
    count: int = 12_000,
    rate: float = 1000,
    hole_seconds: float = 8.0,
    extra_env: dict[str, str] | None = None,
    brain_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Drop every byte both ways (a half-open link) for `hole_seconds`, then restore it.
    `extra_env` goes to the agent's host, `brain_env` to the brain (its announced limits)."""
    with brain_behind_proxy(workdir, **(brain_env or {})) as (brain, proxy):
        token = brain.create_token("holed")
        host = start_host(
            proxy.url(),
            token,
            workdir / "host",
            "stream",
            str(count),
            str(rate),
            deadline=120,
            extra_env=extra_env,
        )
        try:
            status = _until_acked(host, count // 8)
            hole_at = time.monotonic()
            proxy.blackhole()
            noticed = _disconnected(host, DETECT_DEADLINE, "the agent to notice the half-open link")
            rss_in_hole, pending_in_hole = [], []
            while time.monotonic() < hole_at + hole_seconds:
                now = host.status()
                rss_in_hole.append(now.get("rss", 0))
                pending_in_hole.append(now.get("pending", 0))
                time.sleep(0.1)
            held = host.status()
            restored_at = time.monotonic()
            proxy.passthrough()
            back = _reconnected_after(host, status["sessions"], 60, "a reconnect after the hole")
            figures = _totals(brain, host, count, 180)
        finally:
            host.kill()
        agents = brain.api("GET", "/api/v1/agents")["agents"]
    return {
        **figures,
        "detect_s": noticed - hole_at,
        "recovery_s": back - restored_at,
        "rss_in_hole_mb": max(rss_in_hole) / 2**20,
        "emitted_in_hole": held.get("emitted", 0) - status.get("emitted", 0),
        "max_pending_in_hole": max(pending_in_hole),
        "spooled_bytes_in_hole": held.get("spooled_bytes"),
        "brain_dropped_total": sum(int(a.get("dropped_total", 0)) for a in agents),
    }


def brain_stopped(
    workdir: Path, count: int = 12_000, rate: float = 1000, stop_seconds: float = 8.0
) -> dict[str, Any]:
    """SIGSTOP the brain (it answers nothing, closes nothing), then SIGCONT it."""
    with brain_behind_proxy(workdir) as (brain, proxy):
        token = brain.create_token("frozen")
        host = start_host(
            proxy.url(), token, workdir / "host", "stream", str(count), str(rate), deadline=120
        )
        assert brain.process is not None
        try:
            status = _until_acked(host, count // 8)
            stopped_at = time.monotonic()
            os.kill(brain.process.pid, signal.SIGSTOP)
            try:
                noticed = _disconnected(host, DETECT_DEADLINE, "the agent to notice the brain")
                time.sleep(max(0.0, stopped_at + stop_seconds - time.monotonic()))
            finally:
                resumed_at = time.monotonic()
                os.kill(brain.process.pid, signal.SIGCONT)
            back = _reconnected_after(host, status["sessions"], 60, "a reconnect after SIGCONT")
            figures = _totals(brain, host, count, 180)
        finally:
            host.kill()
    return {**figures, "detect_s": noticed - stopped_at, "recovery_s": back - resumed_at}


def host_latency(workdir: Path, tasks: int = 3000, hole: bool = True) -> dict[str, Any]:
    """A worker loop with the agent attached; the brain blackholed (or healthy) throughout."""
    with brain_behind_proxy(workdir) as (brain, proxy):
        token = brain.create_token("worker")
        worker = start_host(proxy.url(), token, workdir / "worker", "work", str(tasks))
        try:
            if hole:  # once the agent is in session: a half-open link, not a refused one
                wait_for(lambda: worker.status().get("connected"), 30, "the agent to connect")
                proxy.blackhole()
            summary = worker.finish(120)
        finally:
            worker.kill()
    return {
        "blackholed": hole,
        "tasks": summary["tasks"],
        "latency_p50_ms": summary["latency_p50"] * 1000,
        "latency_p99_ms": summary["latency_p99"] * 1000,
        "latency_max_ms": summary["latency_max"] * 1000,
        "slowest_emit_ms": summary["slowest_emit"] * 1000,
        "stop_s": summary["stop_seconds"],
        "agent_dropped": summary["dropped"],
        "agent_errors": summary["errors"],
    }


def shutdown_while_blackholed(
    workdir: Path, drain_timeout: float = 2.0, count: int = 5000, rate: float = 5000
) -> dict[str, Any]:
    """Events pending, the brain blackholed mid-session: `agent.stop(T)` must return in about T
    and keep what it could not send (spooled); a later agent on the host replays it."""
    with brain_behind_proxy(workdir) as (brain, proxy):
        token = brain.create_token("stopper")
        host = start_host(
            proxy.url(),
            token,
            workdir / "host",
            "stream",
            str(count),
            str(rate),
            deadline=0,
            stop_timeout=drain_timeout,
        )
        try:
            wait_for(lambda: host.status().get("connected"), 30, "the agent to connect")
            proxy.blackhole()
            summary = host.finish(drain_timeout + 60)
        finally:
            host.kill()
        proxy.passthrough()
        # The next agent process of this host (same spool folder) replays what was left.
        later = start_host(proxy.url(), token, workdir / "host", "idle", "5")
        later.finish(60)
        replayed_by = time.monotonic() + 60
        while check_every_event_once(brain, count)[0] and time.monotonic() < replayed_by:
            time.sleep(0.2)
        missing, doubled = check_every_event_once(brain, count)
    return {
        "drain_timeout_s": drain_timeout,
        "stop_s": summary["stop_seconds"],
        "pending_at_stop": summary["pending"],
        "agent_dropped": summary["dropped"],
        "lost": missing,
        "stored_twice": doubled,
    }
