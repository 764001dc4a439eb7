"""The z4j agent: the library that runs inside applications and workers.

`Agent` is created by an engine adapter's `instrument(...)`; `emit` is its hot path; one daemon
thread with its own event loop keeps one outbound WebSocket to the brain. Configuration comes
from explicit arguments, then `Z4J_*` variables (see `z4j_core.agent.config`), then defaults.
"""

from z4j_core.agent.config import AgentConfig, ConfigError
from z4j_core.agent.redaction import Redactor
from z4j_core.agent.runtime import Agent, attach, default_agent

__all__ = ["Agent", "AgentConfig", "ConfigError", "Redactor", "attach", "default_agent"]
