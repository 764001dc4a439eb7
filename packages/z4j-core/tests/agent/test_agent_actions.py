"""The agent's side of actions (docs/actions.md): what it advertises, how it runs an action on
its adapter, the local store of original messages, and queue reports. Against `MiniBrain` (the
real protocol over a real socket) with a toy in-memory engine; the real engines prove the same
through the conformance suite."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from minibrain import TOKEN, MiniBrain, wait_until

from z4j_core.adapter import (
    ActionOutcome,
    Adapter,
    CancelRequest,
    RetryRequest,
    advertised_capabilities,
    capabilities,
    done,
    failed,
    unavailable,
)
from z4j_core.agent import Agent
from z4j_core.agent.originals import OriginalStore
from z4j_core.plugins import PluginRegistry, new_plugin_manager
from z4j_core.wire import (
    FEATURE_QUEUE_REPORTS,
    Action,
    ActionKind,
    Capability,
    CommandStatus,
    LifecycleKind,
    QueueDepth,
)
from z4j_core.wire.limits import MAX_ORIGINAL_BYTES

ALL_ACTIONS = (
    Capability.RETRY,
    Capability.CANCEL,
    Capability.TERMINATE,
    Capability.PURGE,
    Capability.QUEUE_DEPTH,
)


class ToyEngine(Adapter):
    """A queue in memory: `jobs` waiting, `failed` ones with their original payload kept by the
    agent's store, as a real capture would keep them."""

    engine = "toy"
    app_name = "toyapp"
    capabilities = capabilities(*ALL_ACTIONS)

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[str, bytes]] = {}
        self.lock = threading.Lock()

    def fail(self, task_id: str, task: str, payload: bytes) -> None:
        self.keep_original(task_id, task, payload, queue="default")

    def retry(self, request: RetryRequest) -> ActionOutcome:
        original = request.original
        if original is None:
            return unavailable(f"no original message of {request.task_id} on this host")
        new_id = request.new_task_id or f"{request.task_id}-retry"
        with self.lock:
            self.jobs[new_id] = (original.task, original.payload)
        return done(new_id)

    def cancel(self, request: CancelRequest) -> ActionOutcome:
        if request.task_id == "explodes":
            raise RuntimeError("the broker went away")
        with self.lock:
            if self.jobs.pop(request.task_id, None) is None:
                return unavailable(f"{request.task_id} is not queued")
        return done()

    def purge(self, queue: str) -> ActionOutcome:
        with self.lock:
            count = len(self.jobs)
            self.jobs.clear()
        return done(count=count)

    def queue_depths(self) -> list[QueueDepth]:
        with self.lock:
            return [QueueDepth(name="default", ready=len(self.jobs), failed=0)]


class DeclaresButDoesNotImplement(Adapter):
    engine = "lazy"
    capabilities = capabilities(Capability.RETRY, Capability.PURGE)


def _agent(url: str, spool: Path, **options: Any) -> tuple[Agent, ToyEngine]:
    agent = Agent(
        brain_url=url,
        token=TOKEN,
        spool_dir=str(spool),
        plugins=PluginRegistry(new_plugin_manager()),
        **options,
    )
    engine = ToyEngine()
    agent.add_adapter(engine)
    return agent, engine


def _action(command_id: str, action: ActionKind, **fields: Any) -> Action:
    target = {"engine": "toy", "app": "toyapp", **fields}
    return Action(command_id=command_id, action=action, deadline_seconds=10, **target)


def test_a_declared_action_is_advertised_only_when_its_method_is_overridden() -> None:
    assert advertised_capabilities(ToyEngine()) >= {c.value for c in ALL_ACTIONS}
    lazy = advertised_capabilities(DeclaresButDoesNotImplement())
    assert "retry" not in lazy and "purge" not in lazy and "enqueue" in lazy


def test_the_default_methods_answer_unavailable_with_a_reason() -> None:
    lazy = DeclaresButDoesNotImplement()
    answers = [
        lazy.retry(RetryRequest(task_id="t")),
        lazy.cancel(CancelRequest(task_id="t")),
        lazy.purge("q"),
    ]
    assert [a.status for a in answers] == [CommandStatus.UNAVAILABLE] * 3
    assert all("lazy adapter cannot" in a.reason for a in answers)
    assert lazy.queue_depths() == []
    assert failed("x" * 1000).reason == "x" * 200


def test_actions_run_on_the_adapter_and_are_answered(tmp_path: Path) -> None:
    brain = MiniBrain()
    with brain.running():
        agent, engine = _agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)
        (hello,) = brain.hellos
        (info,) = hello.engines
        assert set(info.actions) == {c.value for c in ALL_ACTIONS}
        assert not set(info.capabilities) & set(ALL_ACTIONS)

        secret = b"original-args-with-secret-123"
        engine.fail("job-1", "toy.add", secret)
        brain.send_command(
            _action("r1", ActionKind.RETRY, task_id="job-1", task="toy.add", new_task_id="job-2")
        )
        brain.send_command(_action("r2", ActionKind.RETRY, task_id="never-failed"))
        assert wait_until(lambda: {"r1", "r2"} <= set(brain.results))
        assert brain.results["r1"].status is CommandStatus.DONE
        assert brain.results["r1"].native_id == "job-2"
        assert engine.jobs["job-2"] == ("toy.add", secret)
        assert brain.results["r2"].status is CommandStatus.UNAVAILABLE
        assert "no original message" in brain.results["r2"].reason

        brain.send_command(_action("c1", ActionKind.CANCEL, task_id="job-2", task="toy.add"))
        brain.send_command(_action("c2", ActionKind.CANCEL, task_id="explodes"))
        assert wait_until(lambda: {"c1", "c2"} <= set(brain.results))
        assert brain.results["c1"].status is CommandStatus.DONE
        assert brain.results["c2"].status is CommandStatus.FAILED
        assert "RuntimeError: the broker went away" in brain.results["c2"].reason
        # The adapter said its capture does not record the cancel: the agent reports it.
        assert wait_until(
            lambda: any(e.kind is LifecycleKind.REVOKED for e in brain.events.values())
        )
        revoked = next(e for e in brain.events.values() if e.kind is LifecycleKind.REVOKED)
        assert (revoked.task_id, revoked.task_name, revoked.engine) == ("job-2", "toy.add", "toy")

        engine.jobs.update({"a": ("t", b""), "b": ("t", b"")})
        brain.send_command(_action("p1", ActionKind.PURGE, queue="default"))
        assert wait_until(lambda: "p1" in brain.results)
        assert brain.results["p1"].status is CommandStatus.DONE
        assert brain.results["p1"].count == 2

        brain.send_command(_action("x1", ActionKind.PURGE, queue="default", app="other"))
        assert wait_until(lambda: "x1" in brain.results)
        assert brain.results["x1"].status is CommandStatus.UNAVAILABLE
        assert "toy/toyapp" in brain.results["x1"].reason

        # Nothing of the original message ever reached the brain.
        assert all(secret.decode() not in repr(e) for e in brain.events.values())
        agent.stop(5)


def test_queue_reports_go_only_to_a_brain_that_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from z4j_core.agent import runtime

    monkeypatch.setattr(runtime, "QUEUE_REPORT_SECONDS", 0.2)
    old = MiniBrain()
    with old.running():
        agent, engine = _agent(old.url, tmp_path / "a")
        agent.start()
        assert agent.wait_connected(10)
        time.sleep(1.5)
        assert old.queue_reports == []  # and the link is still up: nothing was refused
        assert agent.stats["connected"]
        agent.stop(5)
    new = MiniBrain(features=(FEATURE_QUEUE_REPORTS,))
    with new.running():
        agent, engine = _agent(new.url, tmp_path / "b")
        engine.jobs["j"] = ("t", b"")
        agent.start()
        assert agent.wait_connected(10)
        assert wait_until(lambda: len(new.queue_reports) >= 1, timeout=10)
        report = new.queue_reports[0]
        assert (report.engine, report.app) == ("toy", "toyapp")
        assert report.queues == [QueueDepth(name="default", ready=1, failed=0)]
        time.sleep(1.0)
        assert len(new.queue_reports) == 1, "an unchanged report was sent again at once"
        engine.jobs.clear()
        assert wait_until(lambda: new.queue_reports[-1].queues[0].ready == 0, timeout=10)
        agent.stop(5)


# -- the local store of original messages ------------------------------------------------------


def test_the_store_keeps_reads_and_replaces_an_original(tmp_path: Path) -> None:
    store = OriginalStore(tmp_path / "originals")
    assert store.get("rq", "t1") is None
    assert store.keep("rq", "t1", "app.add", b"payload-1", queue="q")
    assert store.keep("rq", "t1", "app.add", b"payload-2", queue="q")
    kept = store.get("rq", "t1")
    assert kept is not None
    assert (kept.engine, kept.task_id, kept.task, kept.payload, kept.queue) == (
        "rq", "t1", "app.add", b"payload-2", "q",
    )  # fmt: skip
    assert store.get("huey", "t1") is None  # per engine
    files = list((tmp_path / "originals").iterdir())
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "originals").stat().st_mode & 0o777) == "0o700"
    store.forget("rq", "t1")
    assert store.get("rq", "t1") is None


def test_a_read_waits_for_a_write_another_thread_has_begun(tmp_path: Path) -> None:
    # The agent's thread has taken the entry off `pending` and not yet written its file when a
    # retry reads it (a retry sent right after the failure): the read waits, never misses it.
    writing, release = threading.Event(), threading.Event()

    class SlowDisk(OriginalStore):
        def _write(self, stored: Any) -> bool:
            writing.set()
            release.wait(10)
            return super()._write(stored)

    store = SlowDisk(tmp_path / "originals", wake=lambda: None)
    assert store.keep("rq", "t1", "app.add", b"payload")
    flusher = threading.Thread(target=store.flush)
    flusher.start()
    assert writing.wait(10) and store.pending == 0
    threading.Timer(0.2, release.set).start()
    kept = store.get("rq", "t1")
    flusher.join(10)
    assert kept is not None and kept.payload == b"payload"


def test_the_store_expires_entries_and_refuses_oversized_ones(tmp_path: Path) -> None:
    now = [1000.0]
    store = OriginalStore(tmp_path, ttl=60, clock=lambda: now[0])
    store.keep("rq", "t1", "x", b"a")
    now[0] += 61
    assert store.get("rq", "t1") is None
    assert not store.keep("rq", "big", "x", b"x" * (MAX_ORIGINAL_BYTES + 1))
    assert store.refused == 1 and store.get("rq", "big") is None
    nothing = OriginalStore(tmp_path / "none", max_bytes=0)
    assert not nothing.keep("rq", "t", "x", b"a")


def test_the_store_is_bounded_oldest_first(tmp_path: Path) -> None:
    store = OriginalStore(tmp_path, max_bytes=20_000)
    for i in range(40):
        store.keep("rq", f"t{i}", "x", b"x" * 1000)
        path = store._path("rq", f"t{i}")
        os.utime(path, (time.time() - 100 + i,) * 2)  # a clear age order
    store.trim()
    assert store.bytes <= 20_000
    assert store.get("rq", "t39") is not None
    assert store.get("rq", "t0") is None


def test_a_store_on_an_unwritable_folder_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = OriginalStore(blocker / "originals")
    assert not store.keep("rq", "t", "x", b"a")
    assert store.errors == 1 and store.get("rq", "t") is None


def test_keep_touches_no_disk_and_is_bounded(tmp_path: Path) -> None:
    woken: list[int] = []
    folder = tmp_path / "originals"
    store = OriginalStore(folder, wake=lambda: woken.append(1), max_pending=2)
    assert store.keep("rq", "t1", "x", b"a")
    assert store.keep("rq", "t2", "x", b"b")
    assert not folder.exists() and store.pending == 2
    assert woken == [1]  # once, when the queue stopped being empty
    assert not store.keep("rq", "t3", "x", b"c")  # full: dropped and counted
    assert store.dropped == 1 and store.pending == 2
    assert store.flush() == 2
    assert store.pending == 0 and len(list(folder.iterdir())) == 2
    assert store.get("rq", "t3") is None
    assert store.keep("rq", "t4", "x", b"d")
    assert store.get("rq", "t4") is not None  # a read writes what is pending first


def test_the_agent_writes_originals_on_its_own_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[str] = []
    write = OriginalStore._write

    def recording(store: OriginalStore, stored: Any) -> bool:
        writers.append(threading.current_thread().name)
        return write(store, stored)

    monkeypatch.setattr(OriginalStore, "_write", recording)
    brain = MiniBrain()
    with brain.running():
        agent, engine = _agent(brain.url, tmp_path)
        agent.start()
        assert agent.wait_connected(10)
        engine.fail("job-1", "toy.add", b"payload")
        folder = agent.originals.folder
        assert wait_until(lambda: folder.exists() and len(list(folder.iterdir())) == 1)
        assert writers == ["z4j-agent-link"]
        assert agent.originals.pending == 0
        agent.stop(5)


def test_a_forked_child_gets_a_fresh_store_state(tmp_path: Path) -> None:
    agent, _ = _agent("ws://127.0.0.1:9", tmp_path)
    store = agent.originals
    store.wake = lambda: None
    store.keep("toy", "t", "x", b"a")
    store._lock.acquire()  # as a parent's thread may hold it when the host forks
    agent._reset_process_state()  # what the agent's after-fork hook runs in the child
    assert not store._lock.locked() and store.pending == 0


def test_keep_original_without_an_agent_is_a_no_op() -> None:
    engine = ToyEngine()
    engine.fail("t", "x", b"a")
    assert engine.original("t") is None
