"""An adapter that learns what it can do after the link said hello (a worker learning its pool)
says hello again: `Agent.reannounce` renews the session, and the brain lists the new
capability, against a real brain."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from z4j_core.adapter import Adapter
from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.waiting import wait_for


class LateAdapter(Adapter):
    engine: ClassVar[str] = "lateengine"
    capabilities = frozenset({"lifecycle"})

    @property
    def engine_version(self) -> str:
        return "1.0"


def listed_capabilities(brain: BrainProcess) -> set[str]:
    agents = brain.api("GET", "/api/v1/agents?connected=1")["agents"]
    return {
        capability
        for agent in agents
        for engine in agent["engines"]
        if engine["name"] == "lateengine"
        for capability in engine["capabilities"]
    }


def test_a_capability_learned_after_hello_reaches_the_brain(
    brain: BrainProcess, tmp_path: Path
) -> None:
    token = brain.create_token("late")
    brain.start()
    agent = Agent(
        brain_url=brain.url,
        token=token,
        app_name="late",
        spool_dir=str(tmp_path / "spool"),
        plugins=PluginRegistry(new_plugin_manager()),
    )
    adapter = LateAdapter()
    agent.add_adapter(adapter)
    try:
        agent.reannounce()  # before start: nothing to renew, and no error
        agent.start()
        assert agent.wait_connected(30)
        wait_for(lambda: listed_capabilities(brain) == {"lifecycle"}, 30, "the first hello")
        adapter.capabilities = frozenset({"lifecycle", "eta"})
        agent.reannounce()
        wait_for(lambda: "eta" in listed_capabilities(brain), 30, "the hello said again")
    finally:
        agent.stop(1.0)
