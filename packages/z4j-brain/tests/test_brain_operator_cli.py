"""The operator CLI as a user runs it: every command a real `z4j` subprocess talking HTTP to a
real brain, happy paths and error paths (one line on stderr, non-zero exit, no traceback)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from brain_helpers import ADMIN, RunningBrain, TestAgent, make_hello
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from z4j_brain.store import Store
from z4j_core.wire import (
    Command,
    CommandResult,
    CommandStatus,
    Event,
    EventBatch,
    LifecycleKind,
)

# The CLI is the same whatever the store; the stores are compared in the store's own tests.
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def z4j(
    brain: RunningBrain | None, *args: str, token: str | None = ADMIN, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    # The user's own profiles never leak into a test (a test that wants one passes its own).
    clean["Z4J_CONFIG_DIR"] = "/nonexistent/z4j-test-config"
    clean.pop("COLUMNS", None)  # tables are as wide as their rows unless a test says otherwise
    if brain is not None:
        clean["Z4J_BRAIN_URL"] = brain.url
    if token is not None:
        clean["Z4J_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=90,
    )


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], fragment: str, code: int = 1
) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("z4j: error: "), result.stderr
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_tokens_create_list_revoke_over_http(running_brain: RunningBrain) -> None:
    created = z4j(
        running_brain, "tokens", "create", "w1", "--labels", "env=prod", "--expires", "1d"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("z4j_") and "\n" not in token and "shown only now" in created.stderr
    listed = z4j(running_brain, "tokens", "list")
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "CREATED"]
    assert row.split()[:2] == ["w1", "active"] and "env=prod" in row and token not in row
    as_json = json.loads(z4j(running_brain, "tokens", "list", "--json").stdout)
    assert as_json[0]["name"] == "w1" and as_json[0]["expires_at"] is not None
    assert token not in json.dumps(as_json)
    with_json = json.loads(z4j(running_brain, "tokens", "create", "w2", "--json").stdout)
    assert with_json["token"].startswith("z4j_") and with_json["status"] == "active"
    revoked = z4j(running_brain, "tokens", "revoke", "w1")
    assert revoked.returncode == 0 and "revoked token 'w1'" in revoked.stdout
    statuses = {
        t["name"]: t["status"]
        for t in json.loads(z4j(running_brain, "tokens", "list", "--json").stdout)
    }
    assert statuses == {"w1": "revoked", "w2": "active"}
    # An agent presenting the revoked token is refused now; the other token still works.

    async def upgrade(secret: str) -> int:
        try:
            ws = await connect(running_brain.ws_url, additional_headers=bearer(secret))
        except InvalidStatus as exc:
            return exc.response.status_code
        await ws.close()
        return 101

    assert asyncio.run(upgrade(token)) == 401
    assert asyncio.run(upgrade(with_json["token"])) == 101


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["tokens", "create", "w1"], "already exists", 1),
        (["tokens", "revoke", "nope"], "no token named 'nope'", 1),
        (["tokens", "create", "bad name"], "must be 1-64 letters", 1),
        (["tokens", "create", "x", "--labels", "oops"], "is not key=value", 2),
        (["tokens", "create", "x", "--expires", "soon"], "duration 'soon'", 2),
    ],
)
def test_tokens_errors(
    running_brain: RunningBrain, args: list[str], fragment: str, code: int
) -> None:
    running_brain.create_token("w1")
    assert_one_line_error(z4j(running_brain, *args), fragment, code)


def test_tokens_local_mode_on_the_database(running_brain: RunningBrain) -> None:
    database = str(running_brain.database)
    created = z4j(None, "tokens", "create", "local-1", "--database", database, token=None)
    assert created.returncode == 0 and created.stdout.strip().startswith("z4j_")
    listed = z4j(None, "tokens", "list", "--json", "--database", database, token=None)
    assert [t["name"] for t in json.loads(listed.stdout)] == ["local-1"]
    # ...and the running brain sees it through its API.
    api = json.loads(z4j(running_brain, "tokens", "list", "--json").stdout)
    assert [t["name"] for t in api] == ["local-1"]


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["agents"], {"Z4J_BRAIN_URL": "http://127.0.0.1:9"}, "connection refused"),
        (["tokens", "list"], {"Z4J_ADMIN_TOKEN": "z4j_admin_wrong"}, "refused the admin token"),
        (["tasks"], {"Z4J_BRAIN_URL": "ftp://x"}, "must start with http"),
        (["events", "tail"], {"Z4J_BRAIN_URL": "https://127.0.0.1:9"}, "connection refused"),
    ],
)
def test_connection_and_token_errors_are_one_line(
    running_brain: RunningBrain, args: list[str], env: dict[str, str], fragment: str
) -> None:
    code = 2 if "must start" in fragment else 1
    assert_one_line_error(z4j(running_brain, *args, **env), fragment, code)


def test_no_admin_token_says_where_to_find_one(running_brain: RunningBrain) -> None:
    assert_one_line_error(z4j(running_brain, "agents", token=None), "no admin token", 2)


def test_a_tls_url_against_a_plain_brain_is_a_tls_error(running_brain: RunningBrain) -> None:
    url = running_brain.url.replace("http://", "https://")
    assert_one_line_error(z4j(running_brain, "agents", "--brain-url", url), "TLS failed")


def _failing_batch(first_seq: int) -> EventBatch:
    at = time.time()
    events = [
        Event(
            seq=first_seq,
            kind=LifecycleKind.STARTED,
            at=at,
            engine="testengine",
            task_id="job-1",
            task_name="shop.charge",
            queue="billing",
            worker="w-1",
        ),
        Event(
            seq=first_seq + 1,
            kind=LifecycleKind.FAILED,
            at=at + 0.5,
            engine="testengine",
            task_id="job-1",
            task_name="shop.charge",
            runtime=0.5,
            exception="ValueError",
            message="card declined",
            traceback="Traceback...\nValueError: card declined",
        ),
        Event(
            seq=first_seq + 2,
            kind=LifecycleKind.SUCCEEDED,
            at=at + 1,
            engine="testengine",
            task_id="job-2",
            task_name="shop.ship",
            runtime=0.01,
        ),
    ]
    return EventBatch(first_seq=first_seq, events=events)


def test_agents_tasks_show_and_tail(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a", {"env": "test"})

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        tail = subprocess.Popen(
            [sys.executable, "-m", "z4j_core.cli", "events", "tail", "--count", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "Z4J_BRAIN_URL": running_brain.url, "Z4J_ADMIN_TOKEN": ADMIN},
        )
        await asyncio.sleep(2.0)  # tail has asked where the stream ends and is waiting
        await agent.send(_failing_batch(0))
        await agent.recv_frame()  # the ack
        out, err = await asyncio.to_thread(tail.communicate, timeout=60)
        assert tail.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == 3 and "started" in lines[0] and "job-1" in lines[0]
        assert "failure=ValueError" in lines[1] and "shop.ship" in lines[2]

        agents = await asyncio.to_thread(z4j, running_brain, "agents")
        header, row = agents.stdout.splitlines()
        assert header.split()[:3] == ["APP", "STATE", "ENGINES"]
        assert "shop" in row and "connected" in row and "env=test" in row and "testhost" in row
        listed = json.loads(
            (await asyncio.to_thread(z4j, running_brain, "agents", "--json")).stdout
        )
        assert listed[0]["agent_instance"] == "inst-1" and listed[0]["dropped_total"] == 0
        await agent.ws.close()

    asyncio.run(scenario())
    failed = z4j(running_brain, "tasks", "--state", "failed")
    header, row = failed.stdout.splitlines()
    assert "FAILURE" in header and "shop.charge" in row and "ValueError: card declined" in row
    assert "billing" in row and "w-1" in row
    everything = json.loads(z4j(running_brain, "tasks", "--json").stdout)
    assert {t["task_id"] for t in everything} == {"job-1", "job-2"}
    assert (
        json.loads(z4j(running_brain, "tasks", "list", "--name", "shop.ship", "--json").stdout)[0][
            "state"
        ]
        == "succeeded"
    )
    shown = z4j(running_brain, "tasks", "show", "job-1")
    assert shown.returncode == 0
    assert "state:     failed" in shown.stdout and "ValueError: card declined" in shown.stdout
    assert "traceback (redacted by the agent):" in shown.stdout and "events (2):" in shown.stdout
    shown_json = json.loads(z4j(running_brain, "tasks", "show", "job-1", "--json").stdout)
    assert [e["kind"] for e in shown_json["events"]] == ["started", "failed"]
    replay = z4j(running_brain, "events", "tail", "--from-start", "--no-follow", "--json")
    assert [json.loads(x)["seq"] for x in replay.stdout.splitlines()] == [0, 1, 2]
    assert_one_line_error(z4j(running_brain, "tasks", "show", "nope"), "no task 'nope'")
    assert_one_line_error(z4j(running_brain, "tasks", "--limit", "0"), "--limit", 2)


def test_tasks_run_prints_the_outcome(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")
    seen: list[Command] = []

    async def answer(agent: TestAgent, status: CommandStatus, **fields: Any) -> None:
        command = await agent.recv_frame()
        assert isinstance(command, Command)
        seen.append(command)
        await agent.send(CommandResult(command_id=command.command_id, status=status, **fields))

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        args = [
            "tasks",
            "run",
            "shop.charge",
            "--engine",
            "testengine",
            "--args",
            "[1, 2]",
            "--kwargs",
            '{"x": "y"}',
            "--queue",
            "fast",
        ]
        answering = asyncio.create_task(answer(agent, CommandStatus.ENQUEUED, native_id="n-42"))
        ok = await asyncio.to_thread(z4j, running_brain, *args)
        await answering
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == (
            "enqueued shop.charge on testengine (app shop) as n-42 by agent inst-1"
        )
        assert seen[0].args == [1, 2] and seen[0].kwargs == {"x": "y"}
        assert seen[0].options.queue == "fast" and seen[0].app == "shop"
        answering = asyncio.create_task(
            answer(agent, CommandStatus.REJECTED, reason="unknown task shop.nope")
        )
        refused = await asyncio.to_thread(
            z4j,
            running_brain,
            "tasks",
            "run",
            "shop.nope",
            "--engine",
            "testengine",
            "--app",
            "shop",
            "--json",
        )
        await answering
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["reason"] == "unknown task shop.nope"
        await agent.ws.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["--engine", "testengine"], "no connected agent serves engine 'testengine'", 1),
        (["--engine", "testengine", "--app", "shop"], "not enqueued: no connected agent", 1),
        (["--engine", "e", "--args", "{"], "--args is not valid JSON", 2),
        (["--engine", "e", "--kwargs", "[1]"], "--kwargs must be a JSON object", 2),
        (["--engine", "e", "--deadline", "-1"], "--deadline must be a positive", 2),
    ],
)
def test_tasks_run_errors(
    running_brain: RunningBrain, args: list[str], fragment: str, code: int
) -> None:
    assert_one_line_error(z4j(running_brain, "tasks", "run", "shop.x", *args), fragment, code)


def test_tasks_run_with_two_apps_asks_for_one(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        a = await TestAgent.connect(running_brain.ws_url, token, make_hello("i-1", app="shop"))
        b = await TestAgent.connect(running_brain.ws_url, token, make_hello("i-2", app="blog"))
        result = await asyncio.to_thread(
            z4j, running_brain, "tasks", "run", "x", "--engine", "testengine"
        )
        assert_one_line_error(result, "several apps serve engine 'testengine' (blog, shop)", 2)
        await a.ws.close()
        await b.ws.close()

    asyncio.run(scenario())


def test_listings_when_empty_and_agents_connected_filter(running_brain: RunningBrain) -> None:
    empty = z4j(running_brain, "agents", "--connected")
    assert empty.returncode == 0 and empty.stdout == "" and "no agents connected" in empty.stderr
    assert json.loads(z4j(running_brain, "agents", "--json").stdout) == []
    recent = z4j(running_brain, "agents")
    assert recent.returncode == 0 and "no agents seen in the last day" in recent.stderr
    store = Store.open(running_brain.database)
    with store.transaction():
        store.agent_connected(make_hello("old"), {}, "t", "s", time.time() - 3 * 86400)
        store.agent_disconnected("old", "s", time.time() - 2 * 86400)
    store.close()
    assert z4j(running_brain, "agents").stdout == ""
    old = z4j(running_brain, "agents", "--all").stdout.splitlines()[1]
    assert "gone" in old and "2d ago" in old
    assert json.loads(z4j(running_brain, "tasks", "--json").stdout) == []
    assert z4j(running_brain, "events", "tail", "--no-follow").stdout == ""


def test_admin_token_rotation_takes_effect_on_the_running_brain(
    running_brain: RunningBrain,
) -> None:
    rotated = z4j(
        None,
        "brain",
        "admin-token",
        "--rotate",
        "--database",
        str(running_brain.database),
        token=None,
    )
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new.startswith("z4j_admin_") and new != ADMIN
    deadline = time.monotonic() + 5
    while z4j(running_brain, "agents", token=new).returncode != 0:
        assert time.monotonic() < deadline, "the new admin token was not accepted"
        time.sleep(0.2)
    assert_one_line_error(z4j(running_brain, "agents"), "refused the admin token")


def _mixed_batch(first_seq: int, at: float) -> EventBatch:
    """Twelve events over two engines and two task names, the last one carrying arguments."""
    events = [
        Event(
            seq=first_seq + i,
            kind=LifecycleKind.SUCCEEDED if i % 3 else LifecycleKind.FAILED,
            at=at + i,
            engine="alpha" if i % 2 else "beta",
            task_id=f"t-{i}",
            task_name="shop.pay" if i < 6 else "shop.ship",
            exception=None if i % 3 else "KeyError",
        )
        for i in range(11)
    ]
    events.append(
        Event(
            seq=first_seq + 11,
            kind=LifecycleKind.ENQUEUED,
            at=at + 11,
            engine="alpha",
            task_id="t-args",
            task_name="shop.refund",
            args='[42, "[redacted]"]',
            kwargs='{"reason": "late"}',
        )
    )
    return EventBatch(first_seq=first_seq, events=events)


def test_tail_show_and_times(running_brain: RunningBrain) -> None:
    """`events tail` prints the stored end (-n, filters, --no-follow), `tasks show` the
    arguments, every time is ISO 8601 with an offset, and --json gives ISO strings."""
    token = running_brain.create_token("agent-a")
    at = 1_796_000_000.0  # 2026-11-29T...Z: a fixed instant to read back in two zones

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        await agent.send(_mixed_batch(0, at))
        await agent.recv_frame()
        await agent.ws.close()

    asyncio.run(scenario())
    stored = z4j(running_brain, "events", "tail", "--no-follow")
    assert stored.returncode == 0, stored.stderr
    lines = stored.stdout.splitlines()
    assert len(lines) == 10 and "t-2" in lines[0] and "t-args" in lines[-1]
    assert z4j(running_brain, "events", "tail", "--no-follow", "-n", "0").stdout == ""
    three = z4j(running_brain, "events", "tail", "--no-follow", "-n", "3").stdout.splitlines()
    assert [line.split()[3] for line in three] == ["shop.ship", "shop.ship", "shop.refund"]
    failed_beta = z4j(
        running_brain, "events", "tail", "--no-follow", "--state", "failed", "--engine", "beta"
    ).stdout.splitlines()
    assert [line.split()[4] for line in failed_beta] == ["t-0", "t-6"]
    pay = z4j(running_brain, "events", "tail", "--no-follow", "--task", "shop.pay", "-n", "2")
    assert [line.split()[4] for line in pay.stdout.splitlines()] == ["t-4", "t-5"]
    assert z4j(running_brain, "events", "tail", "--no-follow", "--app", "nope").stdout == ""

    expected = datetime.fromtimestamp(at + 11, timezone.utc)
    assert three[-1].startswith(expected.isoformat(timespec="seconds"))
    paris = z4j(running_brain, "events", "tail", "--no-follow", "-n", "1", "--tz", "Europe/Paris")
    local = expected.astimezone(ZoneInfo("Europe/Paris")).isoformat(timespec="seconds")
    assert paris.stdout.startswith(local) and local.endswith("+01:00")
    as_json = json.loads(
        z4j(running_brain, "events", "tail", "--no-follow", "-n", "1", "--json").stdout
    )
    assert as_json["at"] == expected.isoformat(timespec="seconds")
    assert isinstance(as_json["stored_at"], str) and as_json["position"] == 12

    shown = z4j(running_brain, "tasks", "show", "t-args")
    assert shown.returncode == 0, shown.stderr
    assert 'args:      [42, "[redacted]"]' in shown.stdout
    assert 'kwargs:    {"reason": "late"}' in shown.stdout
    assert f"enqueued:  {expected.isoformat(timespec='seconds')}" in shown.stdout
    shown_json = json.loads(z4j(running_brain, "tasks", "show", "t-args", "--json").stdout)
    assert shown_json["args"] == '[42, "[redacted]"]'
    assert shown_json["enqueued_at"] == expected.isoformat(timespec="seconds")
    tasks_json = json.loads(z4j(running_brain, "tasks", "--json", "--tz", "Asia/Tokyo").stdout)
    assert all(t["updated_at"].endswith("+09:00") for t in tasks_json)

    refused = z4j(running_brain, "tasks", "--state", "failedd")
    assert refused.returncode == 2 and "did you mean failed?" in refused.stderr
    assert "succeeded" in refused.stderr and refused.stdout == ""


def test_tables_fit_the_terminal_width(running_brain: RunningBrain) -> None:
    token = running_brain.create_token("agent-a")

    async def scenario() -> None:
        agent = await TestAgent.connect(running_brain.ws_url, token, make_hello("inst-1"))
        await agent.send(_failing_batch(0))
        await agent.recv_frame()
        await agent.ws.close()

    asyncio.run(scenario())
    wide = z4j(running_brain, "tasks").stdout.splitlines()
    assert max(len(line) for line in wide) > 100
    narrow = z4j(running_brain, "tasks", COLUMNS="100").stdout.splitlines()
    assert max(len(line) for line in narrow) <= 100 and "…" in "".join(narrow)
    full = json.loads(z4j(running_brain, "tasks", "--json", COLUMNS="100").stdout)
    assert any(t["message"] == "card declined" for t in full)
    # On a real terminal (no COLUMNS): the terminal's own width.
    on_tty = _on_terminal(running_brain, 90, "tasks")
    assert on_tty and max(len(line) for line in on_tty) <= 90, on_tty
    assert on_tty[0].split()[:2] == ["NAME", "STATE"] and "…" in "".join(on_tty)


def _on_terminal(brain: RunningBrain, columns: int, *args: str) -> list[str]:
    """``z4j ARGS`` with its output on a pseudo-terminal ``columns`` wide; the lines it drew."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_") and k != "COLUMNS"}
    env.update(Z4J_BRAIN_URL=brain.url, Z4J_ADMIN_TOKEN=ADMIN)
    process = subprocess.Popen(
        [sys.executable, "-m", "z4j_core.cli", *args], stdout=follower, stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()


def test_brain_help_and_login(running_brain: RunningBrain, tmp_path: Any) -> None:
    helped = z4j(None, "brain", "--help", token=None)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: z4j brain")
    assert "serve" in helped.stdout
    serve_help = z4j(None, "brain", "serve", "--help", token=None)
    assert serve_help.returncode == 0 and "--port" in serve_help.stdout
    typo = z4j(None, "brain", "serve", "--prot", "1", token=None)
    assert typo.returncode == 2 and "did you mean --port?" in typo.stderr
    assert typo.stderr.startswith("usage: z4j brain serve")
    completion = z4j(None, "completion", "bash", token=None).stdout
    assert "_z4j_opts[z4j:brain:serve]=" in completion and "--port" in completion
    running_brain.create_token("zoned")
    zone = z4j(None, "brain", "tokens", "list", "--json", "--database",
               str(running_brain.database), token=None, Z4J_TZ="Asia/Tokyo")  # fmt: skip
    assert zone.returncode == 0, zone.stderr
    assert json.loads(zone.stdout)[0]["created_at"].endswith("+09:00"), zone.stdout

    config = str(tmp_path / "config")
    refused = z4j(
        None, "login", "--brain-url", running_brain.url, "--admin-token", "z4j_admin_wrong",
        token=None, Z4J_CONFIG_DIR=config,
    )  # fmt: skip
    assert_one_line_error(refused, "refused the admin token")
    assert not (tmp_path / "config" / "profiles.json").exists()
    saved = subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", "login", "--brain-url", running_brain.url],
        input=ADMIN + "\n",
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("Z4J_")},
             "Z4J_CONFIG_DIR": config},
        timeout=60,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    # No URL and no token in the environment: the saved profile is used.
    listed = z4j(None, "agents", "--json", token=None, Z4J_CONFIG_DIR=config)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    # The environment still overrides the profile.
    overridden = z4j(None, "agents", token="z4j_admin_wrong", Z4J_CONFIG_DIR=config)
    assert_one_line_error(overridden, "refused the admin token")
