"""Where a brain listens and what it serves there: declared once, for the brain, the CLI and
the agent's defaults. Pure constants: importing this module does nothing else."""

from __future__ import annotations

from typing import Final

#: The address a brain binds by default (``Z4J_BRAIN_HOST`` / ``Z4J_BRAIN_PORT`` change it).
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 7700
#: The agents' WebSocket.
AGENT_PATH: Final = "/v1/agent"
#: The operator HTTP API (every route under it but the document needs the admin token).
API_PREFIX: Final = "/api/v1"
OPENAPI_PATH: Final = f"{API_PREFIX}/openapi.json"
#: Liveness (the process answers); ``/healthz`` is its older name, kept as an alias.
HEALTH_PATH: Final = "/healthz"
HEALTH_LIVE_PATH: Final = "/health/live"
#: Readiness: the store is reachable, writable and migrated, and a scheduler leader is known.
HEALTH_READY_PATH: Final = "/health/ready"
METRICS_PATH: Final = "/metrics"
#: The brain's HTTP base URL and the agents' WebSocket URL when nothing else is configured.
DEFAULT_HTTP_URL: Final = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
DEFAULT_AGENT_URL: Final = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}{AGENT_PATH}"
