"""Discovering and loading engine adapters.

Owns the plugin manager: it loads every entry point in the `z4j.adapters` group (an adapter
class, or a module of `@hookimpl` functions), registers it, and validates its hooks against
`z4j_core.hookspecs`. A plugin that fails to import, whose hooks do not match the specs, or
whose `z4j_adapter_class` does not answer an `Adapter` subclass is reported by name and left
out; it never stops the others or the host application. `register_adapter_class` covers a
source tree run without installed entry points (`z4j_core.agent.attach` calls it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from z4j_core import hookspecs

if TYPE_CHECKING:  # the adapter base imports the wire layer; discovery alone stays light
    from z4j_core.adapter import Adapter

ENTRY_POINT_GROUP = "z4j.adapters"

log = logging.getLogger("z4j.plugins")


@dataclass
class PluginRegistry:
    """A plugin manager with the adapters that loaded, and those that did not and why."""

    manager: pluggy.PluginManager
    loaded: dict[str, str] = field(default_factory=dict)  # plugin name -> engine
    failed: dict[str, str] = field(default_factory=dict)  # plugin name -> reason
    classes: dict[str, type[Adapter]] = field(default_factory=dict)  # engine -> adapter class

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook

    def adapter_for(self, app: object, options: dict[str, Any] | None = None) -> Adapter | None:
        """The adapter of the first loaded class that recognises `app`, or None."""
        for cls in self.classes.values():
            adapter = cls.create(app, options or {})
            if adapter is not None:
                return adapter
        return None


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
    return register_plugin(registry, name, plugin)


def register_adapter_class(registry: PluginRegistry, cls: type[Adapter]) -> bool:
    """Register `cls` under its engine's name unless a plugin already provides that engine
    (its entry point is installed): what running from a source tree needs."""
    if cls.engine in registry.classes:
        return True
    return register_plugin(registry, cls.engine, cls)


def register_plugin(registry: PluginRegistry, name: str, plugin: object) -> bool:
    """Register and validate one plugin object; record a failure by name instead of raising."""
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
        cls = _adapter_class_of(plugin)
    except Exception as exc:
        registry.manager.unregister(name=name)
        return _fail(registry, name, f"z4j_adapter_class failed: {type(exc).__name__}: {exc}")
    registry.loaded[name] = cls.engine
    registry.classes.setdefault(cls.engine, cls)
    return True


def _adapter_class_of(plugin: object) -> type[Adapter]:
    from z4j_core.adapter import Adapter

    impl = getattr(plugin, "z4j_adapter_class", None)
    if impl is None:
        raise ValueError("the plugin does not implement z4j_adapter_class")
    cls = impl()
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ValueError(f"z4j_adapter_class returned {cls!r}, expected an Adapter subclass")
    if not isinstance(cls.engine, str) or not cls.engine:
        raise ValueError(f"{cls.__name__}.engine is {cls.engine!r}, expected a non-empty name")
    return cls


def _fail(registry: PluginRegistry, name: str, reason: str) -> bool:
    registry.failed[name] = reason
    log.error("z4j adapter %r was not loaded: %s", name, reason)
    return False
