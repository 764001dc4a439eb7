"""Hostile bytes: the decoder and the sessions raise only ProtocolError subclasses, never hang."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_helpers import SessionPair, any_frame, batch

from z4j_core.wire import Frame, ProtocolError, RemoteProtocolError, decode_frame, encode_frame
from z4j_core.wire.errors import CloseCode
from z4j_core.wire.session import State

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_protocol_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except ProtocolError as exc:
        assert isinstance(exc, RemoteProtocolError)
        assert exc.code in (CloseCode.BAD_FRAME, CloseCode.OVERSIZED)
    else:
        assert isinstance(frame, Frame)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "dup"]))
        if not data:
            data = bytearray(draw(st.binary(min_size=1, max_size=8)))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC1, 0xDC, 0xDD, 0xDE, 0xDF, 0xFF]))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        else:
            data[i:i] = data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _decode_or_protocol_error(data)


@FUZZ
@given(data=mutated(any_frame.map(encode_frame)))
def test_mutated_frames(data: bytes) -> None:
    _decode_or_protocol_error(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x91" * 200_000,  # an array nested 200,000 deep
        b"\x81\xa4type" + b"\x81\xa1a" * 100_000,  # maps nested deep
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 billion items
        b"\xdf\xff\xff\xff\xff",  # a map claiming 4 billion entries
        b"\xdb\xff\xff\xff\xff" + b"x" * 10,  # a string claiming 4 GiB
        b"\x83\xa4type\xa7command\xa4args\xdd\xff\xff\xff\xff",
        b"\xc1",  # never used
    ],
)
def test_pathological_inputs_fail_fast(data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(RemoteProtocolError):
        decode_frame(data)
    assert time.perf_counter() - started < 2.0


@FUZZ
@given(data=st.binary(max_size=512) | mutated(any_frame.map(lambda f: b"U" + encode_frame(f))))
def test_brain_fed_garbage_instead_of_a_hello(data: bytes) -> None:
    pair = SessionPair()
    try:
        frames = pair.brain.receive(data, 0.0)
    except RemoteProtocolError:
        assert pair.brain.state is State.CLOSED
    else:
        assert pair.brain.state is State.HELLO_RECEIVED and len(frames) == 1


@FUZZ
@given(data=mutated(st.just(b"")) | st.binary(max_size=512))
def test_agent_fed_garbage_instead_of_a_welcome(data: bytes) -> None:
    pair = SessionPair()
    pair.agent.start(0.0)
    with pytest.raises(RemoteProtocolError):
        pair.agent.receive(data, 0.0)
    assert pair.agent.state is State.CLOSED


@FUZZ
@given(data=st.data())
def test_any_change_to_a_signed_frame_is_rejected(data: st.DataObject) -> None:
    pair = SessionPair()
    pair.handshake()
    signed = pair.agent.send(batch(0, 3), 0.0)
    altered = data.draw(mutated(st.just(signed)))
    if altered == signed:
        assert pair.brain.receive(altered, 0.0)
        return
    with pytest.raises(RemoteProtocolError) as info:
        pair.brain.receive(altered, 0.0)
    assert info.value.code in (CloseCode.BAD_FRAME, CloseCode.BAD_SIGNATURE)
    assert pair.brain.state is State.CLOSED
