"""Configuration precedence and validation; redaction of secrets and long values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from z4j_core.agent.config import AgentConfig, ConfigError
from z4j_core.agent.redaction import MAX_DEPTH, REDACTED, Redactor, scrub


def test_explicit_arguments_win_over_environment_which_wins_over_defaults() -> None:
    env = {
        "Z4J_BRAIN_URL": "wss://brain.example.com",
        "Z4J_TOKEN": "from-env",
        "Z4J_APP": "billing",
        "Z4J_LABELS": "team=payments, region=eu",
    }
    config = AgentConfig.load(env, token="explicit")
    assert config.token == "explicit"
    assert config.app_name == "billing"
    assert config.labels == {"team": "payments", "region": "eu"}
    assert config.websocket_url == "wss://brain.example.com/v1/agent"
    assert AgentConfig.load({}).brain_url == "ws://127.0.0.1:7700/v1/agent"


def test_the_token_never_appears_in_the_repr() -> None:
    assert "s3cr3t" not in repr(AgentConfig.load({}, token="s3cr3t"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"Z4J_BRAIN_URL": "ws://brain.example.com"}, "unencrypted ws://"),
        ({"Z4J_BRAIN_URL": "ftp://x"}, "must start with wss://"),
        ({"Z4J_DISABLED": "maybe"}, "Z4J_DISABLED='maybe' is not a boolean"),
        ({"Z4J_LABELS": "team"}, "label 'team' is not key=value"),
        ({"Z4J_MAX_MEMORY_EVENTS": "lots"}, "Z4J_MAX_MEMORY_EVENTS='lots' is not a whole number"),
    ],
)
def test_bad_configuration_says_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig.load(env)


def test_plain_ws_is_allowed_on_loopback_or_when_explicitly_allowed() -> None:
    assert AgentConfig.load({"Z4J_BRAIN_URL": "ws://[::1]:7700"}).websocket_url.startswith("ws://")
    allowed = AgentConfig.load(
        {"Z4J_BRAIN_URL": "ws://brain.internal:7700", "Z4J_ALLOW_INSECURE": "1"}
    )
    assert allowed.websocket_url == "ws://brain.internal:7700/v1/agent"


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown agent option"):
        AgentConfig.load({}, brian_url="x")


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "api-key",
        "apiKey",
        "X-Auth-Token",
        "Cookie",
        "client_secret",
        "Authorization",
        "stripe_api_key",
        "sessionid",
    ],
)
def test_secret_looking_keys_are_redacted(key: str) -> None:
    text = Redactor().kwargs({key: "hunter2", "user": "bob"})
    assert text is not None
    assert "hunter2" not in text and REDACTED in text and "bob" in text


def test_nested_values_and_configured_keys_are_redacted() -> None:
    redactor = Redactor(extra_keys=["ssn"])
    text = redactor.args(({"profile": {"ssn": "123-45-6789", "password": "p"}}, [1, 2]))
    assert text is not None and "123-45-6789" not in text and "'p'" not in text


def test_credentials_inside_urls_and_headers_are_scrubbed() -> None:
    text = scrub("connect postgres://app:hunter2@db:5432/x and Bearer abcdefghijklmnop")
    assert "hunter2" not in text and "abcdefghijklmnop" not in text
    assert "postgres://app:" in text


def test_long_values_are_truncated() -> None:
    text = Redactor().args(("x" * 100_000,))
    assert text is not None and len(text) < 500
    many = Redactor().args(tuple(range(10_000)))
    assert many is not None and len(many) < 2100


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connect failed: password=hunter2 host=db", "hunter2"),
        ('bad config {"api_key": "abc123", "user": "bob"}', "abc123"),
        ("Token: xyz789 rejected", "xyz789"),
        ("DB_PASSWORD = 's3cr3t!'", "s3cr3t!"),
    ],
)
def test_secrets_assigned_in_free_text_are_scrubbed(text: str, secret: str) -> None:
    scrubbed = Redactor().text(text)
    assert scrubbed is not None and secret not in scrubbed and REDACTED in scrubbed


def test_free_text_without_secrets_is_left_alone() -> None:
    assert Redactor().text("no secrets here: a=1, b: 2") == "no secrets here: a=1, b: 2"


@pytest.mark.parametrize(
    ("at", "fields"),
    [
        (float("nan"), {}),
        (float("inf"), {}),
        (1.0e9, {"retries": 2**31}),  # a producer can set any retries header
        (1.0e9, {"retries": 10**30}),
        (1.0e9, {"runtime": float("inf")}),
        (1.0e9, {"runtime": float("nan")}),
    ],
)
def test_an_event_with_values_the_wire_refuses_is_coerced_never_poisoning_its_batch(
    at: float, fields: dict[str, Any]
) -> None:
    """The brain refuses a batch holding a NaN instant or an out-of-range count; if the agent
    sent one, it would resend the same unacknowledged batch forever and everything after it
    would wait. The outbox makes such values storable first."""
    from z4j_core.agent.outbox import record_to_event
    from z4j_core.wire import EventBatch, LifecycleKind, decode_frame, encode_frame

    event = record_to_event(7, (LifecycleKind.SUCCEEDED, at, "test", "t-1", "tasks.add", fields))
    decoded = decode_frame(encode_frame(EventBatch(first_seq=7, events=[event])))
    assert isinstance(decoded, EventBatch)
    (stored,) = decoded.events
    assert math.isfinite(stored.at)
    assert stored.runtime is None or math.isfinite(stored.runtime)
    assert stored.retries is None or 0 <= stored.retries < 2**31


@pytest.mark.parametrize(
    "args",
    [
        [1, "a", None, 2.5, True],
        ["postgres://bob:hunter2@db/app", "Bearer abcdefghijklmnop"],
        ["x" * 300, 1],  # a long string
        [[1, 2], {"password": "p"}],  # nested
        list(range(30)),  # more items than are shown
        [],
    ],
)
def test_a_list_of_arguments_reads_as_the_walk_reads_it_scrubbed(args: list[Any]) -> None:
    redactor = Redactor()
    text = redactor.args(args)
    walked = "()" if not args else redactor._walk(args, MAX_DEPTH)
    assert text == walked
    assert text is not None and "hunter2" not in text and "abcdefghijklmnop" not in text
