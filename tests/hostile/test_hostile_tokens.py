"""Tokens against real brain processes: wrong, revoked, expired, truncated and another brain's
tokens are refused (401 on the upgrade and the API, 4401 for a live agent whose token is
revoked); brute force is rate limited per source address (a second address is unaffected);
and no token ever appears in clear in the brain's DEBUG log, its SQLite files or its Postgres
tables.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.hostile import (
    OTHER_SOURCE,
    STEADY_AGENT,
    open_session,
    request,
    upgrade_status,
    wait_closed,
)
from z4j_core.testing.waiting import wait_for
from z4j_core.wire import CloseCode
from z4j_core.wire.signing import new_token, token_hash

OTHER_ADMIN = "z4j_admin_other_" + "b" * 40


def api_status(brain: BrainProcess, token: str | None, source: str = "127.0.0.1") -> int:
    return request(brain.http_url, "GET", "/api/v1/agents", token=token, source=source).status


def agent_status(brain: BrainProcess, token: str | None, source: str = "127.0.0.1") -> int:
    return asyncio.run(upgrade_status(brain.url, token, source))


@pytest.fixture
def two_brains(tmp_path: Path) -> Iterator[tuple[BrainProcess, BrainProcess]]:
    # A high failure limit: this test presents many bad tokens on purpose (the limiter has its
    # own test below).
    limit = {"Z4J_AUTH_FAILURE_LIMIT": "1000"}
    a = BrainProcess(tmp_path / "a", env=limit)
    b = BrainProcess(tmp_path / "b", env={**limit, "Z4J_ADMIN_TOKEN": OTHER_ADMIN})
    yield a, b
    for brain in (a, b):
        brain.stop()


def test_every_kind_of_bad_token_is_refused(two_brains: tuple[BrainProcess, BrainProcess]) -> None:
    a, b = two_brains
    good = a.create_token("good")
    revoked = a.create_token("revoked")
    a.cli("tokens", "revoke", "revoked", "--database", a.database)
    expired = a.create_token("expired", "--expires", "1")
    foreign = b.create_token("good")  # same name, another brain
    a.start()
    b.start()
    time.sleep(1.2)  # the expired token's second is over
    bad_agent_tokens = {
        "wrong": new_token(),
        "revoked": revoked,
        "expired": expired,
        "truncated by one": good[:-1],
        "truncated to the prefix": good[:4],
        "truncated to half": good[: len(good) // 2],
        "one character longer": good + "A",
        "upper-cased": good.upper(),
        "another brain's": foreign,
        "the admin token": ADMIN_TOKEN,
        "empty": "",
        "non-ASCII": "z4j_" + "é" * 43,
        "64 KiB long": "z4j_" + "a" * 65536,
    }
    answers: dict[str, int] = {}
    for name, secret in bad_agent_tokens.items():
        answers[name] = agent_status(a, secret)
    answers["no Authorization header"] = agent_status(a, None)
    answers["Basic scheme"] = asyncio.run(
        upgrade_status(a.url, None, headers={"Authorization": f"Basic {good}"})
    )
    print("\nagent upgrades with bad tokens:", json.dumps(answers, indent=1))
    # A header line longer than the WebSocket layer parses (8 KiB) is a malformed upgrade.
    assert answers.pop("64 KiB long") == 400
    assert set(answers.values()) == {401}, answers
    assert agent_status(a, good) == 101 and agent_status(b, foreign) == 101

    bad_admin_tokens = {
        "wrong": "z4j_admin_" + "c" * 43,
        "truncated": ADMIN_TOKEN[:-1],
        "another brain's": OTHER_ADMIN,
        "an agent token": good,
        "empty": "",
    }
    api = {name: api_status(a, secret) for name, secret in bad_admin_tokens.items()}
    api["no Authorization header"] = api_status(a, None)
    print("API calls with bad admin tokens:", json.dumps(api, indent=1))
    assert set(api.values()) == {401}, api
    refused = request(a.http_url, "GET", "/api/v1/agents", token="nope")
    assert refused.json() == {"error": "token or session missing, wrong, revoked or expired"}
    assert refused.headers["www-authenticate"] == "Bearer"
    assert api_status(a, ADMIN_TOKEN) == 200 and api_status(b, OTHER_ADMIN) == 200


def test_a_live_agent_is_cut_off_when_its_token_is_revoked(brain: BrainProcess) -> None:
    secret = brain.create_token("doomed")
    brain.start()

    async def scenario() -> tuple[int | None, float]:
        ws, _ = await open_session(brain.url, secret, "doomed")
        began = time.monotonic()
        await asyncio.to_thread(
            brain.cli, "tokens", "revoke", "doomed", "--database", brain.database
        )
        closed = await wait_closed(ws, timeout=30)
        return closed.code, time.monotonic() - began

    code, seconds = asyncio.run(scenario())
    print(f"\nrevoked live agent closed with {code} after {seconds:.2f} s (CLI run included)")
    assert code == CloseCode.AUTH_REFUSED
    assert agent_status(brain, secret) == 401


def test_brute_force_is_limited_per_source_address(tmp_path: Path) -> None:
    from z4j_brain.config import AUTH_FAILURE_WINDOW_SECONDS, DEFAULT_AUTH_FAILURE_LIMIT

    brain = BrainProcess(tmp_path / "brain")
    good = brain.create_token("good")
    try:
        brain.start()
        limit = DEFAULT_AUTH_FAILURE_LIMIT
        guesses = [agent_status(brain, new_token()) for _ in range(limit)]
        assert guesses == [401] * limit
        # Past the limit every attempt from this address is refused before any lookup, good
        # tokens included, agent upgrades and API calls alike.
        after = [agent_status(brain, new_token()) for _ in range(limit * 5)]
        assert set(after) == {429}
        assert agent_status(brain, good) == 429 and api_status(brain, ADMIN_TOKEN) == 429
        answer = request(brain.http_url, "GET", "/api/v1/agents", token=ADMIN_TOKEN)
        retry_after = int(answer.headers["retry-after"])
        assert 1 <= retry_after <= AUTH_FAILURE_WINDOW_SECONDS
        assert "try again later" in answer.json()["error"]
        # Another address is not affected, and has a limit of its own.
        assert agent_status(brain, good, OTHER_SOURCE) == 101
        assert api_status(brain, ADMIN_TOKEN, OTHER_SOURCE) == 200
        other = [agent_status(brain, new_token(), OTHER_SOURCE) for _ in range(limit + 1)]
        assert other == [401] * limit + [429]
        # A forwarded-for header from an untrusted address changes nothing.
        spoofed = request(
            brain.http_url,
            "GET",
            "/api/v1/agents",
            token=ADMIN_TOKEN,
            source=OTHER_SOURCE,
            headers={"X-Forwarded-For": "10.9.8.7"},
        )
        assert spoofed.status == 429
        metrics = request(brain.http_url, "GET", "/metrics").body.decode()
        print(
            f"\nrate limit: {limit} bad tokens per {AUTH_FAILURE_WINDOW_SECONDS:.0f} s per "
            f"address; attempt {limit + 1} on got 429 (Retry-After {retry_after} s); "
            f"{OTHER_SOURCE} unaffected\n"
            + "\n".join(line for line in metrics.splitlines() if line.startswith("z4j_auth"))
        )
    finally:
        brain.stop()


# -- tokens never in clear -----------------------------------------------------------------------


def run_token_scenario(brain: BrainProcess, workdir: Path) -> list[str]:
    """Create, use, present wrongly, revoke and rotate tokens; return every secret involved."""
    secrets = [ADMIN_TOKEN]
    cli_token = brain.create_token("cli-agent", "--labels", "env=test")
    secrets.append(cli_token)
    revoked = brain.create_token("to-revoke")
    secrets.append(revoked)
    brain.start()
    made = request(
        brain.http_url,
        "POST",
        "/api/v1/tokens",
        token=ADMIN_TOKEN,
        body={"name": "api-agent", "expires_in": 3600},
    )
    assert made.status == 201, made
    api_token = made.json()["token"]
    secrets.append(api_token)
    # An operator's token, and the secret of a web session opened with it.
    operator = request(
        brain.http_url,
        "POST",
        "/api/v1/operators",
        token=ADMIN_TOKEN,
        body={"name": "an-operator", "role": "viewer"},
    )
    assert operator.status == 201, operator
    operator_token = operator.json()["token"]
    secrets.append(operator_token)
    session = request(brain.http_url, "POST", "/api/v1/session", token=operator_token)
    assert session.status == 201, session
    cookie = session.headers["set-cookie"].split(";")[0]
    secrets.append(cookie.partition("=")[2])
    assert api_status(brain, operator_token) == 200
    # Real agents stream with two of them.
    agents = []
    for secret in (cli_token, api_token):
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": brain.url,
            "Z4J_TOKEN": secret,
            "Z4J_SPOOL_DIR": str(workdir / f"spool-{len(agents)}"),
        }
        agents.append(
            subprocess.Popen(
                [sys.executable, "-m", STEADY_AGENT, "100"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    # Wrong tokens presented, on both doors.
    for _ in range(3):
        forged = new_token()
        secrets.append(forged)
        assert agent_status(brain, forged) == 401
        assert api_status(brain, forged) == 401
    assert agent_status(brain, revoked) == 101
    request(brain.http_url, "DELETE", "/api/v1/tokens/to-revoke", token=ADMIN_TOKEN)
    assert agent_status(brain, revoked) == 401
    asyncio.run(_session_and_goodbye(brain.url, cli_token))
    time.sleep(2)
    summaries = []
    for agent in agents:
        out, err = agent.communicate(input="", timeout=90)
        assert agent.returncode == 0, err
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    assert all(s["acked"] == s["emitted"] > 0 for s in summaries), summaries
    rotated = brain.cli("brain", "admin-token", "--rotate", "--database", brain.database)
    secrets.append(rotated.stdout.strip().splitlines()[-1])
    new_admin = secrets[-1]  # the brain reloads the admin hash every half second
    wait_for(lambda: api_status(brain, new_admin) == 200, 60, "the rotated admin token to work")
    assert api_status(brain, ADMIN_TOKEN) == 401
    brain.stop()
    return secrets


async def _session_and_goodbye(url: str, secret: str) -> None:
    ws, session = await open_session(url, secret, "goodbye")
    await ws.send(session.close(CloseCode.NORMAL, "done", time.monotonic()))
    await wait_closed(ws)


def assert_nowhere(secrets: list[str], places: dict[str, bytes]) -> None:
    for name, data in places.items():
        for secret in secrets:
            assert secret.encode() not in data, f"a token in clear in {name}"
            # The random part alone: all after the "z4j_" scheme (the random part itself may
            # hold "_", so splitting on the last one could leave a single common letter).
            # (A web session's secret has no scheme: it is all random.)
            body = (secret.split("_", 1)[1] if secret.startswith("z4j_") else secret).encode()
            assert len(body) >= 16, secret
            assert body not in data, f"a token's random part in clear in {name}"


def test_tokens_never_appear_in_the_debug_log_or_the_sqlite_store(tmp_path: Path) -> None:
    brain = BrainProcess(tmp_path / "brain", serve_args=("--log-level", "debug"))
    try:
        secrets = run_token_scenario(brain, tmp_path)
    finally:
        brain.stop()
    log = brain.log_path.read_bytes()
    database = Path(brain.database)
    files = {p.name: p.read_bytes() for p in database.parent.glob(database.name + "*")}
    # The search looks at the right bytes: the log is a DEBUG log of this scenario, and the
    # store holds each stored token's keyed hash (what it keeps instead).
    assert b" DEBUG " in log and b"bad token" in log and b"connected" in log
    stored = b"".join(files.values())
    assert token_hash(secrets[1]).hex().encode() in stored
    assert_nowhere(secrets, {"the brain's log": log, **files})
    print(
        f"\nsearched {len(secrets)} tokens in a {len(log)} byte DEBUG log and "
        f"{', '.join(f'{k} ({len(v)} bytes)' for k, v in files.items())}: none found"
    )


@pytest.mark.postgres
def test_tokens_never_appear_in_the_postgres_tables(tmp_path: Path) -> None:
    import psycopg

    from z4j_core.testing.postgres import temporary_database

    with temporary_database("hostile") as url:
        brain = BrainProcess(tmp_path / "brain", database=url, serve_args=("--log-level", "debug"))
        try:
            secrets = run_token_scenario(brain, tmp_path)
        finally:
            brain.stop()
        dump: dict[str, bytes] = {}
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
            for (table,) in tables:
                rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
                dump[f"table {table}"] = "\n".join(r[0] for r in rows).encode()
        assert token_hash(secrets[1]).hex().encode() in b"".join(dump.values())
        assert_nowhere(secrets, {"the brain's log": brain.log_path.read_bytes(), **dump})
        rows = sum(v.count(b"\n") + 1 for v in dump.values() if v)
        print(
            f"\nsearched {len(secrets)} tokens in {len(dump)} Postgres tables "
            f"({rows} rows): none found"
        )
