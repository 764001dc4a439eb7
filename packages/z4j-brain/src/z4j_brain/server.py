"""Serving the brain's ASGI app with uvicorn, whose WebSocket implementation is the
``websockets`` library's sans-I/O protocol.

Owns the uvicorn settings that matter to the protocol (message size ceiling from the wire
limits, no per-message compression, no WebSocket-level keepalive: heartbeats are the session's;
TLS from the configured certificate and key, so https:// and wss:// share the port)
and two ways to run: ``serve`` in the foreground (the CLI) and ``ServerThread`` in a background
thread (tests, embedding).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, TextIO

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from z4j_brain.api import create_app
from z4j_brain.brain import Brain
from z4j_brain.config import BrainConfig
from z4j_brain.console import CONSOLE_PATH
from z4j_core.endpoints import AGENT_PATH

#: How often the server's exit flag is looked at (it is set from a signal handler).
EXIT_POLL_SECONDS: Final = 0.1
#: Answer to an upgrade request the WebSocket layer cannot parse.
UNPARSEABLE_UPGRADE: Final = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 73\r\nConnection: close\r\n\r\n"
    b"z4j: malformed WebSocket upgrade request (a header too long or too many)\n"
)


class AgentWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with three gaps closed.

    ``websockets`` never logs at DEBUG here: it would write each upgrade's headers (the agent's
    token) and each frame's bytes (events, MACs) into the brain's log. An upgrade request that
    ``websockets`` cannot parse (a header line over 8 KiB, more than 128 headers) gets a 400
    and the connection is closed; uvicorn left it open without an answer, and failed on it at
    shutdown. A refused upgrade (the gateway's 401 or 429) counts as
    an answered handshake, so it is not also logged as an ERROR.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.debug = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if (
            not self.handshake_complete
            and self.conn.handshake_exc is not None
            and not self.transport.is_closing()
        ):
            self.close_sent = True
            self.handshake_complete = True
            self.transport.write(UNPARSEABLE_UPGRADE)
            self.transport.close()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True


def uvicorn_config(brain: Brain, *, log_level: str = "info") -> uvicorn.Config:
    config = brain.config
    return uvicorn.Config(
        create_app(brain),
        host=config.host,
        port=config.port,
        ws=AgentWebSocketProtocol,
        ws_max_size=config.ws_max_size,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="on",
        access_log=False,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(config.tls_certfile) if config.tls_certfile else None,
        ssl_keyfile=str(config.tls_keyfile) if config.tls_keyfile else None,
    )


def bound_url(server: uvicorn.Server, config: BrainConfig) -> str:
    """The URL the server listens on (the real port when 0 was asked for)."""
    for listener in server.servers:
        for sock in listener.sockets:
            host, port = sock.getsockname()[:2]
            host = f"[{host}]" if ":" in host else host
            return f"{'https' if config.tls else 'http'}://{host}:{port}"
    return config.url


def bind_socket(config: BrainConfig) -> socket.socket:
    """A listening socket on the configured address, bound before anything else happens.

    ``z4j brain serve`` binds first, so a port in use (or an address that is not this
    machine's) fails before the database is created, a token printed or leadership claimed.
    Raises ``OSError``.
    """
    infos = socket.getaddrinfo(
        config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    brain: Brain,
    *,
    announce: Callable[[str], None] | None = None,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve until uvicorn is told to exit (SIGINT/SIGTERM in the main thread); on ``sock``
    (from ``bind_socket``) when given, else uvicorn binds the configured address itself."""
    server = uvicorn.Server(uvicorn_config(brain, log_level=log_level))

    async def announce_when_started() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        if announce is not None:
            announce(bound_url(server, brain.config))

    watcher = asyncio.create_task(announce_when_started())
    try:
        await serve_until_told(server, brain, sockets=[sock] if sock is not None else None)
    finally:
        watcher.cancel()


async def serve_until_told(
    server: uvicorn.Server, brain: Brain, sockets: list[socket.socket] | None = None
) -> None:
    """``server.serve``, and once it is told to exit, end the brain's long-lived answers at
    once (``Brain.stopping``) rather than let uvicorn wait its graceful timeout for them."""

    async def watch() -> None:
        while not server.should_exit:
            await asyncio.sleep(EXIT_POLL_SECONDS)
        brain.stopping.set()
        brain.events_changed.set()  # wakes every waiter now
        brain.events_changed.clear()

    watcher = asyncio.create_task(watch())
    try:
        await server.serve(sockets=sockets)
    finally:
        watcher.cancel()


def print_url(stream: TextIO = sys.stdout) -> Callable[[str], None]:
    def announce(url: str) -> None:
        ws = url.replace("http", "ws", 1) + AGENT_PATH  # https -> wss
        print(f"z4j brain serving on {url} (agents connect to {ws})", file=stream, flush=True)
        print(f"console: {url}{CONSOLE_PATH}", file=stream, flush=True)

    return announce


class ServerThread:
    """The brain served from a daemon thread with its own event loop.

    ``start()`` returns once the port is bound; ``url`` is then the real address.
    """

    def __init__(self, brain: Brain, *, log_level: str = "warning") -> None:
        self.brain = brain
        self.server = uvicorn.Server(uvicorn_config(brain, log_level=log_level))
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="z4j-brain-server", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(serve_until_told(self.server, self.brain))
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def start(self, timeout: float = 15.0) -> str:
        self._thread.start()
        deadline = timeout
        while not self.server.started and self._thread.is_alive() and deadline > 0:
            self._thread.join(0.02)
            deadline -= 0.02
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"the brain did not start: {self._error!r}")
        self.url = bound_url(self.server, self.brain.config)
        return self.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + AGENT_PATH

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
