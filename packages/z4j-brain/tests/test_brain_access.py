"""The pure parts of access control: roles, scopes, the route table's declarations, token
binding, and the session cookie's flags and CSRF token."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from starlette.requests import Request

from z4j_brain.access import (
    EVERY_APP,
    AccessError,
    Principal,
    Role,
    parse_apps,
    refusal,
)
from z4j_brain.openapi import operations
from z4j_brain.sessions import cookie_header, csrf_ok, csrf_token, same_origin
from z4j_brain.store import SessionRow, Store, StoreError, TokenRow
from z4j_brain.tokens import TokenError, binding_refusal, check_binding


def principal(role: Role, *apps: str) -> Principal:
    return Principal("alice", role, apps or (EVERY_APP,), "10.0.0.1")


@pytest.mark.parametrize(
    ("apps", "app", "sees"),
    [
        ((EVERY_APP,), "anything", True),
        (("billing",), "billing", True),
        (("billing",), "billing-eu", False),
        (("billing*",), "billing-eu", True),
        (("billing*",), "Billing", False),  # case-sensitive
        (("shop-?",), "shop-1", True),
        (("a", "b*"), "bee", True),
        (("a", "b*"), "c", False),
    ],
)
def test_a_scope_is_glob_patterns(apps: tuple[str, ...], app: str, sees: bool) -> None:
    assert Principal("p", Role.VIEWER, apps, "x").sees(app) is sees


def test_roles_are_ordered_and_refusals_say_why() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert Role.parse("Operator") is Role.OPERATOR
    with pytest.raises(AccessError, match="not one of viewer, operator, admin"):
        Role.parse("boss")
    assert refusal(principal(Role.ADMIN), Role.ADMIN, brain_wide=True) is None
    why = refusal(principal(Role.VIEWER), Role.OPERATOR, brain_wide=False)
    assert why is not None and "role viewer" in why and "needs operator" in why
    why = refusal(principal(Role.ADMIN, "billing"), Role.VIEWER, brain_wide=True)
    assert why is not None and "scoped to apps billing" in why
    assert refusal(principal(Role.ADMIN, "billing"), Role.ADMIN, brain_wide=False) is None


def test_app_patterns_default_to_every_app_and_are_bounded() -> None:
    assert parse_apps(None) == [EVERY_APP]
    assert parse_apps([" billing ", ""]) == ["billing"]
    with pytest.raises(AccessError, match="at most 32"):
        parse_apps([f"a{i}" for i in range(33)])
    with pytest.raises(AccessError, match="printable"):
        parse_apps(["a\nb"])


def test_every_guarded_route_declares_its_role() -> None:
    undeclared = [f"{op.method} {op.path}" for op in operations() if op.guarded and op.role is None]
    assert not undeclared, f"declare role= on these routes (openapi.operation): {undeclared}"
    # An undeclared role would be treated as admin-only, never as open.
    for op in operations():
        assert op.needs >= (op.role or Role.ADMIN)


def token(app: str | None = None, engine: str | None = None) -> TokenRow:
    return TokenRow("t", "00", {}, 0.0, None, None, app=app, engine=engine)


def test_a_bound_token_refuses_another_app_or_engine() -> None:
    assert binding_refusal(token(), "any", ["celery"]) is None
    assert binding_refusal(token("billing"), "billing", ["celery", "rq"]) is None
    why = binding_refusal(token("billing"), "shipping", ["celery"])
    assert why == "token bound to app 'billing', not 'shipping'"
    why = binding_refusal(token("billing", "celery"), "billing", ["celery", "rq"])
    assert why == "token bound to engine 'celery', not rq"
    long = binding_refusal(token("b" * 200, "e" * 200), "x" * 500, ["y" * 500])
    assert long is not None and len(long.encode()) <= 123  # a WebSocket close reason
    with pytest.raises(TokenError, match="needs its app"):
        check_binding(None, "celery")


def test_the_session_cookie_is_http_only_strict_and_secure_over_tls() -> None:
    plain = cookie_header("s3cret", 60, secure=False)
    assert plain == "z4j_session=s3cret; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
    assert cookie_header("s3cret", 60, secure=True).endswith("; Secure")
    csrf = csrf_token("s3cret")
    assert "s3cret" not in csrf and csrf != csrf_token("other")
    assert csrf_ok("s3cret", csrf) and not csrf_ok("s3cret", None)
    assert not csrf_ok("s3cret", csrf_token("other"))


def request(headers: dict[str, str]) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"host": "brain:7700"}, True),  # no Origin: not a browser
        ({"host": "brain:7700", "origin": "https://brain:7700"}, True),
        ({"host": "brain:7700", "origin": "http://brain:7700"}, True),
        ({"host": "brain:7700", "origin": "https://evil.example"}, False),
        ({"host": "brain:7700", "origin": "https://brain:7701"}, False),
        ({"host": "brain:7700", "origin": "null"}, False),
        ({"origin": "https://brain:7700"}, False),
    ],
)
def test_a_mutation_must_come_from_the_same_origin(headers: dict[str, str], allowed: bool) -> None:
    assert same_origin(request(headers)) is allowed


def test_operators_and_sessions_in_the_store(store: Store) -> None:
    with store.transaction():
        store.create_operator("alice", "aa", "operator", ["billing*"], now=1.0, expires_at=None)
    with pytest.raises(StoreError, match="already exists"), store.transaction():
        store.create_operator("alice", "bb", "viewer", ["*"], now=2.0, expires_at=None)
    (row,) = store.operator_rows()
    assert (row.name, row.role, row.apps, row.usable(5.0)) == (
        "alice",
        "operator",
        ["billing*"],
        True,
    )
    session = SessionRow("s1", "alice", "aa", "10.0.0.1", 3.0, 3.0, 100.0, None)
    with store.transaction():
        store.create_session(session)
    assert store.session("s1") == session
    with store.transaction():
        store.touch_session("s1", 4.0)
        assert store.rotate_operator("alice", "cc", 5.0)
        assert not store.rotate_operator("nobody", "dd", 5.0)
    assert store.session("s1") == replace(session, last_seen_at=4.0, revoked_at=5.0)
    assert store.operator("alice") == replace(row, token_hash="cc", rotated_at=5.0)
    with store.transaction():
        assert store.revoke_operator("alice", 6.0) and not store.revoke_operator("nobody", 6.0)
        assert store.purge_sessions(200.0) == 1
    assert store.session("s1") is None and store.operator_rows()[0].revoked_at == 6.0
    with store.transaction():
        store.create_token("bound", "ee", {}, 1.0, None, app="billing", engine="celery")
        store.create_token("loose", "ff", {}, 1.0, None)
    bindings = {t.name: (t.app, t.engine) for t in store.token_rows()}
    assert bindings == {"bound": ("billing", "celery"), "loose": (None, None)}
    assert store.known_apps() == []
