"""Discovering and loading engine adapters.

Owns the plugin manager: it loads every entry point in the `z4j.adapters` group, registers it,
and validates its hooks against `z4j_core.hookspecs`. A plugin that fails to import or whose
hooks do not match the specs is reported by name and left out; it never stops the others or
the host application.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

import pluggy

from z4j_core import hookspecs

ENTRY_POINT_GROUP = "z4j.adapters"

log = logging.getLogger("z4j.plugins")


@dataclass
class PluginRegistry:
    """A plugin manager with the adapters that loaded, and those that did not and why."""

    manager: pluggy.PluginManager
    loaded: dict[str, str] = field(default_factory=dict)  # entry-point name -> engine
    failed: dict[str, str] = field(default_factory=dict)  # entry-point name -> reason

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook


def new_plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def load_adapters(group: str = ENTRY_POINT_GROUP) -> PluginRegistry:
    """Load every adapter registered under `group`; never raises for a broken adapter."""
    registry = PluginRegistry(new_plugin_manager())
    for entry_point in sorted(entry_points(group=group), key=lambda ep: ep.name):
        register_entry_point(registry, entry_point)
    return registry


def register_entry_point(registry: PluginRegistry, entry_point: EntryPoint) -> bool:
    """Load, register and validate one adapter; record a failure by name instead of raising."""
    name = entry_point.name
    if name in registry.loaded or registry.manager.has_plugin(name):
        return True
    try:
        plugin = entry_point.load()
    except Exception as exc:
        return _fail(registry, name, f"import failed: {type(exc).__name__}: {exc}")
    try:
        registry.manager.register(plugin, name=name)
    except Exception as exc:
        return _fail(registry, name, f"registration failed: {exc}")
    try:
        registry.manager.check_pending()
    except pluggy.PluginValidationError as exc:
        registry.manager.unregister(name=name)
        return _fail(registry, name, f"hook validation failed: {exc}")
    try:
        engine = _engine_of(plugin)
    except Exception as exc:
        registry.manager.unregister(name=name)
        return _fail(registry, name, f"z4j_engine_name failed: {type(exc).__name__}: {exc}")
    registry.loaded[name] = engine
    return True


def _engine_of(plugin: object) -> str:
    impl = getattr(plugin, "z4j_engine_name", None)
    if impl is None:
        raise ValueError("the plugin does not implement z4j_engine_name")
    engine = impl()
    if not isinstance(engine, str) or not engine:
        raise ValueError(f"z4j_engine_name returned {engine!r}, expected a non-empty string")
    return engine


def _fail(registry: PluginRegistry, name: str, reason: str) -> bool:
    registry.failed[name] = reason
    log.error("z4j adapter %r was not loaded: %s", name, reason)
    return False
