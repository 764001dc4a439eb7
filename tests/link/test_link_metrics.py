"""The agent's own figures in an application's Prometheus registry, against a real brain."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.testing.brainproc import BrainProcess


def figures(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("app") in ("billing", None)
    }


def brain_outbox(brain: BrainProcess) -> float:
    with urllib.request.urlopen(f"{brain.http_url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    (family,) = [
        f
        for f in text_string_to_metric_families(text)
        if f.name == "z4j_connected_agents_outbox_events"
    ]
    return sum(s.value for s in family.samples if s.labels["app"] == "billing")


def test_the_agent_exports_its_figures_into_the_applications_registry(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("metrics")
    brain.start()
    registry = CollectorRegistry()
    own = Counter("billing_invoices", "The application's own metric.", registry=registry)
    own.inc()
    agent = Agent(
        brain_url=brain.url,
        token=token,
        app_name="billing",
        spool_dir=str(tmp_path / "spool"),
        plugins=PluginRegistry(new_plugin_manager()),
        metrics_registry=registry,
    )
    try:
        agent.start()
        assert agent.wait_connected(30)
        for i in range(25):
            agent.emit("succeeded", f"t{i}", "billing.invoice", engine="testengine")
        deadline = time.monotonic() + 30
        while figures(registry).get("z4j_agent_events_acked_total", 0) < 25:
            assert time.monotonic() < deadline, figures(registry)
            time.sleep(0.1)
        seen = figures(registry)
        # Each batch told the brain the agent's outbox depth (that batch's events included).
        assert brain_outbox(brain) >= 1
        assert seen["billing_invoices_total"] == 1  # the application's metrics are untouched
        assert seen["z4j_agent_connected"] == 1
        assert seen["z4j_agent_events_dropped_total"] == 0
        assert seen["z4j_agent_events_pending"] == 0
        assert seen["z4j_agent_batches_sent_total"] >= 1
    finally:
        agent.stop(5)
    assert figures(registry)["z4j_agent_connected"] == 0


def test_prometheus_client_is_not_imported_unless_asked() -> None:
    code = (
        "import sys\n"
        "from z4j_core.agent import Agent\n"
        "Agent(disabled=True)\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
        "from prometheus_client import CollectorRegistry\n"
        "Agent(disabled=True, metrics_registry=CollectorRegistry())\n"
        "assert 'z4j_core.agent.metrics' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
