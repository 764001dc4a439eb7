"""The HTTP API refuses every mutation without the admin token, and the audit log records who
did what from where. The mutating routes are read from the OpenAPI document the brain serves,
so a new route is covered without touching this test.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.hostile import OTHER_SOURCE, request

MUTATING = ("post", "put", "patch", "delete")


def schedule_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "app.tasks.nightly",
        "engine": "huey",
        "app": "billing",
        "schedule": {"kind": "cron", "expression": "0 3 * * *", "timezone": "UTC"},
        # No agent reports this app: kept anyway (the checks have tests of their own).
        "force": True,
    }


#: A body each known route would accept, so that a refusal is the token's doing; a route not
#: listed here is still tried, with an empty object.
GOOD_BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/v1/schedules"): schedule_body("created-by-nobody"),
    ("patch", "/api/v1/schedules/{ref}"): {"description": "changed by nobody"},
    ("post", "/api/v1/schedules/{ref}/pause"): {"note": "paused by nobody"},
    ("post", "/api/v1/tokens"): {"name": "minted-by-nobody"},
    ("post", "/api/v1/commands"): {
        "kind": "enqueue",
        "engine": "huey",
        "app": "billing",
        "task": "app.tasks.nightly",
    },
}


def fill(path: str, refs: dict[str, str]) -> str:
    for name, value in refs.items():
        path = path.replace("{" + name + "}", value)
    return path


def state(brain: BrainProcess) -> dict[str, Any]:
    """Everything a mutation could change, as the admin sees it."""
    return {
        "schedules": brain.api("GET", "/api/v1/schedules"),
        "tokens": brain.api("GET", "/api/v1/tokens"),
        "audit": brain.api("GET", "/api/v1/audit?limit=10000"),
        "events": brain.api("GET", "/api/v1/events?limit=0")["latest"],
    }


@pytest.fixture
def admin_brain(tmp_path: Path) -> Any:
    # Many refusals from one address on purpose; the limiter has its own test.
    brain = BrainProcess(tmp_path / "brain", env={"Z4J_AUTH_FAILURE_LIMIT": "100000"})
    yield brain
    brain.stop()


def test_every_mutating_route_refuses_a_request_without_the_admin_token(
    admin_brain: BrainProcess,
) -> None:
    brain = admin_brain
    agent_token = brain.create_token("an-agent")
    brain.start()
    created = brain.api("POST", "/api/v1/schedules", schedule_body("nightly"))
    refs = {"ref": created["id"], "name": "an-agent", "command_id": "c-1", "fire_id": "f-1"}
    document = request(brain.http_url, "GET", "/api/v1/openapi.json").json()
    operations = [
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in MUTATING
    ]
    # Every /api/v1 route but the document itself asks for the token in the document too.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/v1/") and path != "/api/v1/openapi.json":
                assert operation.get("security", document["security"]), (method, path)
    assert len(operations) >= 8, operations
    before = state(brain)
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "wrong token": {"Authorization": "Bearer z4j_admin_" + "x" * 43},
        "an agent token": {"Authorization": f"Bearer {agent_token}"},
        "the admin token, Basic scheme": {"Authorization": f"Basic {ADMIN_TOKEN}"},
        "the admin token, no scheme": {"Authorization": ADMIN_TOKEN},
        "the admin token in another header": {"X-Admin-Token": ADMIN_TOKEN},
        "the admin token, truncated": {"Authorization": f"Bearer {ADMIN_TOKEN[:-2]}"},
    }
    tried = 0
    for method, path in operations:
        body = GOOD_BODIES.get((method, path), {})
        for label, headers in credentials.items():
            for source in ("127.0.0.1", OTHER_SOURCE):
                answer = request(
                    brain.http_url,
                    method.upper(),
                    fill(path, refs),
                    body=body,
                    headers=headers,
                    source=source,
                )
                tried += 1
                assert answer.status == 401, (method, path, label, answer)
                assert answer.json() == {
                    "error": "token or session missing, wrong, revoked or expired"
                }
    assert state(brain) == before
    # The same requests with the admin token go through: the refusals were the token's doing.
    for (method, path), body in GOOD_BODIES.items():
        answer = request(
            brain.http_url, method.upper(), fill(path, refs), body=body, token=ADMIN_TOKEN
        )
        expected = 409 if path == "/api/v1/commands" else None  # no agent of that app
        assert (answer.status == expected) if expected else 200 <= answer.status < 300, (
            method,
            path,
            answer,
        )
    print(
        f"\n{len(operations)} mutating operations x {len(credentials)} credentials x 2 "
        f"source addresses: {tried} requests, every one 401, nothing changed"
    )


def test_the_audit_log_records_who_did_what_from_where(admin_brain: BrainProcess) -> None:
    brain = admin_brain
    brain.create_token("from-the-cli")
    brain.start()

    def mutate(method: str, path: str, body: Any, source: str, **headers: str) -> None:
        answer = request(
            brain.http_url,
            method,
            path,
            body=body,
            token=ADMIN_TOKEN,
            source=source,
            headers=headers,
        )
        assert 200 <= answer.status < 300, answer

    mutate("POST", "/api/v1/schedules", schedule_body("from-one"), "127.0.0.1")
    mutate("POST", "/api/v1/schedules", schedule_body("from-two"), OTHER_SOURCE)
    mutate("POST", "/api/v1/schedules/from-two/pause", {"note": "n"}, OTHER_SOURCE)
    # A forwarded-for header from an address that is not a trusted proxy is ignored...
    mutate(
        "PATCH",
        "/api/v1/schedules/from-two",
        {"description": "d"},
        OTHER_SOURCE,
        **{"X-Forwarded-For": "203.0.113.9"},
    )
    # ...and believed from the trusted proxy address, 127.0.0.1 (a reverse proxy on the host).
    mutate(
        "DELETE",
        "/api/v1/schedules/from-one",
        None,
        "127.0.0.1",
        **{"X-Forwarded-For": "198.51.100.7"},
    )
    mutate("DELETE", "/api/v1/tokens/from-the-cli", None, OTHER_SOURCE)
    rows = brain.api("GET", "/api/v1/audit?limit=100")["audit"]
    seen = [(r["actor"], r["source"], r["action"], r["target"]) for r in rows]
    user = getpass.getuser()
    assert seen == [
        (f"local:{user}", "local", "token.create", "from-the-cli"),
        ("admin", "127.0.0.1", "schedule.create", "from-one"),
        ("admin", OTHER_SOURCE, "schedule.create", "from-two"),
        ("admin", OTHER_SOURCE, "schedule.pause", "from-two"),
        ("admin", OTHER_SOURCE, "schedule.edit", "from-two"),
        ("admin", "198.51.100.7", "schedule.delete", "from-one"),
        ("admin", OTHER_SOURCE, "token.revoke", "from-the-cli"),
    ], seen
    assert brain.api("GET", "/api/v1/audit/verify")["ok"] is True
    print("\naudit rows (actor, source, action, target):")
    for row in seen:
        print("  ", row)


def test_without_a_trusted_proxy_a_forwarded_for_header_is_ignored(tmp_path: Path) -> None:
    """`FORWARDED_ALLOW_IPS=""`: the brain is reached directly; nobody may claim an address."""
    brain = BrainProcess(tmp_path / "brain", env={"FORWARDED_ALLOW_IPS": ""})
    try:
        brain.start()
        answer = request(
            brain.http_url,
            "POST",
            "/api/v1/schedules",
            body=schedule_body("s"),
            token=ADMIN_TOKEN,
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert answer.status == 201, answer
        (row,) = brain.api("GET", "/api/v1/audit")["audit"]
        assert row["source"] == "127.0.0.1"
    finally:
        brain.stop()
