"""The one base every engine adapter subclasses, and what the six adapters share.

Owns what an engine adapter is to the agent: `Adapter`, with one documented method per thing the
agent asks of an engine, each a no-op or a clear `unsupported` answer by default (the way
Dramatiq's `Middleware` documents its hooks); the helpers adapters build answers, error fields,
names, worker ids and observed schedules with; what captures share on the host's hot path
(`guarded` entry points, `count_error`, `InFlight` state, `Stopwatch`); and `instrument`, which
every engine's `instrument(...)` wraps. Writing a new adapter: docs/adapters.md.

Must never import an engine: an adapter package brings its engine, this module only names what
the agent calls. Nothing here runs on a host's hot path except `worker_id`, `error_fields` and
the capture helpers, which do no I/O and take no lock (`count_error` logs, once per site).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import datetime
import functools
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, ParamSpec, Protocol, TypeVar, cast

from z4j_core.hookspecs import hookimpl
from z4j_core.wire import (
    ACTION_CAPABILITIES,
    Capability,
    Command,
    CommandResult,
    CommandStatus,
    ObservedSchedule,
    QueueDepth,
    TaskInfo,
)
from z4j_core.wire.limits import MAX_CAPTURE_IN_FLIGHT, MAX_RESULT_REASON_CHARS

if TYPE_CHECKING:
    from z4j_core.agent.originals import Original
    from z4j_core.agent.runtime import Agent

__all__ = [
    "ACTION_METHODS",
    "MAX_CAPTURE_IN_FLIGHT",
    "NEXT_RUNS",
    "STANDARD_CAPABILITIES",
    "ActionOutcome",
    "Adapter",
    "CancelRequest",
    "Counting",
    "Emit",
    "InFlight",
    "PrivateLoop",
    "QueueDepth",
    "RetryRequest",
    "Stopwatch",
    "adapter_of",
    "advertised_capabilities",
    "agent_of",
    "answer",
    "capabilities",
    "count_error",
    "current_fire_id",
    "done",
    "dotted",
    "dotted_name",
    "drain_at_exit",
    "engine_version",
    "enqueueing",
    "error_fields",
    "failed",
    "fixed_offset_zone",
    "guarded",
    "host_zone_name",
    "instance_of",
    "instrument",
    "native_definition",
    "rejected",
    "render_field",
    "stop_off_loop",
    "unavailable",
    "unknown_task",
    "unsupported",
    "worker_id",
]

log = logging.getLogger("z4j.adapter")

T = TypeVar("T")
V = TypeVar("V")
R = TypeVar("R")
C = TypeVar("C", bound="Counting")
P = ParamSpec("P")

Emit = Callable[..., None]
"""The agent's `emit(kind, task_id, task_name, **fields)` for one engine: cheap, never raises."""

#: How many next run times an observed schedule carries (`z4j schedules adopt --dry-run` sets
#: them beside the brain's).
NEXT_RUNS = 10
#: Largest JSON of a native schedule's arguments an observed schedule's `definition` carries.
MAX_DEFINITION_ARGUMENT_BYTES = 8192

#: Where `instrument` marks an engine object as instrumented (an attribute, or a dict's key).
MARK = "_z4j_adapter"

#: What every adapter in this repository supports: lifecycle events, the task list, observed
#: schedules, and enqueueing by name, as a fire and as a trigger-now.
STANDARD_CAPABILITIES: frozenset[str] = frozenset(
    c.value
    for c in (
        Capability.LIFECYCLE,
        Capability.LIST_TASKS,
        Capability.OBSERVE_SCHEDULES,
        Capability.ENQUEUE,
        Capability.FIRE,
        Capability.TRIGGER_NOW,
    )
)


def capabilities(*extra: Capability) -> frozenset[str]:
    """`STANDARD_CAPABILITIES` plus `extra` (what this engine honours beyond them)."""
    return STANDARD_CAPABILITIES | {c.value for c in extra}


# -- actions: what the brain asks of a task or a queue -------------------------------------------


@dataclass(frozen=True)
class RetryRequest:
    """Run a finished task again with its original arguments (`Adapter.retry`).

    task_id: the run to retry. task: its name as the brain saw it (None when the brain never
        saw it). queue: where it ran, when known (a hint). new_task_id: the id the new run
        takes where the engine accepts a job id (so the brain can link it before any event).
    force: the operator asked to retry a task that did not fail (the brain checked its state;
        an adapter whose engine's record says the task is still queued or running answers
        `unavailable` unless `force`).
    original: the message this host kept when the task failed (`Adapter.keep_original`), or
        None. The arguments the brain holds are redacted and never a source.
    """

    task_id: str
    task: str | None = None
    queue: str | None = None
    new_task_id: str | None = None
    force: bool = False
    original: Original | None = None


@dataclass(frozen=True)
class CancelRequest:
    """Cancel a task (`Adapter.cancel`): queued or scheduled, it must never run; running, it is
    stopped only with `terminate` (advertised as `terminate`)."""

    task_id: str
    task: str | None = None
    queue: str | None = None
    terminate: bool = False


@dataclass(frozen=True)
class ActionOutcome:
    """How an action ended; build one with `done`, `unavailable` or `failed`.

    status: `done`, `unavailable` or `failed`. reason: short, safe, says why (required for the
    last two). native_id: a retry's new run id. count: a purge's removed messages.
    recorded: a cancel's lifecycle event (`revoked` or `cancelled`) is reported by the engine's
        own capture; when false, the agent reports `revoked` for the task itself.
    """

    status: CommandStatus
    reason: str = ""
    native_id: str | None = None
    count: int | None = None
    recorded: bool = False


def done(
    native_id: str | None = None, *, count: int | None = None, recorded: bool = False
) -> ActionOutcome:
    """The action was carried out."""
    return ActionOutcome(CommandStatus.DONE, native_id=native_id, count=count, recorded=recorded)


def unavailable(reason: str) -> ActionOutcome:
    """The action cannot be done here, and trying again will not help: `reason` says why
    (no source for a retry, a task already finished, an engine without the mechanism)."""
    return ActionOutcome(CommandStatus.UNAVAILABLE, reason=reason[:MAX_RESULT_REASON_CHARS])


def failed(reason: str) -> ActionOutcome:
    """The action was tried and failed (the broker refused, a timeout): `reason` is the error."""
    return ActionOutcome(CommandStatus.FAILED, reason=reason[:MAX_RESULT_REASON_CHARS])


#: The method an adapter overrides for each action capability: a capability is advertised only
#: when the adapter both declares it in `capabilities` and overrides its method.
ACTION_METHODS: dict[Capability, str] = {
    Capability.RETRY: "retry",
    Capability.CANCEL: "cancel",
    Capability.TERMINATE: "cancel",
    Capability.PURGE: "purge",
    Capability.QUEUE_DEPTH: "queue_depths",
}
assert set(ACTION_METHODS) == ACTION_CAPABILITIES


def advertised_capabilities(adapter: Adapter) -> frozenset[str]:
    """What the agent advertises for `adapter`: its declared `capabilities`, less each action
    capability whose method (`ACTION_METHODS`) the adapter's class does not override."""
    cls = type(adapter)
    kept = set(adapter.capabilities)
    for capability, method in ACTION_METHODS.items():
        if getattr(cls, method, None) is getattr(Adapter, method):
            kept.discard(capability.value)
    return frozenset(kept)


class Adapter:
    """One instrumented engine object (a Huey instance, a Celery app, a Dramatiq broker, ...).

    A subclass sets `engine` (the name the protocol uses) and, when the engine's distribution
    has another name, `distribution` (whose installed version is reported). Instances carry:
    app_name: the application's name as sent in the hello (e.g. a Celery app's `main`).
    capabilities: names from `z4j_core.wire.Capability` this adapter really supports; the
        conformance suite fails an adapter that advertises one it cannot prove.
    capture: whatever `install_capture` connected (signal receivers, a middleware), or None.
    agent: the agent this adapter is attached to, set before `install_capture` runs (capture
        code that stamps or relays events itself uses `agent.prepare` / `agent.emit_prepared`).

    The agent calls the methods below and guards every call: an exception is logged and
    counted, never raised into the host. Override what the engine supports.
    """

    engine: ClassVar[str] = ""
    distribution: ClassVar[str] = ""
    app_name: str = ""
    capabilities: frozenset[str] = frozenset()
    capture: Any = None
    agent: Agent | None = None

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> Adapter | None:
        """The adapter for `app`, or None when `app` is not this engine's object.

        options: `app_name` and the engine's own `instrument` keywords. Must do no I/O.
        """
        return None

    @property
    def engine_version(self) -> str:
        """The installed engine's version, from its distribution's metadata."""
        return engine_version(self.distribution or self.engine)

    def enqueue(self, command: Command) -> CommandResult:
        """Enqueue `command` (an `enqueue`, `fire` or `trigger_now`) natively into the engine.

        Answers `enqueued` with the engine's job id (for a fire, the fire id where the engine
        takes one), `duplicate`, `rejected` with a reason (never enqueue what the engine would
        drop), or `failed`. The one method that may block on the broker: the agent calls it on
        its bounded command pool under the command's deadline, never on a host thread.
        """
        return unsupported(command, f"the {self.engine} adapter cannot enqueue")

    def registered_tasks(self) -> list[TaskInfo]:
        """The tasks the engine knows in this process, answered from memory."""
        return []

    def observed_schedules(self) -> list[ObservedSchedule]:
        """The engine's own periodic schedules, observed and never rewritten, with their next
        `NEXT_RUNS` run times. May read the broker: the agent calls it off the host's threads."""
        return []

    def install_capture(self, emit: Emit) -> None:
        """Connect the engine's signals, middleware or hooks to `emit` (idempotent).

        The capture code calls `emit` with a `z4j_core.wire.LifecycleKind` and the task's fields,
        and must itself catch every exception, so that none reaches a task.
        """

    def uninstall_capture(self) -> None:
        """Disconnect what `install_capture` connected; safe to call twice. The agent calls it
        when it stops. By default: `capture.disconnect()`, then `capture` is forgotten."""
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.disconnect()

    # -- actions (docs/actions.md) ----------------------------------------------------------
    # Each answers `unavailable` by default. An adapter advertises an action's capability by
    # declaring it in `capabilities` AND overriding its method (`advertised_capabilities`); the
    # conformance suite then proves it on real workers. The agent calls these on its command
    # pool, under the action's deadline, never on a host thread; they may block on the broker.

    def retry(self, request: RetryRequest) -> ActionOutcome:
        """Enqueue `request.task_id` again with its original arguments, natively, as a new run
        (id `request.new_task_id` where the engine takes one): from the engine's own record where
        it keeps one, else from `request.original`. Answers `done(new run id)`, `unavailable`
        (no source: say which sources were tried) or `failed`."""
        return unavailable(f"the {self.engine} adapter cannot retry tasks")

    def cancel(self, request: CancelRequest) -> ActionOutcome:
        """Make sure a queued or scheduled `request.task_id` never runs; with `terminate`, stop
        it if it is running. `done(recorded=...)` when cancelled, `unavailable` when the engine
        cannot (already finished, running without `terminate`), `failed` on an error."""
        return unavailable(f"the {self.engine} adapter cannot cancel tasks")

    def purge(self, queue: str) -> ActionOutcome:
        """Remove the ready messages of `queue` (never scheduled, running or failed ones) with
        the engine's own call; `done(count=removed)`."""
        return unavailable(f"the {self.engine} adapter cannot purge queues")

    def queue_depths(self) -> list[QueueDepth]:
        """The depth of each queue this app uses (ready, and scheduled, running and failed
        where the engine counts them). Reads the broker; called at most once per
        `QUEUE_REPORT_SECONDS` per agent, off the host's threads. Keep it to a few cheap
        counts per queue (no scans)."""
        return []

    # -- the local store of original messages, for retries -----------------------------------

    def keep_original(
        self, task_id: str, task: str, payload: bytes, queue: str | None = None
    ) -> None:
        """Keep the original message of a task that failed, on this host, for a later retry.

        Capture code calls it when the engine reports a failure (not on success: nothing to
        retry) and when its engine keeps no record of its own to retry from. `payload` is the
        engine's own serialization (only this adapter reads it back, in `retry`). Bounded,
        expiring, never sent to the brain; does a small file write; never raises."""
        agent = self.agent
        if agent is None:
            return
        try:
            agent.originals.keep(self.engine, task_id, task, payload, queue)
        except Exception:
            agent.errors += 1
            log.exception("z4j could not keep the original of %s", task_id)

    def original(self, task_id: str) -> Original | None:
        """The original message kept for `task_id` on this host, or None."""
        agent = self.agent
        if agent is None:
            return None
        return agent.originals.get(self.engine, task_id)

    @classmethod
    @hookimpl
    def z4j_adapter_class(cls) -> type[Adapter]:
        """The hook an adapter class answers when it is registered as a plugin (its entry
        point names the class itself, so no adapter writes a plugin module)."""
        return cls

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.engine}/{self.app_name}>"


# -- answers -------------------------------------------------------------------------------------


def answer(command: Command, status: CommandStatus, **fields: Any) -> CommandResult:
    """The result of `command`; a reason is cut to `MAX_RESULT_REASON_CHARS`."""
    reason = fields.get("reason")
    if reason:
        fields["reason"] = reason[:MAX_RESULT_REASON_CHARS]
    return CommandResult(command_id=command.command_id, status=status, **fields)


def rejected(command: Command, reason: str) -> CommandResult:
    """Not enqueued, and never will be as asked: the reason says what to change."""
    return answer(command, CommandStatus.REJECTED, reason=reason)


def unsupported(command: Command, what: str) -> CommandResult:
    """The answer of an action an adapter does not implement."""
    return rejected(command, f"unsupported: {what}")


def unknown_task(name: str, where: str, known: Iterable[str]) -> str:
    """`unknown task 'x' for <where> (registered: a, b, ...)`, naming at most ten."""
    listed = ", ".join(sorted(known)[:10]) or "none"
    return f"unknown task {name!r} for {where} (registered: {listed})"


_enqueueing = threading.local()


def current_fire_id() -> str | None:
    """The fire id of the enqueue z4j is running in this thread, if any: capture code adds it
    to the engine's own `enqueued` event (engines signal it in the enqueuing thread)."""
    return getattr(_enqueueing, "fire_id", None)


@contextlib.contextmanager
def enqueueing(fire_id: str | None) -> Iterator[None]:
    """Mark this thread's enqueue as the fire `fire_id` while the block runs."""
    _enqueueing.fire_id = fire_id or None
    try:
        yield
    finally:
        _enqueueing.fire_id = None


# -- capture: what runs on the host's hot path ---------------------------------------------------


class InFlight(dict[str, V]):
    """Per-task state a capture keeps between two engine hooks (a start time, an error held for
    the engine's retry decision, an event prepared before a publish), bounded: `put` past
    `MAX_CAPTURE_IN_FLIGHT` entries drops them all first, so tasks that never reach their second
    hook cannot grow memory without end. Otherwise a plain dict (`pop`, `get` at C speed)."""

    __slots__ = ()

    def put(self, task_id: str, value: V) -> None:
        if len(self) >= MAX_CAPTURE_IN_FLIGHT:
            self.clear()
        self[task_id] = value


class Stopwatch:
    """When each task running in this process started, for its runtime (bounded: past
    `MAX_CAPTURE_IN_FLIGHT` tasks that never ended are forgotten whole)."""

    __slots__ = ("_began",)

    def __init__(self) -> None:
        self._began: InFlight[float] = InFlight()

    def start(self, task_id: str) -> None:
        self._began.put(task_id, time.perf_counter())

    def stop(self, task_id: str) -> float | None:
        """Seconds since `start(task_id)`, or None when it was never started here."""
        began = self._began.pop(task_id, None)
        return None if began is None else time.perf_counter() - began


class Counting(Protocol):
    """What `count_error` counts on: a capture, a middleware, an agent."""

    errors: int


#: The `what` of every error `count_error` has logged in this process (a forked child, whose log
#: is often its own, starts afresh).
_logged: set[str] = set()
os.register_at_fork(after_in_child=_logged.clear)


def count_error(owner: Counting, what: str, logger: logging.Logger = log) -> None:
    """Call it in an `except` block where the host must never see the exception: counts it on
    `owner.errors`, and logs it to `logger` with its traceback the first time `what` happens in
    this process only, so a hook that fails on every task cannot flood the host's log (the count
    goes on). `what` completes "z4j ...": `could not start with the broker`."""
    owner.errors += 1
    if what not in _logged:
        _logged.add(what)
        logger.exception("z4j %s (counted; logged only this once)", what)


def guarded(method: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R | None]:
    """A capture entry point the host calls (a signal receiver, a middleware hook): an exception
    is counted on its instance with `count_error`, never raised into the host, and the call then
    answers None. Wraps the method once, where the class is defined; a call costs one frame."""
    what = f"caught an error in {method.__module__}.{method.__qualname__}"

    @functools.wraps(method)
    def entry(owner: C, /, *args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return method(owner, *args, **kwargs)
        except Exception:
            count_error(owner, what)
            return None

    return entry


# -- names and error fields ----------------------------------------------------------------------


def instance_of(app: object, module: str, name: str) -> bool:
    """Whether `app` is an instance of `module.name`, never importing anything: an object of a
    class exists only once the class's module has been imported."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(app, cls)


def dotted(cls: type) -> str:
    """`module.Qualname` of a class (`ValueError` for builtins)."""
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def dotted_name(function: Any) -> str:
    """`module.qualname` of a function (or of what it wraps: arq's `coroutine`); a string is
    taken as a name already."""
    if isinstance(function, str):
        return function
    inner = getattr(function, "coroutine", function)
    module = getattr(inner, "__module__", None) or "?"
    return f"{module}.{getattr(inner, '__qualname__', repr(inner))}"


def error_fields(exc: BaseException) -> dict[str, Any]:
    """`exception`, `message` and (when it was raised) `traceback` fields of a failure."""
    fields: dict[str, Any] = {
        "exception": dotted(type(exc)),
        "message": str(exc) or type(exc).__name__,
    }
    if exc.__traceback__ is not None:
        fields["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return fields


@functools.cache
def engine_version(distribution: str) -> str:
    """The installed version of `distribution`, or `unknown`."""
    try:
        return metadata.version(distribution)
    except Exception:
        return "unknown"


# -- the worker id: host and pid, right after a fork too -----------------------------------------

_HOST = socket.gethostname()
_worker = f"{_HOST}:{os.getpid()}"


def worker_id() -> str:
    """`host:pid` of this process, as events report their worker (correct in a forked child)."""
    return _worker


def _refresh_worker_id() -> None:
    global _worker
    _worker = f"{_HOST}:{os.getpid()}"


os.register_at_fork(after_in_child=_refresh_worker_id)


# -- observed schedules --------------------------------------------------------------------------


def render_field(values: Iterable[int] | None, full: Sequence[int], steps: bool = True) -> str:
    """One cron field from the values it matches: `[0, 15, 30, 45]` over 0-59 -> `*/15`,
    `[1, 2, 3, 7]` -> `1-3,7`, every value (or None) -> `*`. `steps=False` never writes `*/n`
    (an engine whose field has no step form)."""
    if values is None:
        return "*"
    chosen = sorted(set(values))
    everything = list(full)
    if chosen == everything or not chosen:
        return "*"
    for step in range(2, len(everything) // 2 + 1 if steps else 2):
        if chosen == everything[::step]:
            return f"*/{step}"
    parts: list[str] = []
    start = prev = chosen[0]
    for value in [*chosen[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


# -- native schedules as `z4j schedules adopt` reads them ----------------------------------------


def _secret_key_in(value: Any, depth: int = 0) -> str | None:
    from z4j_core.agent.redaction import Redactor

    if depth > 20:
        return "(nested too deep)"
    if isinstance(value, dict):
        redactor = Redactor()
        for key, item in value.items():
            if redactor.is_secret_key(key):
                return str(key)
            found = _secret_key_in(item, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = _secret_key_in(item, depth + 1)
            if found is not None:
                return found
    return None


def native_definition(
    timing: dict[str, Any],
    *,
    timezone: str | None,
    args: Any = (),
    kwargs: Any = None,
    options: dict[str, Any] | None = None,
    unsupported: Iterable[str] = (),
) -> dict[str, Any]:
    """An observed schedule's `definition`: what `z4j schedules adopt` turns into a brain
    schedule. `timing` is one of `{"cron": EXPR, "day_and": BOOL}` (z4j's cron syntax, read
    with the engine's day rule), `{"every": SECONDS, "anchor": EPOCH | None}`, `{"at": EPOCH}`
    or `{"solar": {...}}` (z4j's solar fields); `timezone` the IANA zone the engine reads it in
    (None when the host's zone has no name); `unsupported` the native features z4j has no
    equivalent for. Arguments are sent only when they are JSON, at most
    `MAX_DEFINITION_ARGUMENT_BYTES`, and hold no key that names a secret; otherwise
    `withheld` says why (adopt then asks for them)."""
    definition: dict[str, Any] = {**timing, "timezone": timezone}
    arguments = {"args": list(args or ()), "kwargs": dict(kwargs or {})}
    try:
        size = len(json.dumps(arguments, allow_nan=False))
    except (TypeError, ValueError):
        definition["withheld"] = "the arguments are not JSON"
    else:
        secret = _secret_key_in(arguments)
        if size > MAX_DEFINITION_ARGUMENT_BYTES:
            definition["withheld"] = (
                f"the arguments are larger than {MAX_DEFINITION_ARGUMENT_BYTES} bytes"
            )
        elif secret is not None:
            definition["withheld"] = f"the arguments hold a secret-looking key {secret[:40]!r}"
        else:
            definition.update(arguments)
    if options:
        definition["options"] = {k: v for k, v in options.items() if v is not None}
    if unsupported:
        definition["unsupported"] = list(unsupported)
    return definition


def fixed_offset_zone(offset: datetime.timedelta) -> str | None:
    """The IANA name of a fixed UTC offset: `UTC`, or `Etc/GMT±N` for a whole number of hours
    within ±14 (the tz database's signs are inverted: UTC+2 is `Etc/GMT-2`); None for any
    other offset (no IANA zone has it)."""
    seconds = int(offset.total_seconds())
    if seconds == 0:
        return "UTC"
    if seconds % 3600 or abs(seconds) > 14 * 3600:
        return None
    return f"Etc/GMT{-seconds // 3600:+d}"


def host_zone_name() -> str | None:
    """The IANA name of this host's local zone (from `TZ`, else `/etc/localtime`), or None."""
    from zoneinfo import ZoneInfo

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    if not os.environ.get("TZ") and not os.path.exists("/etc/localtime"):
        candidates.append("UTC")  # glibc's default without either
    for name in candidates:
        if not name or name.startswith("/"):
            continue
        try:
            ZoneInfo(name)
        except Exception:
            continue
        return "UTC" if name in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu") else name
    return None


# -- instrumenting: what every engine's `instrument(...)` wraps ---------------------------------


def adapter_of(app: object) -> Adapter | None:
    """The adapter `instrument` attached to an engine object (or a settings dict), if any."""
    found = app.get(MARK) if isinstance(app, dict) else getattr(app, MARK, None)
    return found if isinstance(found, Adapter) else None


def agent_of(app: object) -> Agent | None:
    """The agent `instrument` attached to `app`, if any."""
    adapter = adapter_of(app)
    return None if adapter is None else adapter.agent


def instrument(
    adapter: Adapter, app: object = None, *, start: bool = False, **options: Any
) -> Agent:
    """Attach `adapter` to the process's agent: install its capture, mark `app` as instrumented
    (when given), drain the agent at interpreter exit, and start the link when `start` is true.

    options: agent options (`brain_url`, `token`, ...), which win over `Z4J_*` variables.
    An engine whose workers fork passes `start=False` and starts the agent itself at the right
    moment (after the pool forked, in the process that will see the events).
    """
    from z4j_core.agent.runtime import attach

    if app is not None:  # marked first: capture code may call back into `instrument`
        if isinstance(app, dict):
            app[MARK] = adapter
        else:
            setattr(app, MARK, adapter)
    agent = attach(adapter, start=False, **options)
    drain_at_exit(agent)
    if start:
        agent.start()
    return agent


class _Served:
    """One private loop's thread, and the client opened on it (with how to close it)."""

    def __init__(self, name: str) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.client: asyncio.Future[Any] | None = None
        self.close_client: Callable[[Any], Awaitable[object]] | None = None
        self.shutting = False
        self.thread.start()

    def _serve(self) -> None:
        self.loop.run_forever()
        self.loop.close()

    async def _shut(self) -> None:
        client, close = self.client, self.close_client
        if client is not None and close is not None and client.done():
            with contextlib.suppress(Exception):  # a client that never opened, or fails to close
                await close(client.result())
        self.loop.stop()

    def shut(self, timeout: float = 0.0) -> None:
        """Close the client and end the thread; waits up to `timeout` when called off the loop.
        A forked child's copy (no thread here) is left alone."""
        if self.pid != os.getpid() or self.shutting:
            return
        self.shutting = True
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            shutting = asyncio.run_coroutine_threadsafe(self._shut(), self.loop)
            if timeout > 0 and threading.current_thread() is not self.thread:
                with contextlib.suppress(Exception):
                    shutting.result(timeout)


class PrivateLoop:
    """One daemon thread running an event loop, for an adapter whose engine's client is async
    (arq): the agent's command threads run coroutines there under a timeout, on a client kept
    there. Made again in a forked child (the parent's thread does not exist there), with a
    client of its own. `close()` closes the client and ends the thread (a later `run` starts
    them again); so does the loop's garbage collection."""

    def __init__(self, name: str = "z4j-adapter-loop") -> None:
        self.name = name  # the thread's
        self._lock = threading.Lock()
        self._served: _Served | None = None

    async def client(
        self, make: Callable[[], Awaitable[T]], close: Callable[[T], Awaitable[object]]
    ) -> T:
        """The client `make()` opens on this loop: opened once and kept as long as the loop
        lives (its connections belong to this loop), closed by `close`. Awaited on the loop.
        Callers that arrive while it opens wait for the same opening; one that failed is tried
        again by the next caller; a caller cancelled meanwhile (its timeout) does not cancel
        the opening."""
        served = self._served
        if served is None or served.loop is not asyncio.get_running_loop():
            raise RuntimeError("PrivateLoop.client is awaited on its own loop (through run)")
        opening = served.client
        if opening is not None and opening.done():
            if not opening.cancelled() and opening.exception() is None:
                return cast("T", opening.result())  # open: the path of every call but the first
            opening = None
        if opening is None:
            opening = served.client = asyncio.ensure_future(make())
            served.close_client = close
        return cast("T", await asyncio.shield(opening))

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._ensure()
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Close the kept client and end the loop's thread (waiting up to `timeout`)."""
        with self._lock:
            served, self._served = self._served, None
        if served is not None:
            served.shut(timeout)

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._served is None or self._served.pid != os.getpid():
                self._served = _Served(self.name)
                weakref.finalize(self, self._served.shut)
            return self._served.loop


async def stop_off_loop(
    agent: Agent, timeout: float | None = None, logger: logging.Logger = log
) -> None:
    """Stop the agent from an engine's async shutdown hook: the drain runs on a daemon thread,
    so the engine's loop keeps serving while it waits (at most `timeout` plus a second). Never
    raises into the engine: a drain that fails or overruns is counted on the agent and logged
    to `logger` as a warning (the drain thread goes on while the process lives)."""
    timeout = agent.config.drain_timeout if timeout is None else timeout
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def drain() -> None:
        try:
            agent.stop(timeout)
        finally:  # unless the wait gave up, and cancelled `done`: nobody to tell then
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                done.set_result(None)

    try:
        threading.Thread(target=drain, name="z4j-agent-drain", daemon=True).start()
        await asyncio.wait_for(asyncio.wrap_future(done), timeout + 1.0)
    except Exception:
        agent.errors += 1
        logger.warning("z4j agent did not drain at the engine's shutdown", exc_info=True)


_draining: set[int] = set()


def drain_at_exit(agent: Agent) -> None:
    """Stop the agent (drain, then spool what is left) at interpreter exit; once per agent.

    A process that leaves with `os._exit` (Huey's and taskiq's workers, Dramatiq's through
    multiprocessing) never runs `atexit`: its adapter stops the agent at the engine's own
    shutdown hook instead.
    """
    if id(agent) in _draining:
        return
    _draining.add(id(agent))
    atexit.register(agent.stop)


# -- counted blocks: an engine hook that is not a capture's method -------------------------------


@contextlib.contextmanager
def counted(owner: Counting, what: str, logger: logging.Logger = log) -> Iterator[None]:
    """`count_error` around a block (a worker's start or stop hook): an exception in it is
    counted on `owner`, logged the first time `what` happens, and never raised."""
    try:
        yield
    except Exception:
        count_error(owner, what, logger)
