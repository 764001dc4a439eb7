"""Faults around a real Huey consumer and the brain's scheduler, for the tests and the bench:
clock skew between agents and brain, a worker stopped while its brain is blackholed, and
Postgres cut under a leader while a per-second schedule fires.

The consumer is the scheduler rig's sink (z4j_core/testing/sink.py): each execution
appends its Huey task id, which is the z4j fire id, so the sink file counts runs per slot.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.faults.harness import HEARTBEAT, start_host
from z4j_core.testing.faults.proxy import ThreadedProxy
from z4j_core.testing.sink import Sink, fires, is_leader, live_agents, make_brain, schedule_body
from z4j_core.testing.waiting import wait_for

SKEWED_CLOCK = Path(__file__).resolve().parent / "skewed_clock"


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set variables for the child processes started inside (the sink copies os.environ)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _skew_env(offset: float) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(SKEWED_CLOCK), os.environ.get("PYTHONPATH")]))
    return {"Z4J_TEST_CLOCK_OFFSET": str(offset), "PYTHONPATH": path}


def _every_second(name: str) -> dict[str, Any]:
    start = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    spec = {"kind": "interval", "every": "1s", "anchor": start, "catch_up": "all",
            "misfire_grace": "60s"}  # fmt: skip
    return schedule_body(name, spec)


def _settled_fires(brain: BrainProcess, name: str, timeout: float = 60) -> list[dict[str, Any]]:
    brain.api("POST", f"/api/v1/schedules/{name}/pause", {"note": "end of test"})
    return wait_for(
        lambda: (
            found
            if (found := fires(brain, name))
            and all(f["state"] not in ("pending", "delivering") for f in found)
            else []
        ),
        timeout,
        "every fire to be answered",
    )


def _runs_at_sink(sink: Sink, wanted: set[str], timeout: float = 90) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while not set(sink.counts()) >= wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return sink.counts()


def clock_skew(
    workdir: Path, offset: float, events: int = 2000, seconds: float = 6
) -> dict[str, Any]:
    """Agents whose wall clock is `offset` seconds off the brain's: a streaming host and a Huey
    consumer firing a per-second schedule. Returns what was stored, fired and run."""
    brain = make_brain(workdir / "brain")
    token = brain.create_token("skewed")
    brain.start()
    sink: Sink | None = None
    host = None
    try:
        with environ(**_skew_env(offset)):
            sink = Sink(workdir / "sink", brain.url, token)
            host = start_host(
                brain.url,
                token,
                workdir / "host",
                "stream",
                str(events),
                "1000",
                extra_env=_skew_env(offset),
            )
        wait_for(lambda: live_agents(brain) >= 2, 30, "both skewed agents to connect")
        brain.api("POST", "/api/v1/schedules", _every_second("skewed"))
        summary = host.finish(60)
        time.sleep(max(0.0, seconds - 2))
        settled = _settled_fires(brain, "skewed")
        wanted = {f["fire_id"] for f in settled}
        counts = _runs_at_sink(sink, wanted)
    finally:
        if host is not None:
            host.kill()
        if sink is not None:
            sink.stop()
        brain.stop()
    rows = BrainStore(brain.database).event_times("task-")
    shifts = [at - stored_at for _, at, stored_at in rows]
    return {
        "offset_s": offset,
        "events": events,
        "stored": len({task for task, _, _ in rows}),
        "stored_rows": len(rows),
        "acked": summary["acked_at_end"],
        "at_minus_stored_at_min_s": min(shifts) if shifts else None,
        "at_minus_stored_at_max_s": max(shifts) if shifts else None,
        "fires": len(settled),
        "fire_states": dict(Counter(f["state"] for f in settled)),
        "fires_run": sum(1 for f in wanted if counts[f] >= 1),
        "fires_run_twice": sum(1 for n in counts.values() if n > 1),
    }


def worker_stop_while_blackholed(
    workdir: Path, drain_timeout: float = 2.0, hole: bool = True
) -> dict[str, Any]:
    """A Huey consumer with the agent, its brain blackholed after a few fires: SIGTERM it and
    time how long it takes to exit (the agent's part is bounded by its drain timeout)."""
    brain = make_brain(workdir / "brain", port=None)
    brain.env["Z4J_HEARTBEAT_SECONDS"] = str(HEARTBEAT)
    token = brain.create_token("worker")
    brain.start()
    proxy = ThreadedProxy(brain.port).start()
    sink: Sink | None = None
    try:
        with environ(Z4J_DRAIN_TIMEOUT=str(drain_timeout)):
            sink = Sink(workdir / "sink", proxy.url(), token)
        wait_for(lambda: live_agents(brain), 30, "the consumer's agent")
        brain.api("POST", "/api/v1/schedules", _every_second("busy"))
        wait_for(lambda: len(sink.counts()) >= 2 if sink else False, 20, "tasks to run")
        if hole:
            # Fires still reach the consumer and run, but nothing the agent sends arrives: the
            # lifecycle events and results of those runs pile up unacknowledged.
            proxy.blackhole("up")
        time.sleep(2.0)
        ran_in_hole = len(sink.counts())
        began = time.monotonic()
        sink.process.send_signal(signal.SIGTERM)
        try:
            sink.process.wait(drain_timeout + 30)
            exited = True
        except Exception:
            exited = False
        took = time.monotonic() - began
    finally:
        if sink is not None:
            sink.stop()
        proxy.close()
        brain.stop()
    return {
        "drain_timeout_s": drain_timeout,
        "blackholed": hole,
        "exited": exited,
        "shutdown_s": took,
        "exit_code": sink.process.returncode if sink else None,
        "tasks_run_total": ran_in_hole,
    }


def postgres_cut(
    workdir: Path, database: str, faults: int = 3, mode: str = "cut", outage: float = 3.0
) -> dict[str, Any]:
    """Two brains on one Postgres reached through a proxy; a per-second schedule fires into a
    Huey consumer; the proxy resets every brain<->Postgres connection (`mode="cut"`, as a
    Postgres restart does) or blackholes them for `outage` seconds, `faults` times."""
    from urllib.parse import urlsplit, urlunsplit

    url = urlsplit(database)
    pg_proxy = ThreadedProxy(url.port or 5432, url.hostname or "127.0.0.1").start()
    proxied = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{pg_proxy.port}"))
    brains = [make_brain(workdir / name, proxied) for name in ("a", "b")]
    token = brains[0].create_token("sink")
    sink: Sink | None = None
    recoveries: list[float] = []
    outages: list[float] = []
    leaders: list[str] = []  # which brain led before each fault
    try:
        for brain in brains:
            brain.start()
        sink = Sink(workdir / "sink", brains[1].url, token)
        wait_for(lambda: live_agents(brains[1]), 30, "the sink's agent")
        brains[0].api("POST", "/api/v1/schedules", _every_second("tick"))
        wait_for(lambda: len(fires(brains[0], "tick")) >= 2, 15, "the first fires")
        for _ in range(faults):
            leaders.append(str(wait_for(lambda: _leader(brains), 30, "a leader")))
            time.sleep(1.5)
            fault_at = time.monotonic()
            if mode == "cut":
                pg_proxy.cut()
            else:
                pg_proxy.blackhole()
                time.sleep(outage)
                pg_proxy.restore()  # what was held open is reset as the path comes back
            restored_at, restored_wall = time.monotonic(), time.time()

            # Recovered when a slot due after the path came back has fired (a second's wait is
            # the schedule's own); leadership may have moved to the other brain meanwhile.
            def resumed(after: float = restored_wall) -> bool:
                return any(f["slot"] > after for f in _fires_or_none(brains) or [])

            wait_for(resumed, 90, "fires to resume after the fault")
            recoveries.append(time.monotonic() - restored_at)
            outages.append(restored_at - fault_at)
        time.sleep(3.0)
        alive = next(b for b in brains if _fires_or_none([b]))
        settled = _settled_fires(alive, "tick", timeout=90)
        counts = _runs_at_sink(sink, {f["fire_id"] for f in settled})

        def leading_now() -> list[str]:
            return [name for name, b in zip("ab", brains, strict=True) if is_leader(b)]

        # One leader once things settle; a busy machine may still be between a lease's expiry
        # and the next election when the fires have settled, so give it a moment.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: len(leading_now()) == 1, 30, "one leader")
        leading = leading_now()
    finally:
        if sink is not None:
            sink.stop()
        for brain in brains:
            brain.stop()
        pg_proxy.close()
    slots = [f["slot"] for f in settled]
    states = Counter(f["state"] for f in settled)
    return {
        "mode": mode,
        "faults": faults,
        "slots": len(slots),
        "slot_gaps": [b for a, b in pairwise(slots) if b != a + 1],
        "slots_doubled": len(slots) - len(set(slots)),
        "fire_states": dict(states),
        "runs_twice": sum(1 for n in counts.values() if n > 1),
        "never_run": [
            f["fire_id"] for f in settled if f["state"] == "enqueued" and not counts[f["fire_id"]]
        ],
        "leader_before_each_fault": "".join(leaders),
        "leaders_at_end": len(leading),
        "outage_s": outages,
        "recovery_s": recoveries,
    }


def _fires_or_none(brains: list[BrainProcess]) -> list[dict[str, Any]] | None:
    """The schedule's fires as the first brain that answers sees them."""
    for brain in brains:
        with contextlib.suppress(Exception):
            found = fires(brain, "tick")
            if found:
                return found
    return None


def _leader(brains: list[BrainProcess]) -> str | None:
    """Which brain leads now ("a", "b"), or None."""
    return next((name for name, b in zip("ab", brains, strict=True) if is_leader(b)), None)
