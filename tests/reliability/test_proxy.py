"""The fault proxy itself: each mode does what the fault tests rely on, against an echo server."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from z4j_core.testing.faults.proxy import ThreadedProxy

pytestmark = [pytest.mark.timeout(60)]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):  # a cut resets this side too
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[ThreadedProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with ThreadedProxy(server.server_address[1]) as running:
        yield running
    server.shutdown()
    server.server_close()


def _connect(proxy: ThreadedProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.settimeout(5)
    return sock


def test_pass_and_delay(proxy: ThreadedProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"hello")
        assert sock.recv(100) == b"hello"
        proxy.set_mode("delay", 0.3)
        began = time.monotonic()
        sock.sendall(b"late")
        assert sock.recv(100) == b"late"
        assert time.monotonic() - began >= 0.5  # held both ways


def test_blackhole_keeps_the_socket_open_and_drops_everything(proxy: ThreadedProxy) -> None:
    with _connect(proxy) as sock:
        proxy.blackhole()
        sock.sendall(b"lost")
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(100)  # no data and no FIN: a half-open link
        proxy.passthrough()
        sock.settimeout(5)
        sock.sendall(b"back")
        assert sock.recv(100) == b"back"
    assert proxy.stats.bytes_dropped >= 4


def test_blackhole_one_direction(proxy: ThreadedProxy) -> None:
    with _connect(proxy) as sock:
        proxy.blackhole("down")
        sock.sendall(b"x")  # reaches the echo server; its answer is dropped
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(100)


def test_cut_resets_both_sides_and_reject_refuses_new_ones(proxy: ThreadedProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"a")
        assert sock.recv(10) == b"a"
        assert proxy.cut() == 1
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"b" * 65536)
            sock.recv(10)
    proxy.set_mode("reject")
    with pytest.raises((ConnectionResetError, BrokenPipeError)), _connect(proxy) as sock:
        sock.sendall(b"c")  # the reset may come as early as the connect
        time.sleep(0.1)
        sock.sendall(b"d")
        sock.recv(10)


def test_bad_mode_is_named(proxy: ThreadedProxy) -> None:
    with pytest.raises(ValueError, match="unknown proxy mode 'sideways'"):
        proxy.set_mode("sideways")
    with pytest.raises(ValueError, match="direction 'left'"):
        proxy.blackhole("left")


def test_as_a_subprocess_it_takes_commands_on_stdin(proxy: ThreadedProxy) -> None:
    """`python -m z4j_core.testing.faults.proxy --target HOST:PORT`, as benches and manual runs
    use it."""
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "z4j_core.testing.faults.proxy",
            "--target",
            f"127.0.0.1:{proxy.port}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        stdin, stdout = child.stdin, child.stdout
        port = int(stdout.readline().split()[1])

        def command(line: str) -> str:
            stdin.write(line + "\n")
            stdin.flush()
            return stdout.readline().strip()

        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(5)
            sock.sendall(b"through two proxies")
            assert sock.recv(100) == b"through two proxies"
            assert command("blackhole up") == "ok blackhole up"
            assert command("sideways").startswith("error unknown proxy mode 'sideways'")
            assert command("pass") == "ok pass"
            assert command("cut") == "ok cut 1"
        stdin.close()
        assert child.wait(10) == 0
