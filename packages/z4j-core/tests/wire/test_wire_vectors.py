"""Test vectors: docs/protocol.md publishes a signed frame's bytes and MAC; this recomputes them.

The key schedule and MAC are recomputed here with hashlib/hmac straight from the document's
formulas, independently of ``z4j_core.wire.signing``, and then compared with what the sessions
produce. Run this file as a script to print the vectors block for the document.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from z4j_core.wire import (
    PROTOCOL_VERSION,
    AgentSession,
    BrainSession,
    Capability,
    EngineInfo,
    Event,
    EventBatch,
    Hello,
    LifecycleKind,
    Limits,
    token_hash,
)

DOC = Path(__file__).resolve().parents[4] / "docs" / "protocol.md"

TOKEN = "z4j_test-vector-token-do-not-use"
AGENT_NONCE = bytes(range(32))
BRAIN_NONCE = bytes(range(32, 64))
SESSION_ID = "000102030405060708090a0b0c0d0e0f"
HELLO = Hello(
    protocol_version=PROTOCOL_VERSION,
    agent_instance="agent-1",
    app="billing",
    host="worker-7",
    pid=4242,
    agent_version="2.0.0",
    engines=[EngineInfo(name="rq", version="2.1.0", capabilities=[Capability.ENQUEUE])],
)
# The welcome's limits, spelled out: the published bytes must not move when a default does.
LIMITS = Limits(heartbeat_seconds=15.0)
BATCH = EventBatch(
    first_seq=0,
    events=[
        Event(
            seq=0,
            kind=LifecycleKind.SUCCEEDED,
            at=1750000000.5,
            engine="rq",
            task_id="0b6e2c1a-7f1d-4c39-9a55-3f7d2f3c9e10",
            task_name="billing.tasks.send_invoice",
            args="('cus_1', 42)",
            runtime=0.25,
        )
    ],
)


def compute_vectors() -> dict[str, Any]:
    """Run a real handshake with fixed nonces and return every intermediate value."""
    agent = AgentSession(TOKEN, HELLO, nonce=AGENT_NONCE)
    brain = BrainSession(token_hash(TOKEN), limits=LIMITS, nonce=BRAIN_NONCE, session_id=SESSION_ID)
    hello_message = agent.start(0.0)
    brain.receive(hello_message, 0.0)
    welcome_message = brain.accept(0.0)
    agent.receive(welcome_message, 0.0)
    events_message = agent.send(BATCH, 0.0)
    assert brain.receive(events_message, 0.0) == [BATCH]
    return {
        "token": TOKEN,
        "token_hash": token_hash(TOKEN).hex(),
        "agent_nonce": AGENT_NONCE.hex(),
        "brain_nonce": BRAIN_NONCE.hex(),
        "session_id": SESSION_ID,
        "hello_message": hello_message.hex(),
        "hello_digest": hashlib.sha256(hello_message[1:]).hexdigest(),
        "session_key": agent._key.hex(),
        "welcome_message": welcome_message.hex(),
        "welcome_mac": welcome_message[9:41].hex(),
        "events_message": events_message.hex(),
        "events_mac": events_message[9:41].hex(),
    }


def documented_vectors() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- test-vectors -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert match, "docs/protocol.md has no <!-- test-vectors --> json block"
    vectors: dict[str, Any] = json.loads(match.group(1))
    return vectors


def test_document_matches_the_implementation() -> None:
    assert documented_vectors() == compute_vectors()


def test_document_formulas_reproduce_the_vectors() -> None:
    text_fields = {"token", "session_id"}
    v = {k: x if k in text_fields else bytes.fromhex(x) for k, x in documented_vectors().items()}
    # token_hash = HMAC-SHA256(key=b"z4j/v1 agent token hash", msg=token as UTF-8)
    assert (
        hmac.new(b"z4j/v1 agent token hash", TOKEN.encode(), "sha256").digest() == v["token_hash"]
    )
    # The hello goes unsigned: b"U" then its msgpack payload; the digest covers the payload.
    assert v["hello_message"][:1] == b"U"
    assert hashlib.sha256(v["hello_message"][1:]).digest() == v["hello_digest"]
    # HKDF-SHA256: extract with salt = agent nonce | brain nonce, expand one block with info.
    prk = hmac.new(v["agent_nonce"] + v["brain_nonce"], v["token_hash"], "sha256").digest()
    info = b"z4j/v1 session key" + SESSION_ID.encode() + v["hello_digest"]
    assert hmac.new(prk, info + b"\x01", "sha256").digest() == v["session_key"]
    # Signed message: b"S" | seq (u64 big-endian) | mac | payload, with
    # mac = HMAC-SHA256(session key, direction | seq | payload); direction b"B" or b"A".
    for name, direction, seq in (("welcome", b"B", 0), ("events", b"A", 0)):
        message = v[f"{name}_message"]
        assert message[:1] == b"S"
        assert int.from_bytes(message[1:9], "big") == seq
        payload = message[41:]
        mac = hmac.new(v["session_key"], direction + message[1:9] + payload, "sha256").digest()
        assert mac == message[9:41] == v[f"{name}_mac"]


def test_a_changed_vector_would_be_caught() -> None:
    vectors = compute_vectors()
    altered = dict(vectors, events_mac="00" * 32)
    assert altered != vectors
    with pytest.raises(AssertionError):
        assert altered == compute_vectors()


if __name__ == "__main__":
    print("<!-- test-vectors -->\n```json")
    print(json.dumps(compute_vectors(), indent=2))
    print("```")
