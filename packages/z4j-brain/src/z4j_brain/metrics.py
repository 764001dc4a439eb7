"""``/metrics``: the brain's figures through ``prometheus_client``, in the text format 0.0.4.

Owns the metric names, their labels and what each one counts. Every brain has its own
``CollectorRegistry`` (never the process-global one), so several brains in one process (tests,
embedding) do not clash. Counters and histograms are this brain process's own since it started
(Prometheus' ``rate()`` makes per-second figures of them); on Postgres each brain reports its
own, and the dropped-events total and broken schedules are the store's. Gauges are read from the
running brain at each scrape.

Label sets stay bounded: engines, kinds, states and fire outcomes are closed sets; apps are the
operator's deployments; a task's name becomes a label only when it is in the configured
allow-list or among the first ``top_n`` names this brain saw, every other task counts under
``task="_other"``. Never exposes a token, an address or an event's contents.
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from z4j_brain import __version__
from z4j_core.endpoints import METRICS_PATH
from z4j_core.wire.frames import Event, LifecycleKind

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

__all__ = ["METRICS_CONTENT_TYPE", "METRICS_PATH", "BrainMetrics", "TaskLabels"]

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: The ``task`` label of every task not in the allow-list nor among the first names seen.
OTHER_TASK: Final = "_other"
#: Longest task name used as a label value (longer ones count as ``_other``).
MAX_TASK_LABEL: Final = 200
#: Kinds that end a task: each counts once in ``z4j_tasks_finished_total``.
FINISHED: Final = frozenset(
    {
        LifecycleKind.SUCCEEDED,
        LifecycleKind.FAILED,
        LifecycleKind.REVOKED,
        LifecycleKind.CANCELLED,
        LifecycleKind.EXPIRED,
        LifecycleKind.REJECTED,
        LifecycleKind.SKIPPED,
        LifecycleKind.LOCKED,
        LifecycleKind.DEAD_LETTERED,
    }
)
#: Task runtimes, seconds: from a quick function to a long report.
RUNTIME_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Fire lateness (slot to enqueued), seconds: on time is well under a second.
LATENESS_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Fire outcomes counted: an agent's answer, the brain's verdict past a fire's deadline, or
#: slots a catch-up policy skipped.
FIRE_OUTCOMES: Final = (
    "enqueued", "duplicate", "rejected", "failed", "expired", "missed", "unknown", "skipped"
)  # fmt: skip


class TaskLabels:
    """Which task names may be label values: the allow-list, then the first ``top_n`` seen."""

    def __init__(self, allowed: Collection[str] = (), top_n: int = 0) -> None:
        self.allowed = frozenset(allowed)
        self.top_n = top_n
        self._seen: set[str] = set()

    def label(self, name: str) -> str:
        if name in self.allowed or name in self._seen:
            return name
        if len(self._seen) < self.top_n and len(name) <= MAX_TASK_LABEL:
            self._seen.add(name)
            return name
        return OTHER_TASK


class BrainMetrics:
    """One brain's metrics: the instruments the brain's parts call, and a collector that reads
    the running brain's state at each scrape."""

    def __init__(self, brain: Brain, task_names: Collection[str] = (), task_top_n: int = 0) -> None:
        self.registry = CollectorRegistry()
        self.tasks = TaskLabels(task_names, task_top_n)
        r = self.registry
        self.events_stored = Counter(
            "z4j_events_stored",
            "Events stored (and acknowledged) by this brain, by engine and lifecycle kind.",
            ["engine", "kind"],
            registry=r,
        )
        self.tasks_finished = Counter(
            "z4j_tasks_finished",
            "Tasks that reached a final state, by engine, app, task (allow-list or first N "
            "names, else _other) and state.",
            ["engine", "app", "task", "state"],
            registry=r,
        )
        self.task_runtime = Histogram(
            "z4j_task_runtime_seconds",
            "How long finished tasks ran, as their engine reported it, by engine.",
            ["engine"],
            buckets=RUNTIME_BUCKETS,
            registry=r,
        )
        self.fires = Counter(
            "z4j_fires",
            "Fires by outcome: the agent's answer (enqueued, duplicate, rejected, failed, "
            "expired), past the deadline (missed, unknown), or catch-up skips (skipped).",
            ["outcome"],
            registry=r,
        )
        self.fire_lateness = Histogram(
            "z4j_fire_lateness_seconds",
            "From a fire's slot to its agent's answer that it was enqueued.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        for outcome in FIRE_OUTCOMES:
            self.fires.labels(outcome)
        #: The store's figures, read just before each scrape renders (``refresh``).
        self.dropped_total = 0
        self.broken_schedules = 0
        r.register(_BrainState(brain, self))

    def refresh(self, dropped_total: int, broken_schedules: int) -> None:
        self.dropped_total = dropped_total
        self.broken_schedules = broken_schedules

    def render(self) -> bytes:
        """The text format 0.0.4 (``METRICS_CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    # -- what the brain's parts report ----------------------------------------------------------

    def stored(self, app: str, events: Sequence[Event]) -> None:
        """A batch's newly stored events, counted per label set once per batch. Runs on the
        store writer's thread once the batch committed (never on the event loop), the only
        caller, so `tasks` needs no lock."""
        stored: dict[tuple[str, str], int] = {}
        finished: dict[tuple[str, str, str], int] = {}
        for event in events:
            kind = event.kind
            key = (event.engine, kind.value)
            stored[key] = stored.get(key, 0) + 1
            if kind in FINISHED:
                done = (event.engine, self.tasks.label(event.task_name), kind.value)
                finished[done] = finished.get(done, 0) + 1
                if event.runtime is not None and event.runtime >= 0:
                    self.task_runtime.labels(event.engine).observe(event.runtime)
        for (engine, kind_name), n in stored.items():
            self.events_stored.labels(engine, kind_name).inc(n)
        for (engine, task, state), n in finished.items():
            self.tasks_finished.labels(engine, app, task, state).inc(n)

    def fire_answered(self, status: str, lateness: float | None) -> None:
        if status in FIRE_OUTCOMES:
            self.fires.labels(status).inc()
        if status == "enqueued" and lateness is not None:
            self.fire_lateness.observe(max(0.0, lateness))

    def fires_expired(self, missed: int, unknown: int) -> None:
        if missed:
            self.fires.labels("missed").inc(missed)
        if unknown:
            self.fires.labels("unknown").inc(unknown)

    def slots_skipped(self, count: int = 1) -> None:
        self.fires.labels("skipped").inc(count)


class _BrainState(Collector):
    """Read at each scrape: connections, leadership, the writer's queue, agents' reports, and
    the counters the brain keeps as plain integers."""

    def __init__(self, brain: Brain, metrics: BrainMetrics) -> None:
        self.brain = brain
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        brain = self.brain
        connections = [c for c in list(brain.connections.values()) if c.hello is not None]
        yield GaugeMetricFamily(
            "z4j_agents_connected", "Agents connected to this brain now.", len(connections)
        )
        by_engine = GaugeMetricFamily(
            "z4j_engine_agents_connected",
            "Agents connected to this brain now, by engine and app (an agent serving two "
            "engines counts under each).",
            labels=["engine", "app"],
        )
        dropped = GaugeMetricFamily(
            "z4j_connected_agents_dropped_events",
            "Events the agents connected now reported dropping since they started, by app.",
            labels=["app"],
        )
        outbox = GaugeMetricFamily(
            "z4j_connected_agents_outbox_events",
            "Events the agents connected now held unacknowledged, as their last batch said, "
            "by app.",
            labels=["app"],
        )
        engine_counts: dict[tuple[str, str], int] = {}
        drop_counts: dict[str, int] = {}
        outbox_counts: dict[str, int] = {}
        for connection in connections:
            assert connection.hello is not None
            app = connection.hello.app
            for engine_info in connection.hello.engines:
                key = (engine_info.name, app)
                engine_counts[key] = engine_counts.get(key, 0) + 1
            drop_counts[app] = drop_counts.get(app, 0) + connection.dropped_reported
            outbox_counts[app] = outbox_counts.get(app, 0) + (connection.outbox_pending or 0)
        for (engine, app), n in sorted(engine_counts.items()):
            by_engine.add_metric([engine, app], n)
        for app, n in sorted(drop_counts.items()):
            dropped.add_metric([app], n)
        for app, n in sorted(outbox_counts.items()):
            outbox.add_metric([app], n)
        yield by_engine
        yield dropped
        yield outbox
        yield GaugeMetricFamily(
            "z4j_leader", "1 while this brain is the scheduler leader, else 0.",
            1 if brain.scheduler.leading else 0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "z4j_store_writer_queue",
            "Write jobs waiting for the store's one writer (event batches, answers, fires).",
            brain.writer.depth(),
        )
        commands = CounterMetricFamily(
            "z4j_commands", "Commands sent by this brain, by how they ended.", labels=["status"]
        )
        for status, n in sorted(brain.commands_by_status.items()):
            commands.add_metric([status], n)
        yield commands
        yield CounterMetricFamily(
            "z4j_agent_dropped_events",
            "Events agents reported dropping (their bounds were reached), over all agents ever "
            "seen (from the store).",
            self.metrics.dropped_total,
        )
        yield CounterMetricFamily(
            "z4j_auth_refused",
            "Agent upgrades and API calls refused for a bad token by this brain.",
            brain.auth_refused,
        )
        yield CounterMetricFamily(
            "z4j_auth_rate_limited",
            "Requests refused with 429 because their address presented too many bad tokens.",
            brain.auth_limiter.refused,
        )
        yield GaugeMetricFamily(
            "z4j_schedules_broken",
            "Schedules set aside as broken (the leader could not compute or fire them) until an "
            "edit or a resume; see `z4j schedules list` (from the store).",
            self.metrics.broken_schedules,
        )
        yield CounterMetricFamily(
            "z4j_schedules_broken_found",
            "Schedules this brain's leader has set aside as broken since it started.",
            brain.scheduler.broken_found,
        )
        info = GaugeMetricFamily(
            "z4j_build_info",
            "Always 1: this brain's version and Python in its labels.",
            labels=["version", "python"],
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
