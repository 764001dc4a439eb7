"""The agent: the object an adapter creates inside an application or worker process.

Owns the hot path (`emit`), the link thread and its event loop, command dispatch to adapters,
inventory, orphan-spool replay, and what happens across `fork()`. Promise: the host is never
hurt. `emit` does no I/O, takes no lock, wakes nothing and never raises; `start` returns at once
whatever the brain's state; `stop` returns within its timeout; a forked child never touches its
parent's socket, loop or thread.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import importlib
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from z4j_core import __version__
from z4j_core.adapter import (
    ActionOutcome,
    Adapter,
    CancelRequest,
    RetryRequest,
    advertised_capabilities,
)
from z4j_core.agent.commands import CommandRunner, FireMemory
from z4j_core.agent.config import AgentConfig
from z4j_core.agent.link import Link
from z4j_core.agent.originals import OriginalStore
from z4j_core.agent.outbox import Outbox, Record, RecordQueue, Spool, orphan_folders
from z4j_core.agent.redaction import MAX_TRACEBACK_CHARS, Redactor
from z4j_core.plugins import PluginRegistry, load_adapters, register_adapter_class
from z4j_core.wire import (
    ACTION_CAPABILITY,
    FEATURE_QUEUE_REPORTS,
    PROTOCOL_VERSION,
    Action,
    ActionKind,
    Capability,
    Command,
    CommandResult,
    CommandStatus,
    EngineInfo,
    Hello,
    Inventory,
    LifecycleKind,
    QueueReport,
)
from z4j_core.wire.limits import (
    MAX_REPORTED_QUEUES,
    MAX_RESULT_REASON_CHARS,
    QUEUE_REPORT_REFRESH_SECONDS,
    QUEUE_REPORT_SECONDS,
)

log = logging.getLogger("z4j.agent")

INVENTORY_REFRESH_SECONDS = 60.0
STOP_MARGIN = 0.5  # seconds of `stop(timeout)` kept for the goodbye, the spool and the join

EmitFn = Callable[..., None]

# Every agent alive in this process, so a fork can reset them all in the child.
_AGENTS: weakref.WeakSet[Agent] = weakref.WeakSet()


class Agent:
    """One agent per process (per app): `emit` from anywhere, one link thread to the brain.

    after_fork: what a forked child does with this agent: "disable" (the child's emits are
    dropped silently and cheaply) or "restart" (the child gets a fresh agent identity, started
    by its first `emit` or an explicit `start()`).

    metrics_registry: a `prometheus_client.CollectorRegistry` of the application's; the agent's
    own figures (connected, pending, in flight, dropped, acked...) are exported through it
    (needs `prometheus_client`, the `metrics` extra; never imported otherwise).
    """

    def __init__(
        self,
        config: AgentConfig | None = None,
        *,
        plugins: PluginRegistry | None = None,
        after_fork: str = "restart",
        metrics_registry: Any = None,
        **options: Any,
    ) -> None:
        self.config = config if config is not None else AgentConfig.load(**options)
        if after_fork not in ("disable", "restart"):
            raise ValueError(f"after_fork={after_fork!r} must be 'disable' or 'restart'")
        self.after_fork = after_fork
        self._plugins = plugins
        self.adapters: list[Adapter] = []
        self.redactor = Redactor(self.config.redact_keys)
        self.errors = 0  # exceptions caught on the hot path or in plugin calls
        self._originals: OriginalStore | None = None
        self._reset_process_state()
        _AGENTS.add(self)
        if metrics_registry is not None:
            # Imported only when asked: prometheus_client is an optional dependency.
            from z4j_core.agent.metrics import register

            register(self, metrics_registry)

    def _reset_process_state(self) -> None:
        self.instance_id = uuid.uuid4().hex
        self.pid = os.getpid()
        self._relay_dropped = 0  # events other processes dropped on their way here
        # Generous: the link thread drains this every few ms; the cap only guards a stuck thread.
        self._records = RecordQueue(cap=max(2 * self.config.max_memory_events, 50_000))
        self._closed = self.config.disabled
        self._started = False
        self._forked_child = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: Link | None = None
        self._spool: Spool | None = None
        self._runner: CommandRunner | None = None
        self._outbox: Outbox | None = None
        self._ready = threading.Event()
        self._replayed = False
        self._last_inventory: dict[tuple[str, str], Inventory] = {}
        self._last_queues: dict[tuple[str, str], tuple[float, QueueReport]] = {}
        self._main_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._originals_due: asyncio.Event | None = None  # set: the link thread writes them
        if self._originals is not None:
            self._originals.reset_after_fork()

    # -- adapters ------------------------------------------------------------------------------

    @property
    def plugins(self) -> PluginRegistry:
        """The adapter plugins installed (entry points), loaded on first use; for discovery
        only: the agent calls its adapters' methods directly."""
        if self._plugins is None:
            self._plugins = load_adapters()
        return self._plugins

    def add_adapter(self, adapter: Adapter) -> EmitFn:
        """Register an adapter; returns the `emit` its capture code should call."""
        adapter.agent = self
        self.adapters.append(adapter)
        return self.emitter(adapter.engine)

    def install_capture(self, adapter: Adapter) -> None:
        """Add `adapter` and connect its capture to this agent (`Adapter.install_capture`);
        an adapter whose capture fails still serves commands and inventory."""
        emit = self.add_adapter(adapter)
        try:
            adapter.install_capture(emit)
        except Exception:
            self.errors += 1
            log.exception("z4j could not install lifecycle capture for %s", adapter.engine)

    def _uninstall_captures(self) -> None:
        for adapter in self.adapters:
            try:
                adapter.uninstall_capture()
            except Exception:
                self.errors += 1
                log.exception("z4j could not uninstall the capture of %s", adapter.engine)

    def emitter(self, engine: str) -> EmitFn:
        """`emit` for one engine: what capture code calls once per event, so it does `emit`'s
        work in this one call (no second call, no second copy of the keyword arguments). An
        `emit` replaced on the instance or a subclass before this is called is called instead."""
        emit = self.emit
        if getattr(emit, "__func__", None) is not Agent.emit:

            def emit_through(kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
                emit(kind, task_id, task_name, engine=engine, **fields)

            return emit_through
        stamp = self._stamp

        def emit_for_engine(kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
            try:
                if not self._accepting():
                    return
                self._records.push(stamp(kind, task_id, task_name, engine, fields))
            except Exception:
                self.errors += 1

        return emit_for_engine

    @property
    def app_name(self) -> str:
        if self.config.app_name:
            return self.config.app_name
        for adapter in self.adapters:
            if adapter.app_name:
                return adapter.app_name
        return "default"

    @property
    def originals(self) -> OriginalStore:
        """The original messages this app keeps on this host for retries (docs/actions.md):
        one folder in the spool folder, shared by the app's processes on this host."""
        store = self._originals
        if store is None:
            folder = Path(self.config.spool_dir) / f"originals-{_safe_name(self.app_name)}"
            store = OriginalStore(
                folder,
                self.config.max_originals_bytes,
                self.config.originals_ttl,
                wake=self._wake_originals,
            )
            self._originals = store
        return store

    def _wake_originals(self) -> None:
        """On the host's thread, when an original is kept: have the link thread write it. A
        process with no link thread (never started, stopped, a disabled forked child) writes
        it at once, as nothing else would."""
        if not self._started or self._closed or self._forked_child:
            if self._originals is not None:
                self._originals.flush()
            return
        loop, due = self._loop, self._originals_due
        if loop is None or due is None:
            return  # the link thread is starting: it writes what is pending when it runs
        try:
            loop.call_soon_threadsafe(due.set)
        except RuntimeError:  # the loop closed: the agent stopped
            if self._originals is not None:
                self._originals.flush()

    # -- the hot path --------------------------------------------------------------------------

    def _accepting(self) -> bool:
        """Whether an event is taken now: never after `stop`; in a forked child, once the
        agent started again there (never with `after_fork="disable"`)."""
        if self._closed:
            return False
        if self._forked_child:
            if self.after_fork == "disable":
                return False
            self._forked_child = False
            self.start()
        return True

    def emit(
        self,
        kind: Any,
        task_id: str,
        task_name: str,
        *,
        engine: str = "",
        args: Any = None,
        kwargs: Any = None,
        **fields: Any,
    ) -> None:
        """Hand one lifecycle event to the outbox. No I/O, no lock, never raises."""
        try:
            if not self._accepting():
                return
            self._records.push(
                self.prepare(
                    kind, task_id, task_name, engine=engine, args=args, kwargs=kwargs, **fields
                )
            )
        except Exception:
            self.errors += 1

    # -- relays from other processes of this host -----------------------------------------------

    def prepare(
        self,
        kind: Any,
        task_id: str,
        task_name: str,
        *,
        engine: str = "",
        args: Any = None,
        kwargs: Any = None,
        **fields: Any,
    ) -> Record:
        """The record `emit` would push, redacted and stamped now, without pushing it.

        For an adapter's relay: a process that must not run its own link (a prefork pool child)
        prepares records with the agent it inherited and hands them to its parent, which pushes
        them with `emit_prepared`. No I/O, no lock; raises what redaction raises (the caller
        catches it, as capture code does).
        """
        if args is not None:
            fields["args"] = args
        if kwargs is not None:
            fields["kwargs"] = kwargs
        return self._stamp(kind, task_id, task_name, engine, fields)

    def _stamp(
        self, kind: Any, task_id: str, task_name: str, engine: str, fields: dict[str, Any]
    ) -> Record:
        """`prepare`'s record from `fields`, which it redacts in place (the caller's own dict,
        made for this event by its keyword arguments). A field given as None stays None (the
        outbox leaves it out)."""
        if fields:
            redactor = self.redactor
            value = fields.get("args")
            if value is not None:
                fields["args"] = redactor.args(value)
            value = fields.get("kwargs")
            if value is not None:
                fields["kwargs"] = redactor.kwargs(value)
            if "traceback" in fields:
                fields["traceback"] = redactor.text(fields["traceback"], MAX_TRACEBACK_CHARS)
            if "message" in fields:
                fields["message"] = redactor.text(fields["message"])
            if "result" in fields:
                fields["result"] = redactor.args(fields["result"])
        return (kind, time.time(), engine, task_id, task_name, fields or None)

    def emit_prepared(self, record: Record) -> None:
        """Push a record made by `prepare` (in this process or a child); like `emit`, never
        raises and does no I/O."""
        try:
            if not self._accepting():
                return
            self._records.push(record)
        except Exception:
            self.errors += 1

    def count_relay_dropped(self, count: int) -> None:
        """Count events another process of this host dropped before they reached this agent
        (reported to the brain with the agent's own drops)."""
        self._relay_dropped += count

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the link thread and return at once. Safe to call twice; never raises."""
        if self._started or self._closed:
            return
        self._started = True
        try:
            import_before_threads()
            self._thread = threading.Thread(
                target=self._thread_main, name="z4j-agent-link", daemon=True
            )
            self._thread.start()
        except Exception:
            self.errors += 1
            log.exception("z4j agent could not start its link thread")

    def reannounce(self) -> None:
        """Tell the brain again what this agent can do: an adapter's capabilities changed after
        the link may have sent its hello (a worker learned its pool), so the session is renewed
        with a fresh hello. Does nothing before ``start`` (the first hello carries them).
        Thread-safe; never raises."""
        loop, link = self._loop, self._link
        if loop is None or link is None or self._forked_child:
            return  # not started, or a child whose loop and link are its parent's
        with contextlib.suppress(RuntimeError):  # the loop closed: the agent stopped
            loop.call_soon_threadsafe(link.reannounce)

    def wait_connected(self, timeout: float) -> bool:
        """Block until the link's session is open (for tools and tests; never from a host)."""
        if self._closed and self._forked_child:
            return False  # a disabled child: the link it sees is its parent's
        if not self._ready.wait(timeout):
            return False
        link, loop = self._link, self._loop
        if link is None or loop is None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if link.connected.is_set():
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float | None = None) -> None:
        """Drain what can be sent within `timeout` (default: the drain timeout), spool the rest,
        and stop the link thread. Returns within about `timeout` seconds; never raises."""
        timeout = self.config.drain_timeout if timeout is None else timeout
        self._closed = True
        self._uninstall_captures()  # nothing more is reported: disconnect from the engines
        thread = self._thread
        if thread is None or self._forked_child or not thread.is_alive():
            return  # never started, a forked child's, or stopped already
        # The whole stop fits in `timeout` plus a small margin: draining ends early enough to
        # leave time for the goodbye, the spool write and the thread's exit.
        began = time.monotonic()
        margin = min(STOP_MARGIN, timeout / 2)
        drain_deadline = began + timeout - margin
        # Stopped right after it started (a short-lived producer: start, enqueue, stop): the
        # link thread may not have set up its loop and link yet. Wait for them, within the
        # timeout, so that what was emitted is sent or spooled, never dropped.
        self._ready.wait(max(0.0, drain_deadline - time.monotonic()))
        loop, link = self._loop, self._link
        if loop is None or link is None or loop.is_closed():
            return  # the link thread failed to set up, or stopped already
        try:
            future = asyncio.run_coroutine_threadsafe(link.stop(drain_deadline), loop)
            with contextlib.suppress(Exception):
                future.result(max(0.05, began + timeout - time.monotonic()))
            loop.call_soon_threadsafe(self._cancel_main)
        except RuntimeError:
            pass  # the loop is already gone
        thread.join(max(0.05, began + timeout + STOP_MARGIN - time.monotonic()))

    def _cancel_main(self) -> None:
        if self._main_task is not None:
            self._main_task.cancel()

    @property
    def stats(self) -> dict[str, Any]:
        link, outbox = self._link, self._outbox
        return {
            "instance": self.instance_id,
            "connected": bool(link and link.connected.is_set()),
            "pending": outbox.pending if outbox else len(self._records),
            "in_flight": len(outbox.unacked) if outbox else 0,  # sent, not yet acknowledged
            "spooled_bytes": self._spool.bytes if self._spool else 0,
            "dropped": self.dropped,
            "errors": self.errors,
            "acked": link.stats.events_acked if link else 0,
            "batches": link.stats.batches_sent if link else 0,
            "last_error": link.stats.last_error if link else "",
            "refusals": list(link.stats.refusals) if link else [],
        }

    @property
    def dropped(self) -> int:
        outbox, spool = self._outbox, self._spool
        total = self._records.dropped + self._relay_dropped
        if outbox is not None:
            total += outbox.invalid + outbox.overflow_dropped
        if spool is not None:
            total += spool.dropped
        return total

    # -- the link thread -----------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._main_task = loop.create_task(self._main())
        try:
            loop.run_until_complete(self._main_task)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("z4j agent link thread failed")
        finally:
            self._finish_on_thread()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _open_spool(self) -> Spool | None:
        root = Path(self.config.spool_dir)
        try:
            return Spool(root / self.instance_id, self.config.max_spool_bytes, self._spool_meta())
        except OSError as exc:
            log.warning("z4j spool disabled (%s): events beyond memory will be dropped", exc)
            return None

    def _spool_meta(self) -> dict[str, Any]:
        return {
            "agent_instance": self.instance_id,
            "app": self.app_name,
            "pid": self.pid,
            "labels": dict(self.config.labels),
            "engines": [[a.engine, a.engine_version] for a in self.adapters],
        }

    async def _main(self) -> None:
        self._spool = self._open_spool()
        self._outbox = Outbox(self.config.max_memory_events, self._spool)
        fires_path = Path(self.config.spool_dir) / f"fires-{_safe_name(self.app_name)}.log"
        self._runner = CommandRunner(
            enqueue=self._enqueue,
            report=self._report_threadsafe,
            fires=FireMemory(fires_path if self._spool is not None else None),
            concurrency=self.config.command_concurrency,
            act=self._act,
        )
        self._link = Link(
            self.config,
            self._hello,
            self._outbox,
            records=self._records,
            on_command=self._runner.submit,
            on_open=self._on_open,
            dropped=lambda: self.dropped,
        )
        self._originals_due = asyncio.Event()
        self._ready.set()
        tasks = [
            asyncio.ensure_future(self._write_originals(self._originals_due)),
            asyncio.ensure_future(self._link.sweep_forever()),
            asyncio.ensure_future(self._link.run()),
            asyncio.ensure_future(self._refresh_inventory()),
            asyncio.ensure_future(self._report_queues()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._background]:
                task.cancel()
            await asyncio.gather(*tasks, *self._background, return_exceptions=True)

    async def _write_originals(self, due: asyncio.Event) -> None:
        """Write the originals the host kept (`OriginalStore.keep` only queues them)."""
        while True:
            store = self._originals
            if store is not None and store.pending:
                try:
                    store.flush()
                except Exception:  # flush swallows disk errors; this keeps the link alive
                    self.errors += 1
                    log.exception("z4j could not write the kept original messages")
            # The timeout covers a wake lost to a race with a flush emptying the queue.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(due.wait(), 1.0)
            due.clear()

    def _finish_on_thread(self) -> None:
        """On the link thread as it ends: write the kept originals, spool what was not
        acknowledged."""
        if self._originals is not None:
            self._originals.flush()
        outbox, spool, link = self._outbox, self._spool, self._link
        if self._runner is not None:
            self._runner.stop()
        if outbox is None:
            return
        if link is not None:
            link.absorb()
        spooled = outbox.spool_everything()
        if spooled:
            log.info("z4j agent spooled %d unacknowledged events for a later agent", spooled)
        if spool is not None:
            spool.close(remove_if_empty=True)

    def _hello(self) -> Hello:
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            agent_instance=self.instance_id,
            app=self.app_name,
            host=self.config.host or socket.gethostname(),
            pid=self.pid,
            agent_version=__version__,
            engines=[
                EngineInfo.of(a.engine, a.engine_version, advertised_capabilities(a))
                for a in self.adapters
            ],
            labels=dict(self.config.labels),
        )

    def _on_open(self, link: Link) -> None:
        self._last_inventory.clear()
        self._last_queues.clear()
        self._spawn(self._send_inventory(link))
        if not self._replayed:
            self._replayed = True
            self._spawn(self._replay_orphans())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_inventory(self, link: Link) -> None:
        """Send each adapter's inventory when it changed since the last one this session."""
        loop = asyncio.get_running_loop()
        for adapter in list(self.adapters):
            inventory = await loop.run_in_executor(None, self._inventory_of, adapter)
            if inventory is None:
                continue
            key = (inventory.engine, inventory.app)
            if self._last_inventory.get(key) != inventory:
                self._last_inventory[key] = inventory
                link.send_control(inventory)

    async def _refresh_inventory(self) -> None:
        """Engines learn tasks and schedules as they run (RQ sees functions in jobs)."""
        while True:
            await asyncio.sleep(INVENTORY_REFRESH_SECONDS)
            link = self._link
            if link is not None and link.connected.is_set():
                await self._send_inventory(link)

    async def _report_queues(self) -> None:
        """Each adapter advertising `queue_depth` reports its queues' depth, at the heartbeat's
        cadence and never faster than `QUEUE_REPORT_SECONDS`, to a brain that accepts it; an
        unchanged report is sent again only after `QUEUE_REPORT_REFRESH_SECONDS`."""
        loop = asyncio.get_running_loop()
        while True:
            link = self._link
            interval = QUEUE_REPORT_SECONDS
            if link is not None and link.session is not None:
                interval = max(interval, link.session.limits.heartbeat_seconds)
            await asyncio.sleep(interval)
            if link is None or not link.accepts(FEATURE_QUEUE_REPORTS):
                continue
            for adapter in list(self.adapters):
                if Capability.QUEUE_DEPTH.value not in advertised_capabilities(adapter):
                    continue
                report = await loop.run_in_executor(None, self._queues_of, adapter)
                if report is None:
                    continue
                key = (report.engine, report.app)
                now = time.monotonic()
                last = self._last_queues.get(key)
                stale = last is None or now - last[0] >= QUEUE_REPORT_REFRESH_SECONDS
                if stale or (last is not None and last[1] != report):
                    self._last_queues[key] = (now, report)
                    link.send_control(report)

    def _queues_of(self, adapter: Adapter) -> QueueReport | None:
        try:
            depths = sorted(adapter.queue_depths(), key=lambda d: d.name)
        except Exception:
            self.errors += 1
            log.exception("z4j adapter %s failed to read its queues' depth", adapter.engine)
            return None
        return QueueReport(
            engine=adapter.engine,
            app=self.config.app_name or adapter.app_name or self.app_name,
            queues=depths[:MAX_REPORTED_QUEUES],
        )

    def _inventory_of(self, adapter: Adapter) -> Inventory | None:
        try:
            tasks = adapter.registered_tasks()
            schedules = adapter.observed_schedules()
        except Exception:
            self.errors += 1
            log.exception("z4j adapter %s failed to describe its inventory", adapter.engine)
            return None
        return Inventory(
            engine=adapter.engine,
            # The app this agent routes commands and reports events by (Z4J_APP / app_name
            # first, as in its hello), so observed schedules show under the same app.
            app=self.config.app_name or adapter.app_name or self.app_name,
            tasks=list(tasks),
            schedules=list(schedules),
            workers=[f"{self.config.host}:{self.pid}"],
        )

    async def _replay_orphans(self) -> None:
        """Send spools left by agent processes that are gone, under their own identity."""
        own = self._spool.folder if self._spool is not None else None
        for folder in list(orphan_folders(Path(self.config.spool_dir), own)):
            spool = Spool.open_orphan(folder)
            if spool is None:
                continue
            meta = spool.meta
            if not meta.get("agent_instance"):
                spool.close(remove_if_empty=False)
                continue
            outbox = Outbox(self.config.max_memory_events, spool)
            replay = Link(
                self.config,
                lambda meta=meta: _replay_hello(meta),  # type: ignore[misc]
                outbox,
                records=None,
                on_command=lambda command: None,
                finish_when_empty=True,
            )
            try:
                await asyncio.wait_for(replay.run(), 60)
            except (asyncio.TimeoutError, Exception) as exc:
                log.warning("z4j replay of %s stopped: %s", folder.name, exc)
                outbox.spool_everything()
            spool.close(remove_if_empty=True)
            log.info("z4j agent replayed the spool of gone agent %s", meta["agent_instance"])

    # -- commands ------------------------------------------------------------------------------

    def _adapter_for(self, engine: str, app: str) -> Adapter | None:
        for adapter in self.adapters:
            if adapter.engine == engine and (not app or app in (adapter.app_name, self.app_name)):
                return adapter
        return None

    def _enqueue(self, command: Command) -> CommandResult:
        adapter = self._adapter_for(command.engine, command.app)
        if adapter is None:
            served = ", ".join(f"{a.engine}/{a.app_name}" for a in self.adapters) or "nothing"
            return CommandResult(
                command_id=command.command_id,
                status=CommandStatus.REJECTED,
                reason=f"this agent serves {served}, not {command.engine}/{command.app}",
            )
        result = adapter.enqueue(command)
        if not isinstance(result, CommandResult):
            raise TypeError(
                f"{type(adapter).__name__}.enqueue returned {type(result).__name__}, "
                "not CommandResult"
            )
        return result

    def _act(self, action: Action) -> CommandResult:
        """Run one action on the adapter of its engine and app (docs/actions.md)."""

        def answer(status: CommandStatus, reason: str = "", **fields: Any) -> CommandResult:
            return CommandResult(
                command_id=action.command_id,
                status=status,
                reason=reason[:MAX_RESULT_REASON_CHARS],
                **fields,
            )

        adapter = self._adapter_for(action.engine, action.app)
        if adapter is None:
            served = ", ".join(f"{a.engine}/{a.app_name}" for a in self.adapters) or "nothing"
            return answer(
                CommandStatus.UNAVAILABLE,
                f"this agent serves {served}, not {action.engine}/{action.app}",
            )
        advertised = advertised_capabilities(adapter)
        needed = [ACTION_CAPABILITY[action.action]]
        if action.terminate:
            needed.append(Capability.TERMINATE)
        missing = [c.value for c in needed if c.value not in advertised]
        if missing:
            return answer(
                CommandStatus.UNAVAILABLE,
                f"the {adapter.engine} adapter does not support {', '.join(missing)}",
            )
        outcome: ActionOutcome
        if action.action is ActionKind.RETRY:
            assert action.task_id is not None
            outcome = adapter.retry(
                RetryRequest(
                    task_id=action.task_id,
                    task=action.task,
                    queue=action.queue,
                    new_task_id=action.new_task_id,
                    force=action.force,
                    original=self.originals.get(adapter.engine, action.task_id),
                )
            )
        elif action.action is ActionKind.CANCEL:
            assert action.task_id is not None
            outcome = adapter.cancel(
                CancelRequest(
                    task_id=action.task_id,
                    task=action.task,
                    queue=action.queue,
                    terminate=action.terminate,
                )
            )
            if outcome.status is CommandStatus.DONE and not outcome.recorded:
                self.emit(
                    LifecycleKind.REVOKED,
                    action.task_id,
                    action.task or "",
                    engine=adapter.engine,
                    queue=action.queue,
                    message="cancelled by an operator through z4j",
                )
        else:
            assert action.queue is not None
            outcome = adapter.purge(action.queue)
        if not isinstance(outcome, ActionOutcome):
            raise TypeError(
                f"{type(adapter).__name__}.{action.action.value} returned "
                f"{type(outcome).__name__}, not ActionOutcome"
            )
        return answer(
            outcome.status, outcome.reason, native_id=outcome.native_id, count=outcome.count
        )

    def _report_threadsafe(self, result: CommandResult) -> None:
        loop, link = self._loop, self._link
        if loop is None or link is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(link.send_control, result)

    # -- fork ----------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Let go of what the parent holds without touching it: close this process's copies of
        the link's socket and the spool's lock, so that neither outlives the parent's because
        a child still holds them. Then, with ``after_fork="restart"``, reset for a fresh
        identity; with ``"disable"``, only stop taking events and build nothing new. A worker
        that forks a process per job (RQ) pays in every child for each page written here: the
        fork shares the parent's memory until it is written, so a reset (about 120 pages
        copied, measured) would cost each job more than the job's own start."""
        spool = self._spool
        if spool is not None:
            spool.abandon_after_fork()
        link = self._link
        if link is not None:
            link.abandon_after_fork()
        if self.after_fork == "disable":
            # The parent's thread, loop and link stay referenced, never finalized here (their
            # finalizers would close the parent's file descriptors); `stop` leaves them alone.
            self._closed = True
            self._forked_child = True
            if self._originals is not None:
                self._originals.reset_after_fork()
            return
        inherited = (self._thread, self._loop, link, spool, self._runner)
        _ABANDONED.append(inherited)  # never finalized in the child: no close on parent's fds
        was_running = self._started and not self._closed
        self._reset_process_state()
        self._forked_child = was_running or self.after_fork == "restart"


_ABANDONED: list[Any] = []

#: Modules the agent's threads would otherwise import at their start: the executor that
#: resolves the brain's host, the codec resolving uses, and `_strptime` (adapters parse the
#: engine's timestamps on the agent's threads: RQ's registries, for one).
IMPORTED_BEFORE_THREADS: Final = ("_strptime", "concurrent.futures.thread", "encodings.idna")


def import_before_threads() -> None:
    """Import, on the caller's thread, what the agent's threads would import lazily.

    A process that forks while another of its threads is importing a module hands its child
    that module's import lock, held by a thread the child does not have: the child's first
    import of the module then waits for ever. Workers fork as the agent starts (RQ forks its
    scheduler right after the worker starts the agent, and that scheduler's first
    `strptime` hung on `_strptime`), so nothing of the agent imports on its own threads.
    """
    for name in IMPORTED_BEFORE_THREADS:
        importlib.import_module(name)
    codecs.lookup("idna")  # the lookup is cached: a child resolving a host finds it there


def _after_fork_in_child() -> None:
    _ABANDONED.clear()
    for agent in list(_AGENTS):
        try:
            agent._after_fork_in_child()
        except Exception:
            agent.errors += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def _replay_hello(meta: Mapping[str, Any]) -> Hello:
    return Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=str(meta["agent_instance"]),
        app=str(meta.get("app") or "default"),
        host=socket.gethostname(),
        pid=int(meta.get("pid") or 0),
        agent_version=__version__,
        engines=[EngineInfo(name=str(n), version=str(v)) for n, v in meta.get("engines", [])],
        labels={str(k): str(v) for k, v in dict(meta.get("labels", {})).items()},
    )


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:64] or "default"


_default_agent: Agent | None = None
_default_lock = threading.Lock()


def default_agent(**options: Any) -> Agent:
    """The process's agent: created on the first call (options, then `Z4J_*`, then defaults).

    Every adapter's `instrument(...)` goes through here, so two engines instrumented in one
    process share one agent and one WebSocket. Options given to a later call are ignored with a
    warning when they differ from the first call's.
    """
    global _default_agent
    with _default_lock:
        if _default_agent is None:
            _default_agent = Agent(**options)
        elif options:
            first = _default_agent.config
            differing = [k for k, v in options.items() if getattr(first, k, v) != v]
            if differing:
                log.warning(
                    "z4j agent already configured; ignoring later options: %s",
                    ", ".join(sorted(differing)),
                )
        return _default_agent


def attach(adapter: Adapter, *, start: bool = True, **options: Any) -> Agent:
    """Add `adapter` to the process's agent and install its lifecycle capture.

    Its class is registered as a plugin when no installed entry point provides its engine (a
    source tree run without installing). start: start the link now. An adapter whose engine
    forks workers passes False here and calls `agent.start()` itself at the right moment (after
    the pool forked, in the process that will see the events). Engines' `instrument` functions
    go through `z4j_core.adapter.instrument`, which wraps this.
    """
    agent = default_agent(**options)
    try:
        register_adapter_class(agent.plugins, type(adapter))
    except Exception:
        agent.errors += 1
        log.exception("z4j could not register the %s adapter as a plugin", adapter.engine)
    agent.install_capture(adapter)
    if start:
        agent.start()
    return agent
