"""The brain's log: its format (``text`` for a terminal, ``json`` for a collector) and the
access log of the HTTP API.

Owns the JSON record's keys, which stay stable for parsers: ``ts`` (ISO 8601, UTC, with
milliseconds), ``level``, ``logger``, ``msg``, ``exc`` when an exception is attached, then the
record's extras (the access log's ``method``, ``path``, ``status``, ``duration_ms``,
``client``). One object per line. The access log never carries a token: no header is logged, the
query string is left out, and anything in the path shaped like a z4j token is replaced.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any, Final, TextIO

from z4j_core.endpoints import HEALTH_LIVE_PATH, HEALTH_PATH, HEALTH_READY_PATH, METRICS_PATH

ACCESS_LOGGER: Final = "z4j.brain.access"
#: Probes and scrapes come every few seconds: logged at DEBUG, every other request at INFO.
QUIET_PATHS: Final = frozenset({HEALTH_PATH, HEALTH_LIVE_PATH, HEALTH_READY_PATH, METRICS_PATH})
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Agent tokens (``z4j_...``) and admin tokens (``z4j_admin_...``) wherever they appear.
TOKEN_SHAPE: Final = re.compile(r"z4j_[A-Za-z0-9_\-]{8,}")
REDACTED: Final = "z4j_[redacted]"
#: Attributes every ``LogRecord`` has; anything else on a record is an extra.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
#: Extras that only repeat ``msg`` for a terminal (uvicorn's ``color_message``, with ANSI codes).
_REPEATS: Final = frozenset({"color_message"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        data: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if (
                key not in _STANDARD
                and key not in _REPEATS
                and key not in data
                and not key.startswith("_")
            ):
                data[key] = value
        return json.dumps(data, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: str, stream: TextIO = sys.stderr) -> None:
    """Route every logger (the brain's, uvicorn's) to ``stream`` in ``fmt`` at ``level``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


def redact(text: str) -> str:
    return TOKEN_SHAPE.sub(REDACTED, text)


class AccessLog:
    """ASGI middleware: one record per HTTP request once it is answered (WebSocket upgrades
    are the gateway's to log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = redact(str(scope.get("path", "")))
            method = str(scope.get("method", ""))
            client = scope.get("client")
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            level = logging.DEBUG if path in QUIET_PATHS and status < 400 else logging.INFO
            self.log.log(
                level,
                "%s %s %d %.1fms",
                method,
                path,
                status,
                duration_ms,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": client[0] if client else None,
                },
            )
