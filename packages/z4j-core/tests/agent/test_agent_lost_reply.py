"""An enqueue that may have reached the engine (a timeout, a connection lost mid-request) is
answered `unknown` and keeps its fire claimed, so the fire is never enqueued twice by this app;
one that surely did not (a refused connection, any other error) is `failed` and released."""

from __future__ import annotations

import builtins
import socket
from pathlib import Path

import pytest

from z4j_core.agent.commands import CommandRunner, FireMemory, may_have_reached_the_engine
from z4j_core.testing.waiting import wait_for
from z4j_core.wire import Command, CommandKind, CommandResult, CommandStatus


class TimeoutError(Exception):
    pass


class ConnectionError(Exception):
    pass


class OperationalError(Exception):  # named like kombu's, which wraps the socket error
    pass


def _wrapped(outer: type[Exception], inner: BaseException) -> Exception:
    error = outer("wrapped")
    error.__context__ = inner  # as `raise outer(...)` inside `except inner` leaves it
    return error


@pytest.mark.parametrize(
    "error",
    [
        builtins.TimeoutError("timed out"),
        TimeoutError("Timeout reading from socket"),
        ConnectionError("Connection closed by server."),
        BrokenPipeError(32, "Broken pipe"),
        ConnectionResetError(104, "Connection reset by peer"),
        _wrapped(OperationalError, ConnectionResetError(104, "reset")),
    ],
    ids=repr,
)
def test_a_timeout_or_a_connection_lost_mid_request_may_have_reached_it(
    error: BaseException,
) -> None:
    assert may_have_reached_the_engine(error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        _wrapped(ConnectionError, ConnectionRefusedError(111, "Connection refused")),
        _wrapped(ConnectionError, socket.gaierror(-2, "Name or service not known")),
        ValueError("cannot serialize"),
        KeyError("no such task"),
    ],
    ids=repr,
)
def test_a_refused_connection_or_another_error_did_not(error: BaseException) -> None:
    assert not may_have_reached_the_engine(error)


def _fire(fire_id: str) -> Command:
    return Command(
        command_id=fire_id + "-c",
        kind=CommandKind.FIRE,
        deadline_seconds=10,
        engine="rq",
        app="a",
        task="t",
        fire_id=fire_id,
        schedule_id="s",
        slot="2030-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("error", "status", "again"),
    [
        (builtins.TimeoutError("timed out"), CommandStatus.UNKNOWN, CommandStatus.DUPLICATE),
        (ConnectionRefusedError(111, "refused"), CommandStatus.FAILED, CommandStatus.ENQUEUED),
    ],
)
def test_the_runner_answers_and_remembers_by_what_the_engine_may_have(
    tmp_path: Path, error: BaseException, status: CommandStatus, again: CommandStatus
) -> None:
    answers: list[CommandResult] = []
    calls: list[str] = []

    def enqueue(command: Command) -> CommandResult:
        calls.append(command.command_id)
        if len(calls) == 1:
            raise error
        return CommandResult(command.command_id, CommandStatus.ENQUEUED, native_id="job")

    runner = CommandRunner(enqueue, answers.append, FireMemory(tmp_path / "f.log"), 1)
    first = runner._run(_fire("f1"), deadline=float("inf"))
    assert first.status is status, first
    assert type(error).__name__ in first.reason
    runner.submit(_fire("f1"))  # the brain offers the same fire again
    wait_for(lambda: answers, 10, "the second answer")
    runner.stop()
    assert [a.status for a in answers] == [again]
    assert len(calls) == (1 if again is CommandStatus.DUPLICATE else 2)
