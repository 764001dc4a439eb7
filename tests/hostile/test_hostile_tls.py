"""TLS end to end: a brain process serving ``https://`` and ``wss://`` with a certificate from a
CA made here; a real agent with the CA bundle streams events over ``wss://`` and every one is
stored; an agent without the bundle, or one pointed at the TLS port with ``ws://``, stores
nothing; and an agent never sends plaintext to a non-loopback host.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.brainstore import BrainStore
from z4j_core.testing.hostile import STEADY_AGENT
from z4j_core.testing.tls import make_ca_and_certificate
from z4j_core.wire.signing import new_token

pytest.importorskip("cryptography")


class TlsBrain(BrainProcess):
    """A brain process serving TLS; `start()` checks its health over https with the CA."""

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/v1/agent"

    @property
    def http_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def tls_brain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TlsBrain, Path]]:
    ca, cert, key = make_ca_and_certificate(tmp_path)
    # urllib (the harness's health check and api()) trusts the test CA through this variable.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    brain = TlsBrain(
        tmp_path / "brain", serve_args=("--certfile", str(cert), "--keyfile", str(key))
    )
    yield brain, ca
    brain.stop()


def run_agent(url: str, token: str, spool: Path, seconds: float, **env: str) -> dict[str, object]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("Z4J_") and k != "SSL_CERT_FILE"
    }
    process = subprocess.Popen(
        [sys.executable, "-m", STEADY_AGENT, "100"],
        env={
            **clean,
            "Z4J_BRAIN_URL": url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(spool),
            "STEADY_DRAIN_SECONDS": "20",
            **env,
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(seconds)
    out, err = process.communicate(input="", timeout=90)
    assert process.returncode == 0, err
    summary: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return summary


def stored(brain: BrainProcess) -> int:
    return BrainStore(brain.database).count_events()


def test_an_agent_with_the_ca_bundle_streams_over_wss(
    tls_brain: tuple[TlsBrain, Path], tmp_path: Path
) -> None:
    brain, ca = tls_brain
    token = brain.create_token("tls")
    brain.start()
    summary = run_agent(brain.url, token, tmp_path / "spool", 3, Z4J_CA_BUNDLE=str(ca))
    assert summary["dropped"] == 0 and summary["acked"] == summary["emitted"], summary
    assert stored(brain) == summary["emitted"]
    # The API over https, verified against the same CA.
    agents = brain.api("GET", "/api/v1/agents")["agents"]
    assert [a["app"] for a in agents] == ["hostapp"]
    # Plain HTTP to the TLS port gets no API answer.
    plain = f"http://127.0.0.1:{brain.port}/api/v1/agents"
    with pytest.raises(OSError):
        urllib.request.urlopen(plain, timeout=10)
    print(f"\nover wss:// with the CA bundle: {summary['emitted']} events, all stored")


def test_without_the_ca_or_with_ws_to_the_tls_port_nothing_is_sent(
    tls_brain: tuple[TlsBrain, Path], tmp_path: Path
) -> None:
    brain, _ = tls_brain
    token = brain.create_token("tls")
    brain.start()
    untrusted = run_agent(brain.url, token, tmp_path / "s1", 2, STEADY_DRAIN_SECONDS="1")
    assert untrusted["acked"] == 0 and "CERTIFICATE_VERIFY_FAILED" in str(
        untrusted["last_error"]
    ), untrusted
    plaintext = run_agent(
        f"ws://127.0.0.1:{brain.port}/v1/agent", token, tmp_path / "s2", 2, STEADY_DRAIN_SECONDS="1"
    )
    assert plaintext["acked"] == 0, plaintext
    assert stored(brain) == 0
    context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    with urllib.request.urlopen(f"{brain.http_url}/healthz", timeout=10, context=context) as r:
        assert json.loads(r.read())["agents_connected"] == 0
    print(
        f"\nwithout the CA: {untrusted['last_error']!r}; ws:// to the TLS port: "
        f"{plaintext['last_error']!r}"
    )


def test_the_agent_refuses_plaintext_to_a_remote_host_before_connecting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    for url in ("ws://192.0.2.10:7700/v1/agent", "http://brain.example.com:7700"):
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "z4j_core.cli",
                "agent",
                "check",
                "--brain-url",
                url,
                "--token",
                new_token(),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        # Exit 2 is a configuration error, decided before any connection is tried.
        assert check.returncode == 2, check
        assert check.stderr.startswith("z4j: error: ") and check.stderr.count("\n") == 1
        assert "unencrypted ws://" in check.stderr and "wss://" in check.stderr
    from z4j_core.agent import Agent
    from z4j_core.agent.config import ConfigError

    with pytest.raises(ConfigError, match="unencrypted ws://"):
        Agent(brain_url="ws://10.1.2.3:7700", token=new_token(), app_name="x")


def test_a_session_cookie_over_tls_is_secure(tls_brain: tuple[TlsBrain, Path]) -> None:
    brain, ca = tls_brain
    brain.start()
    context = ssl.create_default_context(cafile=str(ca))
    opened = urllib.request.Request(
        f"{brain.http_url}/api/v1/session",
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(opened, context=context, timeout=30) as answer:
        assert answer.status == 201
        cookie = answer.headers["Set-Cookie"]
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert {"secure", "httponly", "samesite=strict"} <= set(flags), cookie
