"""The Dramatiq adapter object: what the agent knows of one instrumented Dramatiq broker.

Owns the engine name, version, app name and the capabilities this adapter really supports, the
broker, and the installed middleware (the capture). Does no I/O and never talks to the broker.

Not advertised, on purpose: `expires` (Dramatiq's AgeLimit skips an old message rather than
expiring it; z4j reports that as `skipped`), `priority` (Dramatiq's priority orders only the
messages one worker has already prefetched), `native_dedup` (Dramatiq runs a repeated message id
twice: the agent's fire-id memory is the protection) and `cancel` (Dramatiq cannot cancel a
message; `dramatiq-abort` can, and a later cancel command will build on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.wire import Capability

ENGINE = "dramatiq"
DEFAULT_APP_NAME = "dramatiq"

CAPABILITIES: frozenset[str] = frozenset(
    c.value
    for c in (
        Capability.LIFECYCLE,
        Capability.LIST_TASKS,
        Capability.OBSERVE_SCHEDULES,
        Capability.ENQUEUE,
        Capability.FIRE,
        Capability.TRIGGER_NOW,
        Capability.ETA,
    )
)


def dramatiq_version() -> str:
    try:
        import dramatiq

        return str(getattr(dramatiq, "__version__", "unknown"))
    except Exception:
        return "unknown"


def is_broker(app: object) -> bool:
    """Whether `app` is a Dramatiq broker (checked without importing dramatiq when absent)."""
    try:
        from dramatiq import Broker
    except ImportError:
        return False
    return isinstance(app, Broker)


@dataclass(eq=False)
class DramatiqAdapter:
    """One instrumented Dramatiq broker (`z4j_core.hookspecs.EngineAdapter`)."""

    broker: Any
    engine: str = ENGINE
    engine_version: str = field(default_factory=dramatiq_version)
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    capture: Any = None  # the broker's `z4j_dramatiq.capture.Z4JMiddleware`, once installed

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = DEFAULT_APP_NAME


def create_adapter(app: object, options: Mapping[str, Any]) -> DramatiqAdapter | None:
    """The adapter for a Dramatiq broker, or None for any other object."""
    if not is_broker(app):
        return None
    existing = getattr(app, "_z4j_adapter", None)
    if isinstance(existing, DramatiqAdapter):
        return existing
    return DramatiqAdapter(broker=app, app_name=str(options.get("app_name") or ""))
