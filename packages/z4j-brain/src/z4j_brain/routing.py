"""Which agent may take a command: the one rule, for commands sent through the API and for
fires the scheduler delivers.

An agent may take a command when its hello names the command's app, one of its engines has the
command's engine name and advertises the capability the command's kind needs, and its labels
(the hello's, overridden by its token's) include every label the command asks for. Pure: it
looks at values, never at a connection or the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from z4j_core.wire.frames import Capability, CommandKind, EngineInfo

#: What an agent must advertise for an engine to be sent each kind of command.
REQUIRED_CAPABILITY: Final[dict[CommandKind, Capability]] = {
    CommandKind.ENQUEUE: Capability.ENQUEUE,
    CommandKind.FIRE: Capability.FIRE,
    CommandKind.TRIGGER_NOW: Capability.TRIGGER_NOW,
}


def engines_able(engines: Iterable[EngineInfo], capability: Capability) -> frozenset[str]:
    """The names of the engines that advertise ``capability``."""
    return frozenset(e.name for e in engines if capability in e.advertised)


def may_take(
    *,
    agent_app: str,
    agent_labels: Mapping[str, str],
    able_engines: Iterable[str],
    app: str,
    engine: str,
    labels: Mapping[str, str],
) -> bool:
    """Whether an agent of ``agent_app`` with ``agent_labels``, whose engines able to do the
    command's kind are ``able_engines``, may take a command for ``engine`` in ``app`` that asks
    for ``labels``."""
    return (
        agent_app == app
        and engine in able_engines
        and all(agent_labels.get(k) == v for k, v in labels.items())
    )
