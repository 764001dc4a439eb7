"""TLS: `z4j brain serve --certfile --keyfile` serves https:// and wss://; the operator CLI and
an agent reach it with a CA bundle (a self-signed CA made here), and fail in one line without."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, free_port

pytest.importorskip("cryptography.x509")
from z4j_core.testing.tls import make_ca_and_certificate


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    return {**env, **extra}


def z4j(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=90,
    )


@pytest.fixture
def tls_brain(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A `z4j brain serve` process with TLS: (https URL, CA bundle)."""
    ca, cert, key = make_ca_and_certificate(tmp_path)
    port = free_port()
    log = (tmp_path / "brain.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "z4j_core.cli",
            "brain",
            "serve",
            "--port",
            str(port),
            "--database",
            str(tmp_path / "brain.sqlite3"),
            "--certfile",
            str(cert),
            "--keyfile",
            str(key),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=clean_env(Z4J_ADMIN_TOKEN=ADMIN_TOKEN),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"z4j brain serving on https://127.0.0.1:{port}"), line
        assert f"wss://127.0.0.1:{port}/v1/agent" in line
        yield f"https://127.0.0.1:{port}", ca
    finally:
        process.terminate()
        process.wait(20)
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def test_the_cli_and_an_agent_reach_a_tls_brain_with_its_ca(tls_brain: tuple[str, Path]) -> None:
    url, ca = tls_brain
    listed = z4j("agents", "--brain-url", url, "--ca-bundle", str(ca), Z4J_ADMIN_TOKEN=ADMIN_TOKEN)
    assert listed.returncode == 0, listed.stderr
    # The same through the environment, as an operator's shell would have it.
    env = {"Z4J_BRAIN_URL": url, "Z4J_ADMIN_TOKEN": ADMIN_TOKEN, "Z4J_CA_BUNDLE": str(ca)}
    created = z4j("tokens", "create", "tls-agent", **env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    wss = url.replace("https://", "wss://") + "/v1/agent"
    check = z4j("agent", "check", "--brain-url", wss, "--token", token, "--ca-bundle", str(ca))
    assert check.returncode == 0 and check.stdout.startswith(f"ok: connected to {wss}"), check
    agents = z4j("agents", "--json", **env)
    assert '"app": "z4j-agent-check"' in agents.stdout
    tail = z4j("events", "tail", "--from-start", "--no-follow", "--json", **env)
    assert tail.returncode == 0 and '"app": "z4j-agent-check"' in tail.stdout


def test_without_the_ca_the_cli_and_the_agent_fail_in_one_line(
    tls_brain: tuple[str, Path],
) -> None:
    url, _ = tls_brain
    result = z4j("agents", "--brain-url", url, Z4J_ADMIN_TOKEN=ADMIN_TOKEN)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        result.stderr.startswith("z4j: error: TLS failed with") and result.stderr.count("\n") == 1
    )
    assert "certificate verify failed" in result.stderr and "--ca-bundle" in result.stderr
    plain = z4j("agents", "--brain-url", url.replace("https", "http"), Z4J_ADMIN_TOKEN=ADMIN_TOKEN)
    assert plain.returncode == 1 and plain.stderr.startswith("z4j: error: ")
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    wss = url.replace("https://", "wss://") + "/v1/agent"
    check = z4j("agent", "check", "--brain-url", wss, "--token", "z4j_whatever")
    assert (
        check.returncode == 1 and "TLS failed" in check.stderr and "Traceback" not in check.stderr
    )
    missing = z4j(
        "agents", "--brain-url", url, "--ca-bundle", "/nonexistent.pem", Z4J_ADMIN_TOKEN=ADMIN_TOKEN
    )
    assert missing.returncode == 2 and "cannot read the CA bundle" in missing.stderr


def test_a_certificate_without_its_key_is_one_line(tmp_path: Path) -> None:
    _, cert, _ = make_ca_and_certificate(tmp_path)
    result = z4j(
        "brain",
        "serve",
        "--port",
        "0",
        "--database",
        str(tmp_path / "b.sqlite3"),
        "--certfile",
        str(cert),
    )
    assert result.returncode == 2 and "TLS needs both a certificate and its key" in result.stderr
    assert result.stderr.count("\n") == 1
