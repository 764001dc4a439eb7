"""A TCP proxy for fault tests: pass, delay, cut and blackhole connections, switched at runtime.

One listening port forwards every accepted connection to one target. The mode applies to all
connections, open and future, from the moment it is set:

- ``pass``: bytes flow both ways as they arrive;
- ``delay``: every chunk is held ``delay`` seconds before it goes on (order kept);
- ``blackhole``: sockets stay open, every byte either way is read and thrown away (a half-open
  link: neither side sees an error, nothing arrives); new connections are accepted the same way.
  ``direction="up"`` drops only what the client sends (``"down"``: only what the target sends),
  an asymmetric partition;
- ``reject``: new connections are accepted and reset at once (the path is down).

``cut()`` resets every open connection on both sides (``SO_LINGER`` 0, so the peers see an RST,
not a clean FIN) and leaves the mode as it is. Backpressure is kept: each direction holds a
bounded queue, so a peer that stops reading (SIGSTOP) eventually stops the other side too.

In-process: ``ThreadedProxy(target_port).start()`` runs the proxy's loop on a daemon thread and
its methods are safe to call from any thread. As a subprocess:
``python -m z4j_core.testing.faults.proxy --target 127.0.0.1:5432 [--listen 0]`` prints
``listening PORT`` and then reads
commands on stdin, one per line: ``pass``, ``delay SECONDS``, ``blackhole [up|down|both]``,
``reject``, ``cut``, ``stats``; each answers with one line (``ok ...`` or ``error ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MODES = ("pass", "delay", "blackhole", "reject")
DIRECTIONS = {
    "both": frozenset({"up", "down"}),
    "up": frozenset({"up"}),  # client -> target
    "down": frozenset({"down"}),  # target -> client
}
CHUNK = 64 * 1024
QUEUE_CHUNKS = 16  # per direction: at most ~1 MiB buffered before backpressure


@dataclass
class ProxyStats:
    accepted: int = 0
    rejected: int = 0
    cut: int = 0
    bytes_forwarded: int = 0
    bytes_dropped: int = 0
    open_now: int = 0


@dataclass(eq=False)
class _Pair:
    """One proxied connection: the client side and the target side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: linger on, zero seconds, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Proxy:
    """The proxy itself; all methods run on its event loop."""

    def __init__(
        self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.listen = (listen_host, port)
        self.mode = "pass"
        self.delay = 0.0
        self.dropping: frozenset[str] = frozenset()
        self.stats = ProxyStats()
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None
        self.port = port

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, *self.listen)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def set_mode(self, mode: str, delay: float = 0.0, direction: str = "both") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; use one of {', '.join(MODES)}")
        if delay < 0:
            raise ValueError(f"delay {delay} must not be negative")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
        self.mode = mode
        self.delay = delay if mode == "delay" else 0.0
        self.dropping = DIRECTIONS[direction] if mode == "blackhole" else frozenset()

    def cut(self) -> int:
        """Reset every open connection, both sides; returns how many were cut."""
        pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair)
        self.stats.cut += len(pairs)
        return len(pairs)

    def _drop(self, pair: _Pair) -> None:
        if pair not in self._pairs:
            return
        self._pairs.discard(pair)
        self.stats.open_now = len(self._pairs)
        for writer in (pair.client, pair.upstream):
            _reset(writer)
        current = asyncio.current_task()
        for task in pair.tasks:
            if task is not current:
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reject":
            self.stats.rejected += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
        except (OSError, asyncio.TimeoutError):
            self.stats.rejected += 1
            _reset(writer)
            return
        self.stats.accepted += 1
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        self.stats.open_now = len(self._pairs)
        for direction, src, dst in (("up", reader, up_writer), ("down", up_reader, writer)):
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
            pair.tasks.append(asyncio.ensure_future(self._read(pair, direction, src, queue)))
            pair.tasks.append(asyncio.ensure_future(self._write(pair, direction, dst, queue)))

    async def _read(
        self,
        pair: _Pair,
        direction: str,
        src: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes]],
    ) -> None:
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                if direction in self.dropping:
                    self.stats.bytes_dropped += len(data)
                    continue
                await queue.put((time.monotonic() + self.delay, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        if self.mode == "blackhole":
            # A half-open link never delivers a FIN either: hold the other side open.
            with contextlib.suppress(asyncio.CancelledError):
                while pair in self._pairs and self.mode == "blackhole":
                    await asyncio.sleep(0.1)
        self._drop(pair)

    async def _write(
        self,
        pair: _Pair,
        direction: str,
        dst: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes]],
    ) -> None:
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if direction in self.dropping:
                    self.stats.bytes_dropped += len(data)
                    continue
                dst.write(data)
                await dst.drain()
                self.stats.bytes_forwarded += len(data)
        except OSError:
            self._drop(pair)
        except asyncio.CancelledError:
            return


class ThreadedProxy:
    """A `Proxy` on its own loop and daemon thread, driven from synchronous code."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.proxy = Proxy(target_host, target_port, port=port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="z4j-test-proxy")
        self._thread.daemon = True

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    def url(self, path: str = "/v1/agent") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _call(self, function: Any, *args: Any) -> Any:
        async def run() -> Any:
            result = function(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def start(self) -> ThreadedProxy:
        self._thread.start()
        self._call(self.proxy.start)
        return self

    def set_mode(self, mode: str, delay: float = 0.0, direction: str = "both") -> None:
        self._call(self.proxy.set_mode, mode, delay, direction)

    def passthrough(self) -> None:
        self.set_mode("pass")

    def blackhole(self, direction: str = "both") -> None:
        self.set_mode("blackhole", direction=direction)

    def cut(self) -> int:
        return int(self._call(self.proxy.cut))

    def restore(self) -> int:
        """Back to `pass` and reset every connection held open meanwhile, in one step (no
        connection made between the two sees the old mode); returns how many were reset."""

        def both() -> int:
            cut = self.proxy.cut()
            self.proxy.set_mode("pass")
            return cut

        return int(self._call(both))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self.proxy.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ThreadedProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _serve_stdin(proxy: Proxy) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        words = line.split()
        if not words:
            continue
        command, args = words[0], words[1:]
        try:
            if command == "cut":
                answer = f"ok cut {proxy.cut()}"
            elif command == "stats":
                answer = f"ok {proxy.stats}"
            elif command == "delay":
                proxy.set_mode("delay", float(args[0]) if args else 0.0)
                answer = "ok delay"
            elif command == "blackhole":
                proxy.set_mode("blackhole", direction=args[0] if args else "both")
                answer = f"ok blackhole {args[0] if args else 'both'}"
            else:
                proxy.set_mode(command)
                answer = f"ok {command}"
        except (ValueError, IndexError) as exc:
            answer = f"error {exc}"
        print(answer, flush=True)


async def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--listen", type=int, default=0, help="port to listen on (0: any free)")
    options = parser.parse_args(argv)
    host, _, port = options.target.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--target {options.target!r} must look like 127.0.0.1:5432")
    proxy = Proxy(host, int(port), port=options.listen)
    print(f"listening {await proxy.start()}", flush=True)
    try:
        await _serve_stdin(proxy)
    finally:
        await proxy.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
