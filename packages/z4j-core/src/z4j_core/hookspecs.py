"""Every hook a z4j plugin can implement, in one place.

Plugins are found through the entry-point group `z4j.adapters` (see `z4j_core.plugins`). An
engine adapter's entry point names its `z4j_core.adapter.Adapter` subclass, which answers
`z4j_adapter_class` itself (the base class implements it), so no adapter writes a plugin module.
Everything the agent asks of an engine (enqueue, inventory, capture) is a method of that
class, called directly on the adapter object: pluggy is for discovery (which adapters are
installed, found by entry point, or registered by `instrument` when running from a source tree
without installed entry points), not for dispatch. Hook calls are synchronous and cheap, and
the plugin manager guards them: a broken plugin is reported by name and left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from z4j_core.adapter import Adapter

PROJECT_NAME = "z4j"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def z4j_adapter_class() -> type[Adapter]:  # type: ignore[empty-body]
    """Name the adapter class this plugin provides.

    Returns: a subclass of `z4j_core.adapter.Adapter` whose `engine` is a non-empty name
        (`huey`, `celery`, `rq`, `dramatiq`, `arq`, `taskiq`, or a third party's).
    All results are collected: the list says which adapters are installed. Must not import the
    engine at call time beyond what importing the plugin already did.
    """
