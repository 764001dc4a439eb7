"""The Huey adapter object: what the agent knows of one instrumented Huey instance.

Owns the engine name, version, app name and the capabilities this instance really supports
(priority only when its storage orders by priority). Holds the Huey instance and the per-instance
capture state; does no I/O and never talks to the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.wire import Capability

ENGINE = "huey"

_ALWAYS: frozenset[str] = frozenset(
    c.value
    for c in (
        Capability.LIFECYCLE,
        Capability.LIST_TASKS,
        Capability.OBSERVE_SCHEDULES,
        Capability.ENQUEUE,
        Capability.FIRE,
        Capability.TRIGGER_NOW,
        Capability.ETA,
        Capability.EXPIRES,
    )
)


def huey_version() -> str:
    try:
        import huey

        return str(getattr(huey, "__version__", "unknown"))
    except Exception:
        return "unknown"


def is_huey(app: object) -> bool:
    """Whether `app` is a Huey instance (checked without importing huey when it is absent)."""
    try:
        from huey import Huey
    except ImportError:
        return False
    return isinstance(app, Huey)


def storage_supports_priority(huey: Any) -> bool:
    """Huey's storages say so themselves: `RedisStorage.priority` is False, Sqlite's is True."""
    return bool(getattr(getattr(huey, "storage", None), "priority", False))


@dataclass(eq=False)
class HueyAdapter:
    """One instrumented Huey instance (`z4j_core.hookspecs.EngineAdapter`)."""

    huey: Any
    engine: str = ENGINE
    engine_version: str = field(default_factory=huey_version)
    app_name: str = ""
    capabilities: frozenset[str] = frozenset()
    capture: Any = None  # the installed `z4j_huey.capture.SignalCapture`, if any

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = str(getattr(self.huey, "name", "") or "huey")
        if not self.capabilities:
            caps = set(_ALWAYS)
            if storage_supports_priority(self.huey):
                caps.add(Capability.PRIORITY.value)
            self.capabilities = frozenset(caps)

    @property
    def queue(self) -> str:
        """Huey has one queue per instance, named after the instance."""
        return str(getattr(self.huey, "name", "") or "huey")


def create_adapter(app: object, options: Mapping[str, Any]) -> HueyAdapter | None:
    """The adapter for a Huey instance, or None for any other object."""
    if not is_huey(app):
        return None
    app_name = options.get("app_name") or ""
    return HueyAdapter(huey=app, app_name=str(app_name))
