"""``/metrics``: the brain's figures in the Prometheus text format (version 0.0.4).

Owns the metric names and what each one counts. Counters are this brain process's own since it
started (Prometheus' ``rate()`` turns them into per-second figures); on Postgres each brain
reports its own, and the dropped-events total is the store's (every agent ever seen). Never
exposes a token, an address or an event's contents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

METRICS_PATH: Final = "/metrics"
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def render_metrics(brain: Brain, dropped_total: int) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {_number(value)}")

    metric(
        "z4j_agents_connected",
        "gauge",
        "Agents connected to this brain now.",
        [("", len(brain.connections))],
    )
    metric(
        "z4j_events_stored_total",
        "counter",
        "Events stored (and acknowledged) by this brain since it started.",
        [("", brain.events_stored)],
    )
    metric(
        "z4j_events_stored_per_second",
        "gauge",
        "Events stored per second by this brain over the last ten seconds.",
        [("", brain.events_per_second())],
    )
    metric(
        "z4j_commands_total",
        "counter",
        "Commands sent by this brain, by how they ended.",
        [(f'{{status="{status}"}}', n) for status, n in sorted(brain.commands_by_status.items())],
    )
    metric(
        "z4j_agent_dropped_events_total",
        "counter",
        "Events agents reported dropping (their bounds were reached), over all agents.",
        [("", dropped_total)],
    )
    metric(
        "z4j_auth_refused_total",
        "counter",
        "Agent upgrades and API calls refused for a bad token by this brain.",
        [("", brain.auth_refused)],
    )
    metric(
        "z4j_auth_rate_limited_total",
        "counter",
        "Requests refused with 429 because their address presented too many bad tokens.",
        [("", brain.auth_limiter.refused)],
    )
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
