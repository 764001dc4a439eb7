"""The agent's own counters in an application's Prometheus registry, on request.

``Agent(metrics_registry=registry)`` (or ``instrument(..., metrics_registry=registry)``)
registers one collector that reads the agent's figures at each scrape: nothing is counted twice
and the hot path (``emit``) is untouched. ``prometheus_client`` is an optional dependency
(``pip install 'z4j-core[metrics]'``): this module is imported only when a registry is given.
Never exposes a token or an event's contents.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from z4j_core.agent.runtime import Agent

#: (name, type, help, key of ``Agent.stats``)
FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("z4j_agent_connected", "gauge", "1 while the agent's link to the brain is open.",
     "connected"),
    ("z4j_agent_events_pending", "gauge",
     "Events waiting in the agent's outbox (memory and spool) to be sent.", "pending"),
    ("z4j_agent_events_in_flight", "gauge",
     "Events sent to the brain and not yet acknowledged.", "in_flight"),
    ("z4j_agent_spool_bytes", "gauge", "Bytes in the agent's disk spool.", "spooled_bytes"),
    ("z4j_agent_events_dropped", "counter",
     "Events the agent dropped because a bound was reached (also reported to the brain).",
     "dropped"),
    ("z4j_agent_events_acked", "counter",
     "Events the brain acknowledged (stored) for this agent.", "acked"),
    ("z4j_agent_batches_sent", "counter", "Event batches sent to the brain.", "batches"),
    ("z4j_agent_errors", "counter",
     "Exceptions the agent caught on the host's threads or in adapter calls.", "errors"),
)  # fmt: skip


class AgentCollector(Collector):
    """Reads ``agent.stats`` at each scrape, labelled with the agent's app."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        try:
            stats: dict[str, Any] = agent.stats
            app = agent.app_name
        except Exception:  # a scrape must never raise into the application's exporter
            agent.errors += 1
            return
        for name, kind, help_text, key in FIGURES:
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=["app"])
            else:
                family = GaugeMetricFamily(name, help_text, labels=["app"])
            family.add_metric([app], float(stats[key]))
            yield family


def register(agent: Agent, registry: Any) -> AgentCollector:
    """Register ``agent``'s collector in ``registry`` (a ``prometheus_client``
    ``CollectorRegistry``)."""
    collector = AgentCollector(agent)
    registry.register(collector)
    return collector
