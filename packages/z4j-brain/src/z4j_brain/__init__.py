"""z4j brain: the server agents connect to (gateway, store, commands, API, CLI)."""

from __future__ import annotations

__version__ = "2.0.0.dev0"
