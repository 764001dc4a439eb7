"""The brain scheduler's benchmarks: fire latency, a herd, failover, live-edit latency.

    python bench/bench_scheduler.py              # everything, full counts
    python bench/bench_scheduler.py --quick      # shorter runs (10 s latency, 5 failovers)
    python bench/bench_scheduler.py --only latency|herd|failover|edit

- latency: 1,000 interval schedules of 1 s, anchors spread evenly over the second, for a
  minute, into a RedisHuey app (the agent in a real consumer); from each slot to the brain
  recording the agent's `enqueued` answer: p50, p99, max.
- herd: 1,000 one-shot schedules due at one instant: time until the last is enqueued.
- failover: two brains on Postgres and a per-second schedule; the leader is SIGKILLed 20
  times: from the kill to the first fire written by the new leader, median and max (and every
  slot counted exactly once at a SqliteHuey sink, as the failover test does).
- edit: from an edit's API call returning to the leader holding the new version, p50/p99.

Needs Redis on 127.0.0.1:6379 and Postgres on 127.0.0.1:5432 (trust), and core, brain,
z4j-huey, huey, redis and psycopg installed. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchjson import Recorder, add_option

from z4j_core.testing import services
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env
from z4j_core.testing.sink import Sink, fires, is_leader, live_agents, make_brain, schedule_body
from z4j_core.testing.stats import percentile
from z4j_core.testing.waiting import wait_for

HERE = Path(__file__).resolve().parent


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


class RedisConsumer:
    """bench_huey_app's RedisHuey consumer with the agent."""

    def __init__(self, work: Path, brain: BrainProcess, token: str, redis_url: str) -> None:
        env = worker_env(
            HERE,
            brain_url=brain.url,
            token=token,
            spool_dir=work / "spool",
            extra={"BENCH_REDIS_URL": redis_url, "BENCH_WITH_AGENT": "1",
                   "BENCH_TIMES": str(work / "times.txt")},
            tz=None,
        )  # fmt: skip
        run = WorkerRun(sys.executable, "bench_huey_app.huey", concurrency=8,
                        options=("--delay", "0.01", "--max-delay", "0.05"))  # fmt: skip
        self.worker = WorkerProcess.start(ENGINES["huey"], run, env, work / "consumer.log", HERE)
        self.worker.stop_timeout = 15.0

    def stop(self) -> None:
        self.worker.stop()


def _fire_rows(brain: BrainProcess) -> list[dict[str, Any]]:
    """Every fire of the brain (from its store: a thousand schedules' worth)."""
    return BrainStore(brain.database).all_fires()


def with_redis_brain(work: Path, body: Any) -> Any:
    database = services.claim_redis_database()
    brain = make_brain(work / "brain")
    token = brain.create_token("bench")
    brain.start()
    consumer = RedisConsumer(work, brain, token, f"redis://127.0.0.1:6379/{database}")
    try:
        wait_for(lambda: live_agents(brain), 30, "the agent")
        return body(brain)
    finally:
        consumer.stop()
        brain.stop()
        services.release_redis_database(database)


def bench_latency(work: Path, count: int, seconds: float, recorder: Recorder) -> None:
    def body(brain: BrainProcess) -> None:
        base = datetime.now(timezone.utc).replace(microsecond=0)
        # No slot before every schedule exists: creating 1,000 takes a while.
        first = base + timedelta(seconds=max(10, count // 40))
        for i in range(count):
            anchor = base + timedelta(seconds=i / count)
            spec = {"kind": "interval", "every": "1s", "anchor": anchor.isoformat(),
                    "start": first.isoformat()}  # fmt: skip
            item = schedule_body(f"s{i:05d}", spec, task="bench_huey_app.noop", app="z4j-bench",
                                 args=[1, 0])  # fmt: skip
            brain.api("POST", "/api/v1/schedules", item)
        began = first.timestamp() + 2  # measure once every schedule is held and warm
        ended = began + seconds
        time.sleep(max(0.0, ended - time.time()) + 5)  # the window, then its last answers
        rows = [
            r for r in _fire_rows(brain) if began <= r["slot"] < ended and r["kind"] == "scheduled"
        ]
        done = [r["answered_at"] - r["due_at"] for r in rows if r["state"] == "enqueued"]
        other = len(rows) - len(done)
        recorder.add("fire_latency", "ms", [d * 1000 for d in done], engine="huey",
                     schedules=count, rate_per_s=count)  # fmt: skip
        print(
            f"fire latency ({count} schedules of 1 s, {seconds:.0f} s, RedisHuey): "
            f"{len(done)} fires, p50 {ms(percentile(done, 0.5))}, "
            f"p99 {ms(percentile(done, 0.99))}, "
            f"max {ms(max(done))}; not enqueued: {other}",
            flush=True,
        )

    with_redis_brain(work / "latency", body)


def bench_herd(work: Path, count: int, recorder: Recorder) -> None:
    def body(brain: BrainProcess) -> None:
        at = (datetime.now(timezone.utc) + timedelta(seconds=8)).replace(microsecond=0)
        for i in range(count):
            spec = {"kind": "oneshot", "at": at.isoformat()}
            item = schedule_body(f"h{i:05d}", spec, task="bench_huey_app.noop", app="z4j-bench",
                                 args=[1, 0])  # fmt: skip
            brain.api("POST", "/api/v1/schedules", item)
        wait_for(lambda: time.time() > at.timestamp() + 1, 30, "the instant")

        def all_enqueued() -> list[dict[str, Any]] | None:
            rows = _fire_rows(brain)
            ok = len(rows) == count and all(x["state"] == "enqueued" for x in rows)
            return rows if ok else None

        rows = wait_for(all_enqueued, 60, "every herd fire to be enqueued")
        last = max(r["answered_at"] for r in rows) - at.timestamp()
        recorder.add("herd_enqueued", "s", [last], engine="huey", schedules=count)
        print(f"herd: {count} one-shots due at one instant, last enqueued after {ms(last)}",
              flush=True)  # fmt: skip

    with_redis_brain(work / "herd", body)


def bench_failover(work: Path, trials: int, recorder: Recorder) -> None:
    from z4j_core.testing.postgres import temporary_database

    with temporary_database("bench") as url:
        brains = [make_brain(work / "failover" / n, url) for n in ("a", "b")]
        token = brains[0].create_token("sink")
        for brain in brains:
            brain.start()
        sink = Sink(work / "failover" / "sink", brains[1].url, token)
        times: list[float] = []
        try:
            wait_for(lambda: live_agents(brains[1]), 30, "the sink's agent")
            start = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
            spec = {"kind": "interval", "every": "1s", "anchor": start, "catch_up": "all"}
            brains[0].api("POST", "/api/v1/schedules", schedule_body("tick", spec))
            time.sleep(2)
            for _ in range(trials):
                leader = wait_for(
                    lambda: next((b for b in brains if is_leader(b)), None), 15, "a leader"
                )
                killed_at = time.time()
                leader.kill()
                store = BrainStore(url, keep_open=True)
                try:
                    first = wait_for(
                        lambda s=store, k=killed_at: s.first_fire_created_after(k),
                        20, "the new leader's first fire", interval=0.02,
                    )  # fmt: skip
                finally:
                    store.close()
                times.append(first - killed_at)
                leader.start()
                wait_for(lambda: live_agents(brains[1]), 60, "the agent")
                time.sleep(1.5)
            brains[0].api("POST", "/api/v1/schedules/tick/pause")
            time.sleep(3)
            settled = fires(brains[0], "tick")
            counts = sink.counts()
        finally:
            sink.stop()
            for brain in brains:
                brain.stop()
        twice = sum(1 for n in counts.values() if n > 1)
        missing = sum(1 for f in settled if f["fire_id"] not in counts)
        recorder.add("failover", "s", times, store="postgres", trials=trials)
        recorder.add("failover_slots_run_twice", "count", [twice], store="postgres")
        recorder.add("failover_slots_missing", "count", [missing], store="postgres")
        print(
            f"failover ({trials} SIGKILLs of the leader): median {ms(statistics.median(times))}, "
            f"max {ms(max(times))}; {len(settled)} slots, run twice: {twice}, missing: {missing}",
            flush=True,
        )


def bench_edit(work: Path, edits: int, recorder: Recorder) -> None:
    brain = make_brain(work / "edit" / "brain")
    brain.start()
    try:
        for i in range(100):
            spec = {"kind": "cron", "expression": f"{i % 60} 3 * * *"}
            brain.api("POST", "/api/v1/schedules", schedule_body(f"e{i}", spec, app="a"))
        latencies = []
        for n in range(edits):
            name = f"e{n % 100}"
            spec = {"kind": "cron", "expression": f"{n % 60} {n % 24} * * *"}
            item = brain.api("PATCH", f"/api/v1/schedules/{name}", {"schedule": spec})
            returned = time.perf_counter()
            answer = brain.api(
                "GET",
                f"/api/v1/scheduler/applied?schedule_id={item['id']}&version={item['version']}"
                "&timeout=5",
            )
            latencies.append(time.perf_counter() - returned)
            assert answer["applied"], answer
        recorder.add("edit_applied", "ms", [v * 1000 for v in latencies], edits=edits)
        print(
            f"live edit ({edits} edits, API return to the leader holding the new version, one "
            f"HTTP round trip included): p50 {ms(percentile(latencies, 0.5))}, "
            f"p99 {ms(percentile(latencies, 0.99))}, max {ms(max(latencies))}",
            flush=True,
        )
    finally:
        brain.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--only", choices=("latency", "herd", "failover", "edit"))
    parser.add_argument("--count", type=int, default=1000, help="schedules (latency, herd)")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("scheduler", options.json)
    work = Path(tempfile.mkdtemp(prefix="z4j-bench-sched-"))
    chosen = [options.only] if options.only else ["edit", "herd", "latency", "failover"]
    for name in chosen:
        if name == "latency":
            bench_latency(work, options.count, 10 if options.quick else 60, recorder)
        elif name == "herd":
            bench_herd(work, options.count, recorder)
        elif name == "failover":
            bench_failover(work, 5 if options.quick else 20, recorder)
        else:
            bench_edit(work, 200 if options.quick else 1000, recorder)
    recorder.write()
    print(f"(work files in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
