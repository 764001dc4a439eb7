"""What the six captures share from the kit: `guarded` entry points and `count_error` never let
an exception reach the host, count every one and log each site once; `InFlight` and `Stopwatch`
keep per-task state bounded by `MAX_CAPTURE_IN_FLIGHT`; `stop_off_loop` never raises into an
engine's shutdown hook."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
import types
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from z4j_core import adapter as kit
from z4j_core.adapter import InFlight, Stopwatch, count_error, guarded
from z4j_core.wire.limits import MAX_CAPTURE_IN_FLIGHT


class Hooks:
    """A capture with two entry points: one that fails when told, one that never does."""

    def __init__(self) -> None:
        self.errors = 0
        self.seen: list[Any] = []

    @guarded
    def on_event(self, value: Any, *, fail: bool = False) -> str:
        if fail:
            raise RuntimeError(f"hook broke on {value}")
        self.seen.append(value)
        return f"saw {value}"

    @guarded
    def on_other(self, value: Any) -> None:
        raise KeyError(value)


@pytest.fixture(autouse=True)
def _fresh_log_memory() -> Iterator[None]:
    # each test starts as a fresh process would: no site logged yet (the same set object: the
    # fork hook clears that one)
    kept = set(kit._logged)
    kit._logged.clear()
    yield
    kit._logged.clear()
    kit._logged.update(kept)


def test_a_guarded_hook_answers_as_the_method_does_when_it_does_not_raise() -> None:
    hooks = Hooks()
    assert hooks.on_event(1) == "saw 1"
    assert hooks.seen == [1] and hooks.errors == 0


def test_a_guarded_hook_never_raises_counts_every_error_and_logs_each_site_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = Hooks()
    with caplog.at_level(logging.ERROR, logger="z4j.adapter"):
        assert hooks.on_event(1, fail=True) is None
        assert hooks.on_event(2, fail=True) is None  # keywords pass through
        assert hooks.on_other("x") is None
        assert hooks.on_other("y") is None
    assert hooks.errors == 4
    logged = [r for r in caplog.records if r.name == "z4j.adapter"]
    assert [r.getMessage() for r in logged] == [
        f"z4j caught an error in {__name__}.Hooks.on_event (counted; logged only this once)",
        f"z4j caught an error in {__name__}.Hooks.on_other (counted; logged only this once)",
    ]
    assert logged[0].exc_info is not None and "hook broke on 1" in str(logged[0].exc_info[1])
    assert hooks.on_event(3) == "saw 3"  # a hook that failed goes on working


def test_a_guarded_hook_lets_what_is_not_an_exception_through() -> None:
    class Stopping:
        errors = 0

        @guarded
        def on_event(self) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Stopping().on_event()


def test_guarded_keeps_the_method_s_name_for_engines_that_look_hooks_up_by_name() -> None:
    assert Hooks.on_event.__name__ == "on_event"
    assert Hooks.on_event.__wrapped__.__qualname__ == "Hooks.on_event"  # type: ignore[attr-defined]


def test_count_error_counts_on_its_owner_and_logs_each_what_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Owner:
        errors = 0

    owner, other = Owner(), Owner()
    engine_log = logging.getLogger("z4j.tiny")
    with caplog.at_level(logging.ERROR):
        for target in (owner, owner, other):
            try:
                raise OSError("no broker")
            except OSError:
                count_error(target, "could not start with the broker", engine_log)
    assert (owner.errors, other.errors) == (2, 1)
    logged = [(r.name, r.getMessage()) for r in caplog.records]
    assert logged == [
        ("z4j.tiny", "z4j could not start with the broker (counted; logged only this once)")
    ]


def test_a_forked_child_logs_its_own_first_error() -> None:
    class Owner:
        errors = 0

    try:
        raise OSError("no broker")
    except OSError:
        count_error(Owner(), "could not start with the broker")
    assert "could not start with the broker" in kit._logged
    with warnings.catch_warnings():  # Python 3.12+ warns about fork when threads exist
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it would log the error again
        os._exit(0 if "could not start with the broker" not in kit._logged else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "could not start with the broker" in kit._logged  # the parent's memory is untouched


def test_in_flight_is_a_dict_bounded_by_the_capture_limit() -> None:
    held: InFlight[int] = InFlight()
    for n in range(MAX_CAPTURE_IN_FLIGHT):
        held.put(f"t{n}", n)
    assert len(held) == MAX_CAPTURE_IN_FLIGHT and held.pop("t7") == 7
    held.put("t7", 7)  # back to the limit
    held.put("late", 1)  # past it: what never ended is dropped whole
    assert held == {"late": 1}
    assert held.pop("gone", None) is None and held.get("late") == 1


def test_stopwatch_measures_from_start_to_stop_once_and_stays_bounded() -> None:
    watch = Stopwatch()
    watch.start("a")
    runtime = watch.stop("a")
    assert runtime is not None and runtime >= 0.0
    assert watch.stop("a") is None and watch.stop("never") is None
    for n in range(MAX_CAPTURE_IN_FLIGHT + 1):
        watch.start(f"t{n}")
    assert watch.stop("t0") is None  # dropped with the others when the limit was passed
    assert watch.stop(f"t{MAX_CAPTURE_IN_FLIGHT}") is not None


class SlowAgent:
    """What `stop_off_loop` uses of an agent, with a drain that takes `seconds`."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.config = types.SimpleNamespace(drain_timeout=5.0)
        self.errors = 0
        self.seconds = seconds
        self.stopped_with: list[float] = []

    def stop(self, timeout: float) -> None:
        self.stopped_with.append(timeout)
        time.sleep(self.seconds)


def test_stop_off_loop_drains_with_the_timeout_given() -> None:
    agent = SlowAgent()
    asyncio.run(kit.stop_off_loop(agent, 0.5))  # type: ignore[arg-type]
    assert agent.stopped_with == [0.5] and agent.errors == 0


def test_stop_off_loop_never_raises_into_the_engine_and_counts_an_overrun(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = SlowAgent(seconds=1.5)  # longer than the 0.01 s asked plus the second of grace
    engine_log = logging.getLogger("z4j.tiny")
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        asyncio.run(kit.stop_off_loop(agent, 0.01, engine_log))  # type: ignore[arg-type]
    assert time.monotonic() - began < 1.4 and agent.errors == 1
    assert [(r.name, r.levelno) for r in caplog.records] == [("z4j.tiny", logging.WARNING)]
    # the drain thread ends quietly once the agent has stopped (here, where pytest reports it)
    for thread in threading.enumerate():
        if thread.name == "z4j-agent-drain":
            thread.join(5.0)


class Client:
    """A client a private loop keeps: records which loop thread closed it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.closed_on: str | None = None

    @staticmethod
    async def close(client: Client) -> None:
        client.closed_on = threading.current_thread().name


def test_a_private_loop_opens_its_client_once_for_every_caller_and_closes_it() -> None:
    private = kit.PrivateLoop("z4j-test-loop")
    opened: list[Client] = []

    async def open_client() -> Client:
        await asyncio.sleep(0.05)  # callers arrive while it opens
        opened.append(Client())
        return opened[-1]

    async def call(private: kit.PrivateLoop) -> Client:
        return await private.client(open_client, Client.close)

    def many(private: kit.PrivateLoop) -> list[Client]:
        async def gathered() -> list[Client]:
            return list(await asyncio.gather(*(call(private) for _ in range(20))))

        return private.run(gathered(), 10)

    assert many(private) == opened * 20 and len(opened) == 1
    assert private.run(call(private), 10) is opened[0]
    private.close()
    assert opened[0].closed_on == "z4j-test-loop"
    assert not any(t.name == "z4j-test-loop" for t in threading.enumerate())
    assert private.run(call(private), 10) is opened[1]  # used again: a new loop, a new client
    del private  # the loop's garbage collection closes its client too
    deadline = time.monotonic() + 10
    while opened[1].closed_on is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert opened[1].closed_on == "z4j-test-loop"


def test_a_private_loop_tries_a_failed_opening_again_and_a_timeout_does_not_cancel_it() -> None:
    private = kit.PrivateLoop("z4j-test-loop")
    attempts: list[int] = []
    release = threading.Event()

    async def open_client() -> Client:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise ConnectionRefusedError("redis is down")
        while not release.is_set():  # the second opening outlasts its first caller
            await asyncio.sleep(0.01)
        return Client()

    def call(timeout: float) -> Client:
        return private.run(private.client(open_client, Client.close), timeout)

    with pytest.raises(ConnectionRefusedError):
        call(10)
    with pytest.raises(concurrent.futures.TimeoutError):
        call(0.1)
    release.set()
    assert isinstance(call(10), Client)
    assert attempts == [0, 1]  # the timed-out caller's opening went on and was kept
    private.close()


def test_a_forked_child_opens_a_client_of_its_own() -> None:
    private = kit.PrivateLoop("z4j-test-loop")

    def call() -> Client:
        async def open_client() -> Client:
            return Client()

        return private.run(private.client(open_client, Client.close), 10)

    assert call().pid == os.getpid()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork when threads exist
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread and its client are not here
        code = 1
        try:
            code = 0 if call().pid == os.getpid() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert call().pid == os.getpid() and call().closed_on is None  # the parent's is untouched
    private.close()
