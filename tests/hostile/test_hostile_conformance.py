"""Every answer of the brain's HTTP API against the OpenAPI document it serves.

A real brain process and a real agent (z4j_core.testing.agent_host: the test engine, which
enqueues task ``quick`` and reports it) go through a scenario that reaches every operation of
the served document: success answers with real data in them (a command answered by the agent,
a schedule that fired and whose task the engine reported, a deleted schedule's history...),
and the refusals each operation documents (404, 409, 400, 401). Every answer is checked: its
status is one the operation documents, its content type the documented one, and its body valid
against the documented schema (JSON Schema 2020-12, the document's own components). The
schemas forbid undeclared fields, so a field the brain serves but the document does not
describe fails here, and so does a documented field that is not served. The last test checks
that every documented (operation, status) pair was seen, but for the few no request can
provoke (429 needs a rate limit reached; 400 on an operation that takes no input).

The schemathesis fuzz (test_hostile_http.py) checks the same document with generated inputs;
this file is the one that is sure to reach every success answer.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.hostile import HttpAnswer, request

# schemathesis brings it (the hostile session installs schemathesis). Under CI a missing
# validator is a failure, never a silent skip of the document's only full check.
if os.environ.get("CI"):
    import jsonschema_rs
else:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")

AGENT_HOST = "z4j_core.testing.agent_host"
APP, ENGINE = "hostapp", "testengine"
#: (method, path template) -> statuses seen
SEEN: dict[tuple[str, str], set[int]] = collections.defaultdict(set)


class Api:
    """Calls the brain and checks every answer against the served document."""

    def __init__(self, brain: BrainProcess) -> None:
        self.brain = brain
        answer = request(brain.http_url, "GET", "/api/v1/openapi.json")
        assert answer.status == 200
        self.document: dict[str, Any] = answer.json()

    def call(
        self,
        method: str,
        template: str,
        *,
        params: dict[str, str] | None = None,
        query: str = "",
        body: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None = ADMIN_TOKEN,
        expect: int | None = None,
    ) -> HttpAnswer:
        path = template
        for name, value in (params or {}).items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        answer = request(
            self.brain.http_url,
            method,
            path + (f"?{query}" if query else ""),
            token=token,
            body=body,
            headers=headers,
        )
        self.check(method, template, answer)
        if expect is not None:
            assert answer.status == expect, (method, path, answer.status, answer.body[:500])
        return answer

    def check(self, method: str, template: str, answer: HttpAnswer) -> None:
        operation = self.document["paths"][template][method.lower()]
        documented = operation["responses"]
        where = f"{method} {template} -> {answer.status}"
        assert str(answer.status) in documented, f"{where}: status not in the document"
        SEEN[(method, template)].add(answer.status)
        content = documented[str(answer.status)].get("content")
        if content is None:
            return
        ((media, described),) = content.items()
        got = answer.headers.get("content-type", "")
        assert got.split(";")[0].strip() == media, f"{where}: content type {got!r}"
        if media != "application/json":
            return
        schema = {**described["schema"], "components": self.document["components"]}
        errors = list(jsonschema_rs.Draft202012Validator(schema).iter_errors(answer.json()))
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].instance_path)}"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    workdir = tmp_path_factory.mktemp("conformance")
    # The missing-token checks below would otherwise reach the bad-token limit (it has its own
    # tests); 429 is the one documented answer not provoked here.
    brain = BrainProcess(workdir / "brain", env={"Z4J_AUTH_FAILURE_LIMIT": "1000000"})
    agent: subprocess.Popen[bytes] | None = None
    try:
        token = brain.create_token("conformance")
        brain.start()
        env = {
            **os.environ,
            "Z4J_BRAIN_URL": brain.url,
            "Z4J_TOKEN": token,
            "Z4J_SPOOL_DIR": str(workdir / "spool"),
        }
        agent = subprocess.Popen([sys.executable, "-m", AGENT_HOST, "serve", "600"], env=env)
        client = Api(brain)
        wait_for(
            "the agent to connect",
            lambda: client.call("GET", "/api/v1/agents", query="connected=1").json()["agents"],
        )
        yield client
    finally:
        if agent is not None:
            agent.kill()
            agent.wait(10)
        brain.stop()


def test_open_routes(api: Api) -> None:
    api.call("GET", "/healthz", expect=200)
    api.call("GET", "/health/live", expect=200)
    api.call("GET", "/health/ready", expect=200)
    api.call("GET", "/metrics", expect=200)
    api.call("GET", "/api/v1/openapi.json", expect=200)


def test_commands(api: Api) -> None:
    body = {"kind": "enqueue", "engine": ENGINE, "app": APP, "task": "quick"}
    outcome = api.call("POST", "/api/v1/commands", body=body, expect=200).json()
    assert outcome["status"] == "enqueued"
    api.call(
        "GET",
        "/api/v1/commands/{command_id}",
        params={"command_id": outcome["command_id"]},
        expect=200,
    )
    api.call("GET", "/api/v1/commands/{command_id}", params={"command_id": "nope"}, expect=404)
    # An option the API does not know is refused, never silently ignored.
    refused = api.call(
        "POST", "/api/v1/commands", expect=400, body={**body, "options": {"countdown": 5}}
    ).json()
    assert "countdown" in refused["error"]
    api.call("POST", "/api/v1/commands", body={**body, "surprise": 1}, expect=400)
    api.call("POST", "/api/v1/commands", body={**body, "engine": "nobody"}, expect=409)


def test_tasks_events_agents_inventory(api: Api) -> None:
    tasks = wait_for("a task", lambda: api.call("GET", "/api/v1/tasks", expect=200).json()["tasks"])
    api.call("GET", "/api/v1/tasks", query="limit=x", expect=400)
    first = api.call("GET", "/api/v1/tasks", query="limit=1&since=0", expect=200).json()
    if first["next_cursor"] is not None:
        api.call("GET", "/api/v1/tasks", query=f"limit=1&cursor={first['next_cursor']}", expect=200)
    api.call("GET", "/api/v1/tasks", query="cursor=nope", expect=400)
    api.call("GET", "/api/v1/tasks", query="until=later", expect=400)
    api.call(
        "GET", "/api/v1/tasks/{task_id}/events", params={"task_id": tasks[0]["task_id"]}, expect=200
    )
    page = api.call("GET", "/api/v1/events", query="after=0&limit=5", expect=200).json()
    assert page["events"]
    api.call("GET", "/api/v1/events", query="wait=x", expect=400)
    api.call("GET", "/api/v1/agents", expect=200)
    api.call("GET", "/api/v1/agents", query="seen_within=x", expect=400)
    wait_for(
        "the inventory",
        lambda: api.call("GET", "/api/v1/inventory", expect=200).json()["inventory"],
    )


def test_tokens(api: Api) -> None:
    api.call("GET", "/api/v1/tokens", expect=200)
    created = api.call(
        "POST", "/api/v1/tokens", body={"name": "c1", "expires_in": 3600}, expect=201
    ).json()
    assert created["token"]
    api.call("POST", "/api/v1/tokens", body={"name": "c1"}, expect=409)
    api.call("POST", "/api/v1/tokens", body={"name": "c2", "expires_in": -1}, expect=400)
    api.call("DELETE", "/api/v1/tokens/{name}", params={"name": "c1"}, expect=200)
    api.call("DELETE", "/api/v1/tokens/{name}", params={"name": "nope"}, expect=404)


def _instant(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def test_schedules_fires_scheduler_audit(api: Api) -> None:
    body = {
        "name": "every-second",
        "task": "quick",
        "engine": ENGINE,
        "app": APP,
        "schedule": {"kind": "interval", "every": "1s"},
        "options": {"queue": "default"},
    }
    created = api.call("POST", "/api/v1/schedules", body=body, expect=201).json()
    ref = {"ref": created["name"]}
    api.call("POST", "/api/v1/schedules", body=body, expect=409)
    api.call("POST", "/api/v1/schedules", body={**body, "name": "x", "nope": 1}, expect=400)
    api.call("GET", "/api/v1/schedules", expect=200)
    api.call("GET", "/api/v1/observed", expect=200)
    api.call("GET", "/api/v1/schedules/{ref}", params=ref, expect=200)
    # A day back: within the fire retention (a backfill reaches no further back).
    day_ago = int(time.time()) - 86400
    past = {"from": _instant(day_ago), "to": _instant(day_ago + 5)}
    backfilled = api.call("POST", "/api/v1/schedules/{ref}/backfill", params=ref,
                          body={**past, "dry_run": True}, expect=200).json()  # fmt: skip
    assert backfilled["fired"] == 0 and backfilled["dry_run"]
    api.call("POST", "/api/v1/schedules/{ref}/backfill", params=ref,
             body={**past, "to": "9999-01-01T00:00:00Z"}, expect=400)  # fmt: skip
    api.call("POST", "/api/v1/schedules/{ref}/backfill", params={"ref": "nope"}, body=past,
             expect=404)  # fmt: skip
    api.call("GET", "/api/v1/schedules/{ref}", params={"ref": "nope"}, expect=404)
    edited = api.call(
        "PATCH",
        "/api/v1/schedules/{ref}",
        params=ref,
        expect=200,
        body={"description": "conformance", "options": {"priority": 3}},
    ).json()
    assert edited["options"] == {"queue": "default", "priority": 3}
    api.call("PATCH", "/api/v1/schedules/{ref}", params=ref, body={"id": "x"}, expect=400)
    api.call(
        "PATCH",
        "/api/v1/schedules/{ref}",
        params={"ref": "nope"},
        body={"description": "x"},
        expect=404,
    )
    api.call(
        "POST",
        "/api/v1/schedules",
        expect=201,
        body={**body, "name": "other", "schedule": {"kind": "interval", "every": "1h"}},
    )
    api.call(
        "PATCH",
        "/api/v1/schedules/{ref}",
        params={"ref": "other"},
        body={"name": created["name"]},
        expect=409,
    )
    api.call("POST", "/api/v1/schedules/{ref}/pause", params=ref, body={"note": "x"}, expect=200)
    api.call("POST", "/api/v1/schedules/{ref}/pause", params={"ref": "nope"}, expect=404)
    api.call("POST", "/api/v1/schedules/{ref}/pause", params=ref, body={"note": 5}, expect=400)
    api.call("POST", "/api/v1/schedules/{ref}/resume", params=ref, body={"x": 1}, expect=400)
    api.call("POST", "/api/v1/schedules/{ref}/resume", params=ref, expect=200)
    api.call("POST", "/api/v1/schedules/{ref}/resume", params={"ref": "nope"}, expect=404)
    headers = {"Idempotency-Key": "conformance-1"}
    first = api.call(
        "POST", "/api/v1/schedules/{ref}/trigger", params=ref, headers=headers, expect=201
    ).json()
    again = api.call(
        "POST", "/api/v1/schedules/{ref}/trigger", params=ref, headers=headers, expect=200
    ).json()
    assert again["fire"]["fire_id"] == first["fire"]["fire_id"]
    api.call("POST", "/api/v1/schedules/{ref}/trigger", params={"ref": "nope"}, expect=404)
    api.call(
        "POST",
        "/api/v1/schedules/{ref}/trigger",
        params=ref,
        body={"idempotency_key": ""},
        expect=400,
    )

    def reported() -> Any:
        fire = api.call(
            "GET",
            "/api/v1/fires/{fire_id}",
            params={"fire_id": first["fire"]["fire_id"]},
            expect=200,
        ).json()
        return fire if fire["state"] == "enqueued" else None

    # (The test engine reports its tasks without the fire id, so task_state stays null here;
    # the scheduler tests check the outcome with real engines.)
    fire = wait_for("the trigger to be enqueued", reported)
    assert fire["native_id"] == fire["fire_id"] and "task_state" in fire
    api.call("GET", "/api/v1/fires/{fire_id}", params={"fire_id": "nope"}, expect=404)
    history = wait_for(
        "scheduled fires",
        lambda: [
            f
            for f in api.call(
                "GET", "/api/v1/schedules/{ref}/fires", params=ref, expect=200
            ).json()["fires"]
            if f["kind"] == "scheduled" and f["state"] == "enqueued"
        ],
    )
    assert history
    api.call("GET", "/api/v1/schedules/{ref}/fires", params={"ref": "nope"}, expect=404)
    api.call("GET", "/api/v1/schedules/{ref}/fires", params=ref, query="limit=x", expect=400)
    api.call("GET", "/api/v1/schedules/{ref}/fires", params=ref, query="cursor=x", expect=400)
    status = api.call("GET", "/api/v1/scheduler", expect=200).json()
    assert status["leader"] is True and status["fires"].get("enqueued", 0) >= 1
    api.call(
        "GET",
        "/api/v1/scheduler/applied",
        expect=200,
        query=f"schedule_id={created['id']}&version={edited['version']}&timeout=1",
    )
    api.call("GET", "/api/v1/scheduler/applied", query="version=x", expect=400)
    api.call("DELETE", "/api/v1/schedules/{ref}", params=ref, expect=200)
    api.call("DELETE", "/api/v1/schedules/{ref}", params=ref, expect=404)
    gone = api.call("GET", "/api/v1/schedules/{ref}/fires", params=ref, expect=200).json()
    assert gone["schedule"]["state"] == "deleted" and gone["fires"]
    rows = api.call("GET", "/api/v1/audit", expect=200).json()["audit"]
    assert {"schedule.create", "schedule.trigger", "schedule.delete"} <= {r["action"] for r in rows}
    api.call("GET", "/api/v1/audit", query="after=x", expect=400)
    page = api.call("GET", "/api/v1/audit", query="limit=1", expect=200).json()
    assert page["next_cursor"] is not None
    api.call("GET", "/api/v1/audit", query=f"limit=1&cursor={page['next_cursor']}", expect=200)
    api.call("GET", "/api/v1/audit", query="cursor=x", expect=400)
    assert api.call("GET", "/api/v1/audit/verify", expect=200).json()["ok"] is True


def test_operators_and_sessions(api: Api) -> None:
    api.call("GET", "/api/v1/operators", expect=200)
    body = {"name": "o1", "role": "viewer", "apps": [APP], "expires_in": 3600}
    created = api.call("POST", "/api/v1/operators", body=body, expect=201).json()
    assert created["token"].startswith("z4j_op_") and created["apps"] == [APP]
    api.call("POST", "/api/v1/operators", body=body, expect=409)
    api.call("POST", "/api/v1/operators", body={**body, "role": "boss"}, expect=400)
    name = {"name": "o1"}
    rotated = api.call("POST", "/api/v1/operators/{name}/rotate", params=name, expect=200).json()
    api.call("POST", "/api/v1/operators/{name}/rotate", params={"name": "nope"}, expect=404)
    token = rotated["token"]
    assert api.call("GET", "/api/v1/session", token=token, expect=200).json()["role"] == "viewer"
    opened = api.call("POST", "/api/v1/session", token=token, expect=201)
    cookie = opened.headers["set-cookie"].split(";")[0]
    session = {"Cookie": cookie, "X-CSRF-Token": opened.json()["csrf_token"]}
    api.call("GET", "/api/v1/session", token=None, headers=session, expect=200)
    api.call("POST", "/api/v1/session", token=None, headers=session, expect=400)
    ended = api.call("DELETE", "/api/v1/session", token=None, headers=session, expect=200)
    assert ended.json() == {"ended": True}
    api.call("DELETE", "/api/v1/operators/{name}", params=name, expect=200)
    api.call("DELETE", "/api/v1/operators/{name}", params={"name": "nope"}, expect=404)


def test_every_operation_that_may_refuse_refuses_a_narrow_viewer(api: Api) -> None:
    """A viewer scoped to no app, calling from a foreign page: every operation that documents
    403 answers it (a role too low, a brain-wide route, or a cross-origin mutation)."""
    viewer = api.call(
        "POST", "/api/v1/operators", body={"name": "narrow", "role": "viewer", "apps": ["none"]},
        expect=201,
    ).json()["token"]  # fmt: skip
    foreign = {"Origin": "https://elsewhere.example"}
    for template, item in api.document["paths"].items():
        for method, operation in item.items():
            if "403" in operation["responses"]:
                params = {name.split("}")[0]: "x" for name in template.split("{")[1:]}
                api.call(
                    method.upper(), template, params=params, token=viewer, headers=foreign,
                    expect=403,
                )  # fmt: skip


def test_actions_bulk_and_queues(api: Api) -> None:
    """The test engine advertises no action: each is answered 200 with `unavailable` and the
    reason (docs/actions.md); the refusals are the request's own faults."""
    tasks = wait_for("a task", lambda: api.call("GET", "/api/v1/tasks", expect=200).json()["tasks"])
    task = {"task_id": tasks[0]["task_id"]}
    for action in ("retry", "cancel"):
        template = f"/api/v1/tasks/{{task_id}}/{action}"
        result = api.call("POST", template, params=task, expect=200).json()
        assert result["status"] == "unavailable" and "advertises" in result["reason"], result
        api.call("POST", template, params=task, body={"deadline": -1}, expect=400)
        api.call("POST", template, params={"task_id": "nope"}, expect=404)
        bulk = {"states": ["succeeded"], "engine": ENGINE, "per_second": 50}
        counted = api.call(
            "POST", f"/api/v1/tasks/{action}", body={**bulk, "dry_run": True}, expect=200
        ).json()
        assert counted["matched"] >= 1 and counted["bulk_id"] is None
        started = api.call("POST", f"/api/v1/tasks/{action}", body=bulk, expect=202).json()
        api.call("POST", f"/api/v1/tasks/{action}", body={"states": []}, expect=400)
        refused = api.call(
            "POST", f"/api/v1/tasks/{action}", body={"states": ["faild"]}, expect=400
        ).json()
        assert "unknown task state 'faild'" in refused["error"], refused
        ended = wait_for(
            "the bulk to end",
            lambda started=started: (
                api.call(
                    "GET",
                    "/api/v1/bulk/{bulk_id}",
                    params={"bulk_id": started["bulk_id"]},
                    expect=200,
                ).json()
                or None
            ),
        )
        assert ended["matched"] == started["matched"]
    api.call("GET", "/api/v1/bulk/{bulk_id}", params={"bulk_id": "nope"}, expect=404)
    actions = api.call("GET", "/api/v1/actions", query="limit=5", expect=200).json()["actions"]
    assert actions
    api.call("GET", "/api/v1/actions", query="limit=x", expect=400)
    api.call("GET", "/api/v1/actions", query="cursor=x", expect=400)
    api.call("GET", "/api/v1/queues", query=f"engine={ENGINE}", expect=200)
    purge = {"engine": ENGINE, "app": APP}
    result = api.call(
        "POST", "/api/v1/queues/{queue}/purge", params={"queue": "default"}, body=purge,
        expect=200,
    ).json()  # fmt: skip
    assert result["status"] == "unavailable", result
    api.call("POST", "/api/v1/queues/{queue}/purge", params={"queue": "q"}, body={}, expect=400)
    rows = api.call("GET", "/api/v1/audit", expect=200).json()["audit"]
    assert {"task.retry", "task.cancel", "queue.purge", "tasks.bulk_retry"} <= {
        r["action"] for r in rows
    }


def test_every_guarded_operation_refuses_a_missing_token(api: Api) -> None:
    for template, item in api.document["paths"].items():
        for method, operation in item.items():
            if operation.get("security", api.document["security"]):
                params = {name.split("}")[0]: "x" for name in template.split("{")[1:]}
                api.call(method.upper(), template, params=params, token=None, expect=401)


def test_zz_every_documented_answer_was_seen(api: Api) -> None:
    """Runs last (file order): each (operation, status) the document declares was answered
    and validated above, but 429 (a rate limit reached), 400 where the operation takes no
    number parameter and no body (nothing to get wrong), and /health/ready's 503 (a store that
    fails; the brain's own tests provoke it, test_brain_ops.py)."""
    missing = []
    for template, item in api.document["paths"].items():
        for method, operation in item.items():
            takes_input = bool(operation.get("requestBody")) or any(
                p["in"] == "query" and p["schema"]["type"] != "string"
                for p in operation.get("parameters", [])
            )
            for status in operation["responses"]:
                if status == "429" or (status == "400" and not takes_input):
                    continue
                if (template, status) == ("/health/ready", "503"):
                    continue
                if int(status) not in SEEN[(method.upper(), template)]:
                    missing.append(f"{method.upper()} {template} {status}")
    assert not missing, missing
