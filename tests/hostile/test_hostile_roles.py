"""Operators, roles and app scopes against a real brain process, with real agents of two apps.

The walk reads every operation of the OpenAPI document the brain serves and calls it as each
role (viewer, operator, admin, and the bootstrap admin token) with each scope (every app, or
``billing*`` only), always aimed at the other app's things (``shipping``). Each operation must
declare its role (``x-z4j-role``), so a new route without one fails here. The answer must be
403 when the role is too low or the route is brain-wide and the caller scoped; never a success
when the caller's scope does not cover ``shipping`` (403 or 404, as if it did not exist); a
success for the known operations otherwise; and no successful answer to a scoped caller may
mention ``shipping`` at all (listings, filters and searches included).

Then: a revoked or expired operator is cut off at once (no cache), the audit log names the
operator and its address, an agent whose token is bound to another app is refused at the
handshake with 4403 and a reason, and web sessions: cookie flags, CSRF, origin, logout,
idle and absolute expiry, revocation and rotation ending them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.hostile import HttpAnswer, request, wait_closed, ws_connect
from z4j_core.wire import PROTOCOL_VERSION
from z4j_core.wire.errors import CloseCode
from z4j_core.wire.frames import Capability, EngineInfo, Error, Hello, Welcome
from z4j_core.wire.session import AgentSession

AGENT_HOST = "z4j_core.testing.agent_host"
ENGINE = "testengine"
MINE, OTHER = "billing", "shipping"
ROLES = ("viewer", "operator", "admin")
RANK = {"viewer": 1, "operator": 2, "admin": 3}
SCOPES = {"all": ["*"], "narrow": ["billing*"]}
IDLE_SECONDS, MAX_SECONDS = 3, 8
_names = itertools.count()


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class World:
    """A brain, two agents (apps billing and shipping), and calls as any principal."""

    def __init__(self, brain: BrainProcess) -> None:
        self.brain = brain
        self.document: dict[str, Any] = self.call("GET", "/api/v1/openapi.json").json()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = ADMIN_TOKEN,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> HttpAnswer:
        return request(self.brain.http_url, method, path, token=token, body=body, headers=headers)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        answer = self.call(method, path, body=body)
        assert answer.status == status, (method, path, answer.status, answer.body[:300])
        return answer.json()

    def schedule(self, app: str) -> str:
        name = fresh(f"{app}-sched")
        self.ok("POST", "/api/v1/schedules", schedule_body(name, app), 201)
        return name

    def operator(self, role: str, apps: list[str], **extra: Any) -> str:
        body = {"name": fresh(f"op-{role}"), "role": role, "apps": apps, **extra}
        created = self.ok("POST", "/api/v1/operators", body, 201)
        assert created["token"].startswith("z4j_op_")
        return str(created["token"])


def schedule_body(name: str, app: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "quick",
        "engine": ENGINE,
        "app": app,
        "schedule": {"kind": "interval", "every": "1h"},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("roles")
    env = {
        "Z4J_AUTH_FAILURE_LIMIT": "1000000",
        "Z4J_SESSION_IDLE_SECONDS": str(IDLE_SECONDS),
        "Z4J_SESSION_MAX_SECONDS": str(MAX_SECONDS),
    }
    brain = BrainProcess(workdir / "brain", env=env)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        brain.start()
        world = World(brain)
        for app in (MINE, OTHER):
            token = world.ok("POST", "/api/v1/tokens", {"name": f"agent-{app}", "app": app}, 201)
            agent_env = {
                **os.environ,
                "Z4J_BRAIN_URL": brain.url,
                "Z4J_TOKEN": token["token"],
                "Z4J_APP": app,
                "Z4J_SPOOL_DIR": str(workdir / f"spool-{app}"),
            }
            agents.append(
                subprocess.Popen([sys.executable, "-m", AGENT_HOST, "serve", "600"], env=agent_env)
            )
        wait_for(
            "both agents",
            lambda: len(world.ok("GET", "/api/v1/agents?connected=1")["agents"]) == 2,
        )
        for app in (MINE, OTHER):
            command = {"kind": "enqueue", "engine": ENGINE, "app": app, "task": "quick"}
            assert world.ok("POST", "/api/v1/commands", command)["status"] == "enqueued"
        wait_for(
            "tasks of both apps",
            lambda: {t["app"] for t in world.ok("GET", "/api/v1/tasks")["tasks"]} >= {MINE, OTHER},
        )
        wait_for(
            "inventories of both apps",
            lambda: (
                {i["app"] for i in world.ok("GET", "/api/v1/inventory")["inventory"]}
                >= {MINE, OTHER}
            ),
        )
        yield world
    finally:
        for agent in agents:
            agent.kill()
            agent.wait(10)
        brain.stop()


# -- the walk -----------------------------------------------------------------------------------


def principals(world: World) -> dict[str, tuple[str, str, bool]]:
    """label -> (token, role, scoped)"""
    found = {"bootstrap-admin": (ADMIN_TOKEN, "admin", False)}
    for role in ROLES:
        for scope, apps in SCOPES.items():
            found[f"{role}/{scope}"] = (world.operator(role, apps), role, scope == "narrow")
    return found


def target(world: World, method: str, template: str) -> tuple[str, Any, bool]:
    """The path (aimed at shipping's things), a body, and whether the operation is one this test
    knows (so that an allowed call must succeed)."""
    other_task = world.ok("GET", f"/api/v1/tasks?app={OTHER}")["tasks"][0]["task_id"]
    refs: dict[str, str] = {"task_id": other_task}
    if "{ref}" in template:
        refs["ref"] = world.schedule(OTHER)
    if "{fire_id}" in template:
        sched = world.schedule(OTHER)
        refs["fire_id"] = world.ok("POST", f"/api/v1/schedules/{sched}/trigger", None, 201)["fire"][
            "fire_id"
        ]
    if "{command_id}" in template:
        command = {"kind": "enqueue", "engine": ENGINE, "app": OTHER, "task": "quick"}
        refs["command_id"] = world.ok("POST", "/api/v1/commands", command)["command_id"]
    if "{bulk_id}" in template:
        bulk = {"states": ["succeeded"], "engine": ENGINE, "app": OTHER}
        refs["bulk_id"] = world.ok("POST", "/api/v1/tasks/cancel", bulk, 202)["bulk_id"]
    if template.startswith("/api/v1/tokens/"):
        refs["name"] = fresh("victim-token")
        world.ok("POST", "/api/v1/tokens", {"name": refs["name"]}, 201)
    if template.startswith("/api/v1/operators/"):
        refs["name"] = fresh("victim-op")
        world.ok("POST", "/api/v1/operators", {"name": refs["name"], "role": "viewer"}, 201)
    path = template
    for name, value in refs.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    if template == "/api/v1/scheduler/applied":
        path += "?schedule_id=x&version=1&timeout=0.1"
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/v1/commands"): {
            "kind": "enqueue", "engine": ENGINE, "app": OTHER, "task": "quick",
        },
        ("POST", "/api/v1/tokens"): {"name": fresh("new-token")},
        ("POST", "/api/v1/operators"): {"name": fresh("new-op"), "role": "viewer"},
        ("POST", "/api/v1/schedules"): schedule_body(fresh("new-sched"), OTHER),
        ("PATCH", "/api/v1/schedules/{ref}"): {"description": "walked"},
    }  # fmt: skip
    known = {
        ("POST", "/api/v1/schedules/{ref}/pause"),
        ("POST", "/api/v1/schedules/{ref}/resume"),
        ("POST", "/api/v1/schedules/{ref}/trigger"),
        ("DELETE", "/api/v1/schedules/{ref}"),
        ("DELETE", "/api/v1/tokens/{name}"),
        ("DELETE", "/api/v1/operators/{name}"),
        ("POST", "/api/v1/operators/{name}/rotate"),
        ("POST", "/api/v1/session"),
        ("DELETE", "/api/v1/session"),
    }
    key = (method, template)
    return path, bodies.get(key), method == "GET" or key in bodies or key in known


def aims_at_other(template: str, body: Any) -> bool:
    """Whether a call names one of shipping's things (a schedule, fire or command by its id,
    or the app in its body); a task's events are filtered instead (an empty list)."""
    named = any(f"{{{p}}}" in template for p in ("ref", "fire_id", "command_id", "bulk_id"))
    return named or (isinstance(body, dict) and body.get("app") == OTHER)


def test_every_operation_with_every_role_and_scope(world: World) -> None:
    who = principals(world)
    walked = 0
    for template, item in world.document["paths"].items():
        for method, operation in item.items():
            if not operation.get("security", world.document["security"]):
                continue  # the open routes: /healthz, /metrics, the document
            where = f"{method.upper()} {template}"
            assert operation.get("x-z4j-role") in RANK, f"{where} declares no role"
            needs = RANK[operation["x-z4j-role"]]
            brain_wide = operation["x-z4j-scope"] == "brain"
            for label, (token, role, scoped) in who.items():
                path, body, known = target(world, method.upper(), template)
                answer = world.call(method.upper(), path, token=token, body=body)
                seen = f"{where} as {label}: {answer.status} {answer.body[:200]!r}"
                walked += 1
                if RANK[role] < needs or (brain_wide and scoped):
                    assert answer.status == 403, seen
                elif scoped:
                    # Everything the walk aims at is shipping's: out of a narrow scope.
                    if aims_at_other(template, body):
                        assert answer.status in (403, 404), seen
                    if 200 <= answer.status < 300:
                        assert OTHER.encode() not in answer.body, f"leak: {seen}"
                elif known:
                    assert 200 <= answer.status < 300, seen
                else:
                    assert answer.status not in (401, 403), seen
    assert walked >= 7 * 30


def test_scoped_listings_and_searches_show_only_their_apps(world: World) -> None:
    narrow = world.operator("viewer", ["bill*"])
    world.schedule(MINE)
    world.schedule(OTHER)
    for path in (
        "/api/v1/tasks",
        f"/api/v1/tasks?app={OTHER}",
        "/api/v1/tasks?name=quick",
        "/api/v1/events?after=0&limit=10000",
        "/api/v1/agents",
        "/api/v1/inventory",
        "/api/v1/schedules",
    ):
        answer = world.call("GET", path, token=narrow)
        assert answer.status == 200, (path, answer.body[:200])
        assert OTHER.encode() not in answer.body, f"{path} leaks {OTHER}"
        assert MINE.encode() in answer.body or "app=" in path, f"{path} hides {MINE}"
    events = world.call("GET", "/api/v1/events?after=0&limit=10000", token=narrow).json()
    assert events["events"] and {e["app"] for e in events["events"]} == {MINE}
    # The page skipped shipping's events up to the newest: following it does not rescan them.
    assert events["next_after"] == events["latest"] > events["events"][-1]["position"] - 1
    other_task = world.ok("GET", f"/api/v1/tasks?app={OTHER}")["tasks"][0]["task_id"]
    answer = world.call("GET", f"/api/v1/tasks/{other_task}/events", token=narrow)
    # (Both apps' agents may use the same task ids: only billing's events of it are shown.)
    assert answer.status == 200 and OTHER.encode() not in answer.body
    assert {e["app"] for e in answer.json()["events"]} <= {MINE}


def test_a_revoked_or_expired_operator_is_cut_off_at_once(world: World) -> None:
    name = fresh("leaving")
    token = world.ok("POST", "/api/v1/operators", {"name": name, "role": "viewer"}, 201)["token"]
    assert world.call("GET", "/api/v1/schedules", token=token).status == 200
    world.ok("DELETE", f"/api/v1/operators/{name}")
    assert world.call("GET", "/api/v1/schedules", token=token).status == 401
    listed = {o["name"]: o for o in world.ok("GET", "/api/v1/operators")["operators"]}
    assert listed[name]["status"] == "revoked" and "token" not in listed[name]

    short = world.operator("viewer", ["*"], expires_in=2)
    assert world.call("GET", "/api/v1/schedules", token=short).status == 200
    time.sleep(2.0)
    started = time.monotonic()
    wait_for(
        "the expiry", lambda: world.call("GET", "/api/v1/schedules", token=short).status == 401
    )
    assert time.monotonic() - started < 1.0

    rotating = fresh("rotating")
    old = world.ok("POST", "/api/v1/operators", {"name": rotating, "role": "viewer"}, 201)["token"]
    new = world.ok("POST", f"/api/v1/operators/{rotating}/rotate")["token"]
    assert world.call("GET", "/api/v1/schedules", token=old).status == 401
    assert world.call("GET", "/api/v1/schedules", token=new).status == 200


def test_the_audit_log_names_the_operator_and_its_address(world: World) -> None:
    token = world.operator("operator", ["billing"])
    me = world.call("GET", "/api/v1/session", token=token).json()
    sched = world.schedule(MINE)
    answer = world.call("POST", f"/api/v1/schedules/{sched}/pause", token=token, body={})
    assert answer.status == 200, answer.body
    rows = world.ok("GET", "/api/v1/audit?limit=10000")["audit"]
    paused = [r for r in rows if r["action"] == "schedule.pause" and r["target"] == sched]
    assert [(r["actor"], r["source"]) for r in paused] == [(me["operator"], "127.0.0.1")]
    # The operator this test made was made with the bootstrap admin token.
    (made,) = [
        r for r in rows if r["action"] == "operator.create" and r["target"] == me["operator"]
    ]
    assert made["actor"] == "admin"
    assert world.ok("GET", "/api/v1/audit/verify")["ok"] is True


# -- agent tokens bound to an app ---------------------------------------------------------------


def hello(app: str, engine: str = ENGINE) -> Hello:
    return Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=fresh(f"bound-{app}"),
        app=app,
        host="test",
        pid=os.getpid(),
        agent_version="test",
        engines=[EngineInfo(name=engine, version="1", capabilities=[Capability.ENQUEUE])],
    )


async def handshake(url: str, token: str, greeting: Hello) -> tuple[str, int | None, str]:
    """``("welcome", None, "")``, or ``("refused", code, reason)``: the brain's unsigned fatal
    error refusing the hello, followed by a WebSocket close with the same code."""
    ws = await ws_connect(url, token)
    session = AgentSession(token, greeting)
    await ws.send(session.start(time.monotonic()))
    data = await asyncio.wait_for(ws.recv(decode=False), 30)
    (first,) = session.receive(data, time.monotonic())
    if isinstance(first, Welcome):
        await ws.close()
        return "welcome", None, ""
    assert isinstance(first, Error) and first.fatal, first
    closed = await wait_closed(ws)
    assert closed.code == first.code, (closed, first)
    return "refused", first.code, first.message


def test_an_agent_presenting_another_app_is_refused_at_the_handshake(world: World) -> None:
    url = world.brain.url
    bound = world.ok("POST", "/api/v1/tokens", {"name": fresh("bound"), "app": MINE}, 201)
    assert bound["app"] == MINE and bound["engine"] is None
    kind, code, reason = asyncio.run(handshake(url, bound["token"], hello(OTHER)))
    assert (kind, code) == ("refused", CloseCode.POLICY), (kind, code, reason)
    assert f"bound to app '{MINE}'" in reason and OTHER in reason
    assert asyncio.run(handshake(url, bound["token"], hello(MINE)))[0] == "welcome"

    body = {"name": fresh("bound-engine"), "app": MINE, "engine": ENGINE}
    both = world.ok("POST", "/api/v1/tokens", body, 201)
    kind, code, reason = asyncio.run(handshake(url, both["token"], hello(MINE, "other")))
    assert (kind, code) == ("refused", CloseCode.POLICY) and "bound to engine" in reason
    assert asyncio.run(handshake(url, both["token"], hello(MINE)))[0] == "welcome"

    # A real agent with that token and another app says why, and does not join.
    log_path = world.brain.workdir / "wrong-app-agent.log"
    agent_env = {
        **os.environ,
        "Z4J_BRAIN_URL": url,
        "Z4J_TOKEN": bound["token"],
        "Z4J_APP": OTHER,
        "Z4J_SPOOL_DIR": str(world.brain.workdir / "spool-wrong-app"),
    }
    with open(log_path, "wb") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", AGENT_HOST, "serve", "60"], env=agent_env, stderr=log
        )
    try:
        wait_for(
            "the agent to report its refusal",
            lambda: f"token bound to app '{MINE}', not '{OTHER}'" in log_path.read_text(),
        )
    finally:
        agent.kill()
        agent.wait(10)
    assert "refused this agent" in log_path.read_text()

    refused = world.call("POST", "/api/v1/tokens", body={"name": fresh("x"), "engine": ENGINE})
    assert refused.status == 400 and "needs its app" in refused.json()["error"]
    # A refused agent never joined: nothing can be routed to it.
    connected = world.ok("GET", "/api/v1/agents?connected=1")["agents"]
    assert {a["app"] for a in connected} == {MINE, OTHER}
    assert {a["token_name"] for a in connected} == {f"agent-{MINE}", f"agent-{OTHER}"}
    listing = world.brain.cli(
        "tokens", "list", "--brain-url", world.brain.http_url, "--admin-token", ADMIN_TOKEN
    ).stdout
    assert "unbound (any app)" in listing and f"{MINE}/{ENGINE}" in listing


# -- web sessions -------------------------------------------------------------------------------


def login(world: World, token: str) -> tuple[dict[str, str], HttpAnswer]:
    answer = world.call("POST", "/api/v1/session", token=token)
    assert answer.status == 201, answer.body
    cookie = answer.headers["set-cookie"].split(";")[0]
    return {"Cookie": cookie, "X-CSRF-Token": answer.json()["csrf_token"]}, answer


def test_a_session_cookie_is_strict_and_mutations_need_csrf_and_same_origin(world: World) -> None:
    session, answer = login(world, world.operator("operator", ["billing"]))
    flags = [f.strip().lower() for f in answer.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http here; over TLS it is Secure (test_hostile_tls)
    assert answer.headers.get("cache-control") == "no-store"
    cookie_only = {"Cookie": session["Cookie"]}
    me = world.call("GET", "/api/v1/session", token=None, headers=cookie_only).json()
    assert me["via"] == "session" and me["role"] == "operator"
    sched = world.schedule(MINE)
    pause = f"/api/v1/schedules/{sched}/pause"
    refused = world.call("POST", pause, token=None, headers=cookie_only, body={})
    assert refused.status == 403 and "X-CSRF-Token" in refused.json()["error"]
    wrong = {**session, "X-CSRF-Token": "0" * 64}
    assert world.call("POST", pause, token=None, headers=wrong, body={}).status == 403
    foreign = {**session, "Origin": "https://elsewhere.example"}
    refused = world.call("POST", pause, token=None, headers=foreign, body={})
    assert refused.status == 403 and "cross-origin" in refused.json()["error"]
    assert (
        world.call("POST", pause, token=None, headers={**session, "Origin": "null"}).status == 403
    )
    same = {**session, "Origin": world.brain.http_url}
    assert world.call("POST", pause, token=None, headers=same, body={}).status == 200
    assert (
        world.call("GET", f"/api/v1/schedules/{sched}", token=None, headers=session).json()[
            "enabled"
        ]
        is False
    )
    ended = world.call("DELETE", "/api/v1/session", token=None, headers=session)
    assert ended.status == 200 and ended.json() == {"ended": True}
    assert "max-age=0" in ended.headers["set-cookie"].lower()
    assert world.call("GET", "/api/v1/session", token=None, headers=session).status == 401
    # A bearer request is not a browser's: no CSRF token needed, and nothing to log out.
    admin_pause = world.call("POST", f"/api/v1/schedules/{world.schedule(MINE)}/pause", body={})
    assert admin_pause.status == 200


def test_a_session_ends_when_idle_at_its_absolute_expiry_and_with_its_operator(
    world: World,
) -> None:
    idle, _ = login(world, world.operator("viewer", ["*"]))
    assert world.call("GET", "/api/v1/schedules", token=None, headers=idle).status == 200
    time.sleep(IDLE_SECONDS + 0.5)
    assert world.call("GET", "/api/v1/schedules", token=None, headers=idle).status == 401

    busy, answer = login(world, world.operator("viewer", ["*"]))
    expires_at = answer.json()["expires_at"]
    while time.time() < expires_at - 1:
        assert world.call("GET", "/api/v1/schedules", token=None, headers=busy).status == 200
        time.sleep(1)
    time.sleep(max(0.0, expires_at - time.time()) + 0.2)
    assert world.call("GET", "/api/v1/schedules", token=None, headers=busy).status == 401

    name = fresh("session-op")
    token = world.ok("POST", "/api/v1/operators", {"name": name, "role": "viewer"}, 201)["token"]
    revoked, _ = login(world, token)
    world.ok("DELETE", f"/api/v1/operators/{name}")
    assert world.call("GET", "/api/v1/session", token=None, headers=revoked).status == 401

    name = fresh("session-rot")
    token = world.ok("POST", "/api/v1/operators", {"name": name, "role": "viewer"}, 201)["token"]
    rotated, _ = login(world, token)
    world.ok("POST", f"/api/v1/operators/{name}/rotate")
    assert world.call("GET", "/api/v1/session", token=None, headers=rotated).status == 401
    assert world.call("GET", "/api/v1/session", token=None, headers={}).status == 401


def test_operators_from_the_cli(world: World) -> None:
    brain = world.brain
    conn = ("--brain-url", brain.http_url, "--admin-token", ADMIN_TOKEN)
    made = brain.cli("operators", "create", "cli-ops", "--role", "operator", "--apps",
                     "billing,ship-*", "--expires", "1h", *conn)  # fmt: skip
    token = made.stdout.strip()
    assert token.startswith("z4j_op_") and token not in made.stderr
    listing = brain.cli("operators", "list", *conn).stdout
    assert "cli-ops" in listing and "billing,ship-*" in listing and token not in listing
    as_operator = brain.cli("schedules", "list", "--brain-url", brain.http_url, "--token", token)
    assert as_operator.returncode == 0
    refused = brain.cli("tokens", "list", "--brain-url", brain.http_url, "--token", token,
                        check=False)  # fmt: skip
    assert (
        refused.returncode == 1 and "HTTP 403" in refused.stderr and "needs admin" in refused.stderr
    )
    rotated = brain.cli("operators", "rotate", "cli-ops", *conn).stdout.strip()
    assert rotated.startswith("z4j_op_") and rotated != token
    brain.cli("operators", "revoke", "cli-ops", *conn)
    gone = brain.cli("schedules", "list", "--brain-url", brain.http_url, "--token", rotated,
                     check=False)  # fmt: skip
    assert gone.returncode == 1 and "refused the operator token" in gone.stderr
    bad = brain.cli("operators", "create", "x", "--role", "boss", *conn, check=False)
    assert bad.returncode == 2
