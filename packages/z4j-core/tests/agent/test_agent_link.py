"""The agent over a real socket: start never blocks, nothing is lost, commands never queue
behind each other, refusals do not storm, forks stay apart.

These run against `MiniBrain` (our own protocol, a real socket) to test the agent's logic; the
end-to-end tests in tests/link run real brain processes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from minibrain import TOKEN, MiniBrain, wait_until

from z4j_core.adapter import Adapter
from z4j_core.agent import Agent
from z4j_core.agent import link as link_module
from z4j_core.agent.config import AgentConfig
from z4j_core.agent.link import Link
from z4j_core.agent.outbox import Outbox, record_to_event
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.wire import Command, CommandKind, CommandResult, CommandStatus


class SlowEngine(Adapter):
    """A test-only adapter: enqueue sleeps `delay[task]` seconds, then answers enqueued."""

    engine = "testengine"
    app_name = "testapp"
    capabilities = frozenset({"enqueue", "fire"})

    def __init__(self) -> None:
        self.delay: dict[str, float] = {}
        self.enqueued: list[str] = []
        self.release = threading.Event()

    def enqueue(self, request: Command) -> CommandResult:
        if request.task == "hang":
            self.release.wait(30)
        time.sleep(self.delay.get(request.task, 0))
        if request.task == "missing":
            return CommandResult(
                command_id=request.command_id,
                status=CommandStatus.REJECTED,
                reason="unknown task 'missing'",
            )
        self.enqueued.append(request.fire_id or request.task)
        return CommandResult(
            command_id=request.command_id,
            status=CommandStatus.ENQUEUED,
            native_id=request.fire_id or f"job-{len(self.enqueued)}",
        )


def registry() -> PluginRegistry:
    return PluginRegistry(new_plugin_manager())


def make_agent(url: str, spool: Path, **options: Any) -> tuple[Agent, SlowEngine]:
    agent = Agent(brain_url=url, token=TOKEN, spool_dir=str(spool), plugins=registry(), **options)
    engine = SlowEngine()
    agent.add_adapter(engine)
    return agent, engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def emit_many(agent: Agent, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        agent.emit("succeeded", f"task-{i}", "app.tasks.add", engine="testengine", runtime=0.1)


def test_events_arrive_in_order_exactly_once_and_redacted(tmp_path: Path) -> None:
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        emit_many(agent, 5000)
        agent.emit(
            "started",
            "secret-task",
            "app.tasks.login",
            engine="testengine",
            args=("postgres://bob:hunter2@db/app",),
            kwargs={"password": "hunter2", "user": "bob", "headers": {"Authorization": "x"}},
        )
        assert wait_until(lambda: len(brain.events) == 5001)
        agent.stop(5)
    seqs = sorted(seq for _, seq in brain.events)
    assert seqs == list(range(5001))
    secret = next(e for e in brain.events.values() if e.task_id == "secret-task")
    assert "hunter2" not in (secret.args or "") + (secret.kwargs or "")
    assert "bob" in (secret.kwargs or "")
    assert brain.hellos[0].app == "testapp"
    assert brain.hellos[0].engines[0].name == "testengine"


def test_start_returns_at_once_with_no_brain_and_events_arrive_when_it_comes_up(
    tmp_path: Path,
) -> None:
    port = free_port()
    agent, _ = make_agent(f"ws://127.0.0.1:{port}/v1/agent", tmp_path)
    began = time.perf_counter()
    agent.start()
    assert time.perf_counter() - began < 0.5  # generous: the promise is "a few ms"
    emit_many(agent, 3000)
    time.sleep(1.0)
    assert not agent.stats["connected"]
    brain = MiniBrain()
    with brain.running(port=port):
        assert wait_until(lambda: len(brain.events) == 3000, timeout=60)
        agent.stop(5)


def test_memory_is_bounded_and_the_overflow_goes_to_the_spool(tmp_path: Path) -> None:
    port = free_port()
    agent, _ = make_agent(f"ws://127.0.0.1:{port}/v1/agent", tmp_path, max_memory_events=1000)
    agent.start()
    emit_many(agent, 20_000)
    assert wait_until(lambda: agent.stats["spooled_bytes"] > 0)
    assert wait_until(lambda: agent.stats["pending"] <= 1000 + 2000)
    brain = MiniBrain()
    with brain.running(port=port):
        assert wait_until(lambda: len(brain.events) == 20_000, timeout=60)
        agent.stop(5)
    assert sorted(seq for _, seq in brain.events) == list(range(20_000))
    assert agent.dropped == 0


def test_unacknowledged_events_are_spooled_on_stop_and_replayed_by_a_later_agent(
    tmp_path: Path,
) -> None:
    brain = MiniBrain(ack=False)
    with brain.running():
        first, _ = make_agent(brain.url, tmp_path)
        first.start()
        emit_many(first, 2500)
        assert wait_until(lambda: len(brain.events) >= 1)
        first.stop(0.5)  # the brain never acks: everything stays unacknowledged
        assert list(tmp_path.glob("*/*.seg")), "nothing was spooled"
        brain.ack = True
        brain.events.clear()
        second, _ = make_agent(brain.url, tmp_path)
        second.start()
        assert wait_until(lambda: len(brain.events) == 2500, timeout=60)
        second.stop(5)
    # Replayed under the first agent's identity, so storage stays idempotent.
    assert {instance for instance, _ in brain.events} == {first.instance_id}
    assert not list(tmp_path.glob("*/*.seg"))


def test_a_hanging_command_delays_neither_another_command_nor_events(tmp_path: Path) -> None:
    brain = MiniBrain()
    with brain.running():
        agent, engine = make_agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)

        def command(cid: str, task: str, **extra: Any) -> Command:
            fields: dict[str, Any] = {
                "kind": CommandKind.ENQUEUE,
                "deadline_seconds": 30,
                "engine": "testengine",
                "app": "testapp",
            }
            return Command(command_id=cid, task=task, **{**fields, **extra})

        brain.send_command(command("c-hang", "hang"))
        brain.send_command(command("c-quick", "quick"))
        emit_many(agent, 100)
        assert wait_until(lambda: "c-quick" in brain.results, timeout=10)
        assert wait_until(lambda: len(brain.events) == 100, timeout=10)
        assert "c-hang" not in brain.results
        assert brain.results["c-quick"].status is CommandStatus.ENQUEUED

        brain.send_command(command("c-missing", "missing"))
        brain.send_command(command("c-other", "x", engine="celery"))
        assert wait_until(lambda: {"c-missing", "c-other"} <= set(brain.results))
        assert brain.results["c-missing"].status is CommandStatus.REJECTED
        assert brain.results["c-other"].status is CommandStatus.REJECTED
        assert "celery" in brain.results["c-other"].reason

        engine.release.set()
        assert wait_until(lambda: "c-hang" in brain.results)
        agent.stop(5)


def test_a_fire_id_is_enqueued_once_even_across_restarts(tmp_path: Path) -> None:
    brain = MiniBrain()

    def fire(cid: str) -> Command:
        return Command(
            command_id=cid,
            kind=CommandKind.FIRE,
            deadline_seconds=30,
            engine="testengine",
            app="testapp",
            task="quick",
            fire_id="s1-20250101T000000Z",
            schedule_id="s1",
            slot="2025-01-01T00:00:00+00:00",
        )

    with brain.running():
        agent, engine = make_agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)
        brain.send_command(fire("f1"))
        brain.send_command(fire("f2"))
        assert wait_until(lambda: {"f1", "f2"} <= set(brain.results))
        statuses = sorted(brain.results[c].status.value for c in ("f1", "f2"))
        assert statuses == ["duplicate", "enqueued"]
        agent.stop(5)

        restarted, engine2 = make_agent(brain.url, tmp_path)
        restarted.start()
        assert restarted.wait_connected(10)
        brain.send_command(fire("f3"))
        assert wait_until(lambda: "f3" in brain.results)
        assert brain.results["f3"].status is CommandStatus.DUPLICATE
        restarted.stop(5)
    assert engine.enqueued == ["s1-20250101T000000Z"] and engine2.enqueued == []


def test_a_refused_token_backs_off_long_instead_of_storming(tmp_path: Path) -> None:
    brain = MiniBrain()
    with brain.running():
        agent = Agent(brain_url=brain.url, token="wrong", spool_dir=str(tmp_path))
        agent.start()
        assert wait_until(lambda: agent.stats["refusals"])
        time.sleep(2)
        assert agent._link is not None and agent._link.stats.connects == 1
        assert "refused the token" in agent.stats["refusals"][0]
        began = time.perf_counter()
        agent.stop(1)
        assert time.perf_counter() - began < 5


@pytest.mark.filterwarnings("ignore:This process.*is multi-threaded:DeprecationWarning")
def test_a_forked_child_never_uses_the_parents_link(tmp_path: Path) -> None:
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)
        emit_many(agent, 10)
        assert wait_until(lambda: len(brain.events) == 10)
        read_end, write_end = os.pipe()
        parent_instance = agent.instance_id
        pid = os.fork()
        if pid == 0:  # the child: a fresh agent identity, started by its first emit
            status = 1
            try:
                emit_many(agent, 5, start=100)
                ok = agent.instance_id != parent_instance and agent.wait_connected(10)
                ok = ok and wait_until(lambda: agent.stats["acked"] == 5, timeout=20)
                agent.stop(2)
                os.write(write_end, agent.instance_id.encode() if ok else b"fail")
                status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        child_instance = os.read(read_end, 100).decode()
        assert status == 0 and child_instance != "fail"
        # The parent's link still works after the child came and went.
        emit_many(agent, 10, start=200)
        assert wait_until(lambda: len(brain.events) == 25)
        agent.stop(5)
    instances = {instance for instance, _ in brain.events}
    assert instances == {agent.instance_id, child_instance}


@pytest.mark.filterwarnings("ignore:This process.*is multi-threaded:DeprecationWarning")
def test_a_disabled_agent_s_forked_child_sends_nothing_and_keeps_no_copy_of_the_socket(
    tmp_path: Path,
) -> None:
    # RQ's forking worker: its agent is `after_fork="disable"`, and a work horse forked per job
    # must neither emit nor hold the parent's connection open. The child builds nothing new (a
    # reset would copy pages in every horse), yet closes its copies of the socket and the spool
    # lock, once: a grandchild leaves alone what the child opened under those numbers.
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path, after_fork="disable")
        agent.start()
        assert agent.wait_connected(10)
        emit_many(agent, 10)
        assert wait_until(lambda: len(brain.events) == 10)
        assert agent._link is not None and agent._link._fd is not None
        socket_fd = agent._link._fd
        socket_inode = os.fstat(socket_fd).st_ino
        assert agent._spool is not None
        lock_fd = agent._spool._lock_fd
        parent_instance = agent.instance_id
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                rebuilt = agent.instance_id != parent_instance
                emit_many(agent, 5, start=100)
                try:
                    kept = os.fstat(socket_fd).st_ino == socket_inode
                except OSError:
                    kept = False
                connected = agent.wait_connected(5)
                # Nothing is handed to the parent's loop (an adapter's reannounce, say).
                assert agent._loop is not None
                queued = len(agent._loop._ready)  # type: ignore[attr-defined]
                agent.reannounce()
                touched = len(agent._loop._ready) != queued  # type: ignore[attr-defined]
                # A file the child opens under the numbers it closed, then a grandchild (a job
                # that forks): the grandchild's fork handler must leave those files open.
                mine = os.open(tmp_path / "child-file", os.O_RDWR | os.O_CREAT, 0o600)
                for fd in (socket_fd, lock_fd):
                    os.dup2(mine, fd)
                grandchild = os.fork()
                if grandchild == 0:
                    same = all(os.fstat(fd).st_ino == os.fstat(mine).st_ino
                               for fd in (socket_fd, lock_fd))  # fmt: skip
                    os._exit(0 if same else 1)
                _, grand_status = os.waitpid(grandchild, 0)
                agent.stop(1)
                grandchild_status = os.waitstatus_to_exitcode(grand_status)
                answer = f"{rebuilt} {kept} {connected} {touched} {grandchild_status}"
                os.write(write_end, answer.encode())
                status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert os.read(read_end, 100).decode() == "False False False False 0"
        # The parent's link goes on as if no child had been.
        emit_many(agent, 10, start=200)
        assert wait_until(lambda: len(brain.events) == 20)
        agent.stop(5)
    assert {instance for instance, _ in brain.events} == {agent.instance_id}
    assert brain.upgrades == 1


def test_a_stop_right_after_start_still_sends_what_was_emitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short-lived producer starts the agent, enqueues and stops within milliseconds, before
    # the link thread has set up its loop and link (slowed down here): the stop waits for them
    # and drains, so the `enqueued` is sent, not dropped with the process.
    opened = Agent._open_spool

    def slow_open(self: Agent) -> Any:
        time.sleep(0.5)
        return opened(self)

    monkeypatch.setattr(Agent, "_open_spool", slow_open)
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        emit_many(agent, 3)
        agent.stop(10)
        assert {e.task_id for e in brain.events.values()} == {"task-0", "task-1", "task-2"}


def test_emit_never_raises_and_counts_what_it_could_not_take(tmp_path: Path) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        agent.emit("started", "t1", "x", engine="testengine", args=(Hostile(),))
        agent.emit("no-such-kind", "t2", "x", engine="testengine")
        agent.emit("started", "t3", "x", engine="testengine", runtime="not a number")
        agent.emit("started", "t4", "x", engine="testengine", kwargs={Hostile(): Hostile()})
        assert wait_until(lambda: len(brain.events) == 2)
        assert wait_until(lambda: brain.dropped == 2)
        agent.stop(5)
        agent.emit("started", "t5", "x", engine="testengine")  # after stop: silently ignored
    assert {e.task_id for e in brain.events.values()} == {"t1", "t4"}


@pytest.mark.parametrize("disabled", ["1", "true"])
def test_a_disabled_agent_does_nothing(disabled: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Z4J_DISABLED", disabled)
    agent = Agent()
    agent.start()
    agent.emit("started", "t", "x")
    assert agent._thread is None
    agent.stop(1)


def test_stop_returns_within_its_timeout_when_the_brain_blackholes(tmp_path: Path) -> None:
    """A brain that accepts TCP and then never answers must not hold the host's shutdown."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        agent, _ = make_agent(f"ws://127.0.0.1:{port}/v1/agent", tmp_path)
        agent.start()
        emit_many(agent, 1000)
        time.sleep(1.0)  # the link is stuck in its opening handshake
        began = time.perf_counter()
        agent.stop(1.0)
        elapsed = time.perf_counter() - began
    assert elapsed < 1.0 + 1.0  # the timeout plus the documented margin, with slack
    assert agent._thread is not None and not agent._thread.is_alive()
    assert list(tmp_path.glob("*/*.seg")), "undelivered events were not spooled"


def test_stop_returns_within_its_timeout_when_the_brain_never_acks(tmp_path: Path) -> None:
    brain = MiniBrain(ack=False)
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)
        emit_many(agent, 5000)
        began = time.perf_counter()
        agent.stop(1.5)
        elapsed = time.perf_counter() - began
    assert elapsed < 1.5 + 1.0
    assert agent._thread is not None and not agent._thread.is_alive()


def test_stop_spools_what_a_brain_gone_silent_mid_session_never_acked(tmp_path: Path) -> None:
    """A brain that stops answering mid-session (not even the WebSocket close) must neither hold
    the host's shutdown past its timeout nor make the agent lose what it did not acknowledge."""
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)
        brain.freeze()
        time.sleep(0.2)
        emit_many(agent, 3000)
        time.sleep(0.3)
        began = time.perf_counter()
        agent.stop(1.0)
        elapsed = time.perf_counter() - began
        assert agent._thread is not None and not agent._thread.is_alive()
    assert elapsed < 1.0 + 1.0
    assert list(tmp_path.glob("*/*.seg")), "unacknowledged events were not spooled"


def test_records_prepared_in_a_child_arrive_redacted_with_the_childs_time(tmp_path: Path) -> None:
    """`prepare` in a forked child, `emit_prepared` in the parent: the relay path adapters use
    for prefork pools. The child's drops are counted with the agent's own."""
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: prepares, never emits
            import pickle

            record = agent.prepare(
                "started",
                "relayed-task",
                "app.tasks.login",
                engine="testengine",
                kwargs={"password": "hunter2", "user": "bob"},
                message="postgres://bob:hunter2@db/app failed",
            )
            os.write(write_end, pickle.dumps((record, agent.stats["connected"])))
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        import pickle

        with os.fdopen(read_end, "rb") as pipe:
            record, child_connected = pickle.loads(pipe.read())
        assert child_connected is False, "a child that only prepares must not start a link"
        agent.emit_prepared(record)
        agent.count_relay_dropped(3)
        assert agent.dropped >= 3
        assert wait_until(lambda: len(brain.events) == 1)
        agent.stop(5)
    event = next(iter(brain.events.values()))
    assert event.task_id == "relayed-task"
    assert event.at == record[1], "the event keeps the time it was prepared at"
    assert "hunter2" not in (event.kwargs or "") + (event.message or "")
    assert "bob" in (event.kwargs or "")


def test_stopping_twice_is_quiet(tmp_path: Path) -> None:
    """A worker's shutdown hook stops the agent, then atexit stops it again: the second call
    must neither warn (an un-awaited coroutine) nor wait."""
    brain = MiniBrain()
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        agent.start()
        agent.emit("started", "t-1", "app.tasks.add", engine="testengine")
        assert wait_until(lambda: len(brain.events) == 1)
        agent.stop(5)
        began = time.monotonic()
        agent.stop(5)  # filterwarnings=error turns a RuntimeWarning into a failure here
        assert time.monotonic() - began < 0.5


def test_a_rate_limited_agent_waits_as_told_then_connects(tmp_path: Path) -> None:
    brain = MiniBrain(rate_limit_first=2)
    with brain.running():
        agent, _ = make_agent(brain.url, tmp_path)
        began = time.monotonic()
        agent.start()
        emit_many(agent, 10)
        assert wait_until(lambda: len(brain.events) == 10, timeout=30)
        # Two refusals, each asking for a second: the agent honoured both.
        assert time.monotonic() - began >= 2.0
        assert brain.upgrades == 3
        agent.stop(5)


def test_reconnect_delays_are_spread_by_full_jitter() -> None:
    """What spreads a storm: each failed attempt waits a uniform random delay in [0, bound], the
    bound doubling from BACKOFF_BASE to BACKOFF_CAP, so agents cut at one instant do not come
    back at one instant. (No clock involved: the delays asked for are recorded, not waited.)"""
    attempts = 8
    config = AgentConfig(token="t" * 43, spool_dir="/nonexistent")

    def delays_of_one_agent() -> list[float]:
        link = Link(config, lambda: None, Outbox(1000), records=None, on_command=print)
        asked: list[float] = []

        async def refused() -> None:
            raise ConnectionRefusedError("the brain is away")

        async def record(seconds: float) -> None:
            asked.append(seconds)
            if len(asked) == attempts:
                link._stopping = True

        link._connect_and_pump = refused
        link._sleep = record
        asyncio.run(link.run())
        return asked

    agents = [delays_of_one_agent() for _ in range(200)]
    for attempt in range(attempts):
        bound = min(link_module.BACKOFF_CAP, link_module.BACKOFF_BASE * 2 ** (attempt + 1))
        delays = [agent[attempt] for agent in agents]
        assert all(0 <= d <= bound for d in delays)
        # Uniform over [0, bound]: 200 agents fill both halves of it (all in one half has a
        # probability of 2**-199).
        assert min(delays) < bound / 2 < max(delays)


_IMPORTS_ON_THREADS = """
import sys, tempfile, threading, time
late = []
def hook(event, args):
    if event == "import" and args[0] not in sys.modules:
        if threading.current_thread() is not threading.main_thread():
            late.append(f"{args[0]} on {threading.current_thread().name}")
sys.addaudithook(hook)
from z4j_core.agent import Agent
from z4j_core.plugins import PluginRegistry, new_plugin_manager
agent = Agent(brain_url=sys.argv[1], token="z4j_nope", spool_dir=tempfile.mkdtemp(),
              plugins=PluginRegistry(new_plugin_manager()))
agent.start()
time.sleep(2)  # it resolves the brain's host, connects, is refused, retries
agent.stop(1)
print(late)
"""


def test_nothing_of_the_agent_imports_on_its_own_threads(tmp_path: Path) -> None:
    # A worker that forks while one of the agent's threads imports a module hands the child a
    # module lock nobody will release: the child's first import of it hangs for ever (RQ's
    # scheduler, forked as the worker starts the agent, hung in its first `strptime`). So the
    # agent imports on the caller's thread what its threads would import lazily.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"ws://localhost:{port}/v1/agent"  # a name to resolve, and nobody listening
    found = subprocess.run(
        [sys.executable, "-c", _IMPORTS_ON_THREADS, url],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]", found.stdout


def test_an_engine_s_emitter_hands_over_the_event_emit_would(tmp_path: Path) -> None:
    """The emitter capture code calls does `emit`'s work itself: same redaction, same wire
    event; it never raises, counts what it could not take, and drops after stop."""
    agent, _ = make_agent("ws://127.0.0.1:9", tmp_path)
    emit = agent.emitter("testengine")
    fields: dict[str, Any] = {
        "queue": "q",
        "worker": "h:1",
        "retries": 1,
        "runtime": 0.5,
        "args": ["postgres://bob:hunter2@db/app", 2],
        "kwargs": {"password": "hunter2", "user": "bob"},
        "message": "password=hunter2 refused",
        "traceback": "Traceback ... token=hunter2",
        "result": ("ok",),
    }
    emit("failed", "t1", "app.tasks.login", **fields)
    agent.emit("failed", "t1", "app.tasks.login", engine="testengine", **fields)
    emit("started", "t2", "x", args=None, kwargs=None)
    agent.emit("started", "t2", "x", engine="testengine", args=None, kwargs=None)
    records = agent._records.drain(10)
    events = [record_to_event(0, record) for record in records]
    assert len(events) == 4
    for ours, theirs in ((events[0], events[1]), (events[2], events[3])):
        assert msgspec.structs.replace(ours, at=0.0) == msgspec.structs.replace(theirs, at=0.0)
    assert "hunter2" not in msgspec.json.encode(events[0]).decode()
    assert events[0].engine == "testengine" and events[0].kwargs is not None
    assert "bob" in events[0].kwargs

    errors = agent.errors
    emit("started", "t3", "x", message=123)  # a message that is not text: redaction raises
    assert agent.errors == errors + 1 and len(agent._records) == 0
    agent.stop(1)
    emit("started", "t4", "x")
    assert len(agent._records) == 0


def test_an_emit_replaced_before_the_emitter_is_made_gets_the_events(tmp_path: Path) -> None:
    agent, _ = make_agent("ws://127.0.0.1:9", tmp_path)
    seen: list[tuple[Any, ...]] = []
    agent.emit = lambda *args, **fields: seen.append((args, fields))  # type: ignore[method-assign]
    agent.emitter("testengine")("started", "t1", "x", queue="q")
    assert seen == [(("started", "t1", "x"), {"engine": "testengine", "queue": "q"})]
    assert len(agent._records) == 0
