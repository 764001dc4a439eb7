"""Frame types of the z4j wire protocol, and the closed sets adapters map onto.

Owns every message shape that crosses the link, the one ``FRAME_TYPES`` table (tag, class,
which side may send it, whether it is a control frame), ``LifecycleKind`` and ``Capability``.
Structs here only describe data: they never read a clock, open a socket or import an engine.
Each frame is a msgspec Struct tagged by its ``type`` field; msgspec validates on decode.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Union

import msgspec

from z4j_core.wire.limits import (
    DEFAULT_COMMAND_CONCURRENCY,
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_WINDOW,
    MAX_BATCH_EVENTS,
    MAX_FRAME_BYTES,
    MAX_FRAME_INT,
    MAX_NAME_CHARS,
    MAX_REPORTED_QUEUES,
    MAX_RETRIES,
    MAX_WINDOW,
)

NonNegative = Annotated[int, msgspec.Meta(ge=0, le=MAX_FRAME_INT)]
RetryCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_RETRIES)]
#: Any float but NaN and the infinities (a NaN instant cannot be stored or ordered).
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
OptionalSeconds = Annotated[float, msgspec.Meta(ge=0)] | None


class LifecycleKind(str, enum.Enum):
    """What happened to a task. Every adapter maps its engine's signals onto this closed set."""

    ENQUEUED = "enqueued"  # handed to the broker, ready to run
    SCHEDULED = "scheduled"  # handed to the broker to run later (eta, countdown, deferred)
    RECEIVED = "received"  # a worker took it from the broker
    STARTED = "started"  # the task function began
    SUCCEEDED = "succeeded"  # the task function returned
    FAILED = "failed"  # the task raised, or its worker died, with no retry left
    RETRIED = "retried"  # the task failed and will run again
    REVOKED = "revoked"  # removed by an operator before or while running
    CANCELLED = "cancelled"  # cancelled by the application or the engine's own API
    EXPIRED = "expired"  # not started before its expiry
    REJECTED = "rejected"  # the worker refused it (unknown task, bad message)
    SKIPPED = "skipped"  # deliberately not run (a periodic run skipped, a guard said no)
    LOCKED = "locked"  # not run because a lock it needs was held
    DEAD_LETTERED = "dead_lettered"  # moved to a dead-letter queue or failed-job registry


class Capability(str, enum.Enum):
    """What an adapter can do for its engine; advertised in the hello, per engine."""

    LIFECYCLE = "lifecycle"  # reports lifecycle events
    LIST_TASKS = "list_tasks"  # reports the registered tasks
    OBSERVE_SCHEDULES = "observe_schedules"  # reports native periodic schedules (read-only)
    ENQUEUE = "enqueue"  # runs ``enqueue`` commands
    FIRE = "fire"  # runs ``fire`` commands
    TRIGGER_NOW = "trigger_now"  # runs ``trigger_now`` commands
    ETA = "eta"  # honours a delay (countdown / eta)
    PRIORITY = "priority"  # honours a priority
    EXPIRES = "expires"  # honours an expiry
    NATIVE_DEDUP = "native_dedup"  # the engine refuses a job id it already has
    CANCEL = "cancel"  # runs ``cancel`` actions: a queued or scheduled task never runs
    RETRY = "retry"  # runs ``retry`` actions: a finished task runs again, original arguments
    # Members below were added after the first release: they travel only in
    # ``EngineInfo.actions`` (see ``ACTION_CAPABILITIES``), never in ``EngineInfo.capabilities``.
    TERMINATE = "terminate"  # runs ``cancel`` actions with ``terminate``: a running task stops
    PURGE = "purge"  # runs ``purge`` actions: a queue's ready messages are removed
    QUEUE_DEPTH = "queue_depth"  # sends ``queues`` reports (depth of each queue)


#: The capabilities of the actions (retry, cancel, purge, queue depth). An agent advertises them
#: in ``EngineInfo.actions``, as plain names, and never in ``EngineInfo.capabilities``: a brain of
#: the first release refuses a hello whose capability list holds a member it does not know, and
#: ignores the field it does not know. A brain sends an ``action`` only to an engine whose
#: ``actions`` name it, so an agent that predates actions never receives one.
ACTION_CAPABILITIES: Final[frozenset[Capability]] = frozenset(
    {
        Capability.RETRY,
        Capability.CANCEL,
        Capability.TERMINATE,
        Capability.PURGE,
        Capability.QUEUE_DEPTH,
    }
)


class CommandKind(str, enum.Enum):
    """What the brain asks an agent to do."""

    ENQUEUE = "enqueue"  # run a task by name now (an operator's or the API's request)
    FIRE = "fire"  # run a schedule's slot; ``fire_id`` is derived from (schedule id, slot)
    TRIGGER_NOW = "trigger_now"  # run a schedule out of turn; carries its own ``fire_id``


class ActionKind(str, enum.Enum):
    """What an ``action`` frame asks an agent to do to a task or a queue."""

    RETRY = "retry"  # run a finished task again with its original arguments (``task_id``)
    CANCEL = "cancel"  # cancel a queued or scheduled task; running too with ``terminate``
    PURGE = "purge"  # remove a queue's ready messages (``queue``)


#: The capability an agent must advertise for an engine to be sent each action.
ACTION_CAPABILITY: Final[dict[ActionKind, Capability]] = {
    ActionKind.RETRY: Capability.RETRY,
    ActionKind.CANCEL: Capability.CANCEL,
    ActionKind.PURGE: Capability.PURGE,
}


class CommandStatus(str, enum.Enum):
    """How an agent answered a command or an action."""

    ENQUEUED = "enqueued"  # enqueued natively; ``native_id`` is the engine's job id
    DUPLICATE = "duplicate"  # this fire id was already enqueued; nothing was done
    REJECTED = "rejected"  # refused before enqueueing (unknown task, unsupported option...)
    FAILED = "failed"  # enqueueing (or the action) was tried and failed; ``reason`` says why
    EXPIRED = "expired"  # the deadline passed before the agent could enqueue it
    # The two below answer only ``action`` frames (never sent to a brain that sends none).
    DONE = "done"  # the action was carried out (a retry's new run id is ``native_id``)
    UNAVAILABLE = "unavailable"  # the action cannot be done here; ``reason`` says why
    # The enqueue was tried and may or may not have reached the engine (a timeout, a connection
    # lost mid-request): not to be tried again where that could run it twice. Sent only to a
    # brain whose welcome names ``FEATURE_UNKNOWN_ANSWERS``; an older brain gets ``failed``.
    UNKNOWN = "unknown"


class Side(str, enum.Enum):
    """One end of the link."""

    AGENT = "agent"
    BRAIN = "brain"


# ---------------------------------------------------------------------------------------------
# Values carried inside frames


ActionName = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]


class EngineInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One engine an agent serves: its name (``celery``, ``rq``...), version and capabilities.

    ``actions`` names the action capabilities (``ACTION_CAPABILITIES``) as plain strings: a
    brain ignores a name it does not know, so later releases may add actions without a protocol
    version change. Read both lists through ``advertised``.
    """

    name: str
    version: str
    capabilities: list[Capability] = []
    actions: Annotated[list[ActionName], msgspec.Meta(max_length=64)] = []

    @property
    def advertised(self) -> frozenset[Capability]:
        """Every capability this engine advertises: ``capabilities``, plus the known names of
        ``actions`` (an action capability found in ``capabilities`` does not count)."""
        known = {c.value: c for c in ACTION_CAPABILITIES}
        return frozenset(c for c in self.capabilities if c not in ACTION_CAPABILITIES) | {
            known[name] for name in self.actions if name in known
        }

    @classmethod
    def of(cls, name: str, version: str, capabilities: Iterable[str]) -> EngineInfo:
        """The engine info advertising ``capabilities`` (names of ``Capability``), each in the
        list an old brain can read: action capabilities in ``actions``, the others in
        ``capabilities``."""
        members = sorted({Capability(c) for c in capabilities}, key=lambda c: c.value)
        return cls(
            name=name,
            version=version,
            capabilities=[c for c in members if c not in ACTION_CAPABILITIES],
            actions=[c.value for c in members if c in ACTION_CAPABILITIES],
        )


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What the brain allows on this session; sent in the welcome, enforced by both sessions."""

    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=MAX_FRAME_BYTES)] = MAX_FRAME_BYTES
    max_batch_events: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH_EVENTS)] = MAX_BATCH_EVENTS
    window: Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW)] = DEFAULT_WINDOW
    heartbeat_seconds: Annotated[float, msgspec.Meta(ge=0.05, le=3600.0)] = (
        DEFAULT_HEARTBEAT_SECONDS
    )
    command_concurrency: Positive = DEFAULT_COMMAND_CONCURRENCY


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One lifecycle event. Its identity is (agent instance, ``seq``).

    ``at`` is the agent's wall clock (epoch seconds), for display only; nothing orders or expires
    by it. ``args``, ``kwargs`` and ``result`` are already-redacted, already-truncated reprs.
    """

    seq: NonNegative
    kind: LifecycleKind
    at: Finite
    engine: str
    task_id: str
    task_name: str
    queue: str | None = None
    worker: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    runtime: Finite | None = None  # seconds the task ran, when known
    retries: RetryCount | None = None
    exception: str | None = None  # exception type, dotted
    message: str | None = None
    traceback: str | None = None
    fire_id: str | None = None  # set when the task came from a z4j fire
    extra: dict[str, str] = {}


class TaskInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A task registered with an engine."""

    name: str
    queue: str | None = None
    options: dict[str, str] = {}


class ObservedSchedule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A native periodic schedule the agent can see (celery beat, rq-scheduler, arq cron...).

    z4j only observes these; ``read_only`` is always true for native schedules.
    """

    source: str  # which native scheduler, e.g. "celery_beat"
    name: str
    task: str
    kind: str  # "cron", "interval", "solar", "clocked"...
    expression: str  # the native spelling, e.g. "*/5 * * * *" or "every 300s"
    next_runs: list[float] = []  # epoch seconds, display only
    read_only: bool = True
    # What `z4j schedules adopt` needs (`z4j_core.adapter.native_definition`); absent from
    # agents older than adopt, and ignored by brains older than it.
    definition: dict[str, Any] = {}


class QueueDepth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How many messages one queue holds, as the engine counts them; None where the engine has
    no such count (a broker without a delayed set, an engine without a failed registry)."""

    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
    ready: NonNegative  # waiting to be taken by a worker
    scheduled: NonNegative | None = None  # delayed: eta, countdown, deferred, retry backoff
    running: NonNegative | None = None  # taken by a worker and not finished
    failed: NonNegative | None = None  # in a failed-job registry or dead-letter queue


class CommandOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How to enqueue. Times are durations from the moment the agent enqueues, never instants."""

    queue: str | None = None
    priority: int | None = None
    delay_seconds: OptionalSeconds = None  # countdown / eta, as a duration
    expires_seconds: OptionalSeconds = None
    headers: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------
# Frames


class Frame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Base of every frame; never sent itself."""


class Hello(Frame, frozen=True, tag="hello"):
    """Agent -> brain, first and unsigned. The brain answers with a signed ``Welcome``."""

    protocol_version: int
    agent_instance: str  # stable for the agent process's life; half of each event's identity
    app: str
    host: str
    pid: NonNegative
    agent_version: str
    engines: list[EngineInfo] = []
    labels: dict[str, str] = {}
    nonce: bytes = b""  # filled in by ``AgentSession``; NONCE_BYTES random bytes


class Welcome(Frame, frozen=True, tag="welcome"):
    """Brain -> agent, first signed frame (brain sequence 0): the session is open."""

    protocol_version: int
    session_id: str  # SESSION_ID_BYTES random bytes as lowercase hex
    nonce: bytes  # NONCE_BYTES random bytes
    limits: Limits = Limits()
    brain_version: str = ""
    #: Optional frames this brain accepts (``FEATURE_QUEUE_REPORTS``); an agent sends such a
    #: frame only when its feature is named here, so a brain that predates it never gets one.
    features: list[str] = []


#: In ``Welcome.features``: the brain accepts ``queues`` reports.
FEATURE_QUEUE_REPORTS: Final = "queues"
#: In ``Welcome.features``: the brain accepts the ``unknown`` command status.
FEATURE_UNKNOWN_ANSWERS: Final = "unknown_answers"


class EventBatch(Frame, frozen=True, tag="events"):
    """Agent -> brain: events ``first_seq`` .. ``first_seq + len(events) - 1``, in order."""

    first_seq: NonNegative
    events: Annotated[list[Event], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]
    #: Events the agent held unacknowledged in memory when it sent this batch (this batch's
    #: included): its outbox depth, for the brain's metrics. Optional: older agents omit it and
    #: older brains ignore it.
    pending: NonNegative | None = None

    def __post_init__(self) -> None:
        seq = self.first_seq
        for event in self.events:
            if event.seq != seq:
                raise ValueError("event sequence numbers are not contiguous from first_seq")
            seq += 1

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.events) - 1


class Ack(Frame, frozen=True, tag="ack"):
    """Brain -> agent: every event of this agent instance with ``seq <= up_to_seq`` is stored."""

    up_to_seq: NonNegative


class DroppedReport(Frame, frozen=True, tag="dropped"):
    """Agent -> brain: events dropped since the agent instance started (cumulative, so a report
    that is resent or lost costs nothing)."""

    total: NonNegative
    reason: str = ""


class Inventory(Frame, frozen=True, tag="inventory"):
    """Agent -> brain: what one engine app knows. Replaces the previous inventory for (engine,
    app)."""

    engine: str
    app: str
    tasks: list[TaskInfo] = []
    schedules: list[ObservedSchedule] = []
    queues: list[str] = []
    workers: list[str] = []


class Command(Frame, frozen=True, tag="command"):
    """Brain -> agent: enqueue a task natively.

    ``deadline_seconds`` is a duration measured on the receiver's monotonic clock from the moment
    it receives the frame; past it the agent answers ``expired`` instead of enqueueing.
    ``fire`` needs ``fire_id``, ``schedule_id`` and ``slot`` (ISO 8601 with offset, for display
    and for the engine's headers); ``trigger_now`` needs ``fire_id`` and ``schedule_id``.
    """

    command_id: str
    kind: CommandKind
    deadline_seconds: Seconds
    engine: str
    app: str
    task: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    options: CommandOptions = CommandOptions()
    fire_id: str | None = None
    schedule_id: str | None = None
    slot: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not CommandKind.ENQUEUE and (not self.fire_id or not self.schedule_id):
            raise ValueError(f"a {self.kind.value} command needs fire_id and schedule_id")
        if self.kind is CommandKind.FIRE and not self.slot:
            raise ValueError("a fire command needs its slot")


class Action(Frame, frozen=True, tag="action"):
    """Brain -> agent: retry or cancel a task, or purge a queue, with the engine's own calls.

    Sent only to an agent whose hello advertises the action's capability for ``engine``
    (``ACTION_CAPABILITY``; ``cancel`` with ``terminate`` needs ``terminate`` too). Answered
    with a ``CommandResult`` of the same ``command_id``: ``done``, ``unavailable`` (with why),
    ``failed`` (with the error) or ``expired``. ``deadline_seconds`` works as a command's.

    retry: ``task_id`` (and ``task``, its name as the brain saw it) runs again with its original
    arguments, from the engine's own record or the agent's local store, never from anything the
    brain holds; the new run takes ``new_task_id`` where the engine accepts a job id, and the
    answer's ``native_id`` is the new run's id. ``force``: the operator asked to retry a task
    that did not fail.
    cancel: ``task_id`` never runs if still queued or scheduled; with ``terminate``, a running
    one is stopped.
    purge: the ready messages of ``queue`` are removed; the answer's ``count`` says how many.
    """

    command_id: str
    action: ActionKind
    deadline_seconds: Seconds
    engine: str
    app: str
    task_id: str | None = None
    task: str | None = None
    queue: str | None = None
    terminate: bool = False
    force: bool = False
    new_task_id: str | None = None

    def __post_init__(self) -> None:
        if self.action is ActionKind.PURGE:
            if not self.queue:
                raise ValueError("a purge action needs its queue")
        elif not self.task_id:
            raise ValueError(f"a {self.action.value} action needs task_id")


class CommandResult(Frame, frozen=True, tag="result"):
    """Agent -> brain: how a command or an action ended."""

    command_id: str
    status: CommandStatus
    native_id: str | None = None  # the engine's job id when enqueued (for fires: the fire id)
    reason: str = ""  # short and safe; required in spirit for rejected, failed and expired
    count: NonNegative | None = None  # purge: how many messages were removed


class QueueReport(Frame, frozen=True, tag="queues"):
    """Agent -> brain: the depth of one engine app's queues, at most once per
    ``QUEUE_REPORT_SECONDS``; sent only when the welcome names ``FEATURE_QUEUE_REPORTS``.
    Replaces the previous report of this agent for (engine, app)."""

    engine: str
    app: str
    queues: Annotated[list[QueueDepth], msgspec.Meta(max_length=MAX_REPORTED_QUEUES)] = []


class Ping(Frame, frozen=True, tag="ping"):
    """Either way: a heartbeat. The receiving session answers with a ``Pong`` of the same id."""

    id: NonNegative


class Pong(Frame, frozen=True, tag="pong"):
    """Either way: the answer to a ``Ping``."""

    id: NonNegative


class Error(Frame, frozen=True, tag="error"):
    """Either way: something went wrong. ``fatal`` means the sender is ending the session.

    Before the session opens, the brain may send one unsigned fatal ``Error`` to refuse a hello.
    """

    code: int
    message: str
    fatal: bool = False


class Close(Frame, frozen=True, tag="close"):
    """Either way: the sender is ending the session (signed, so the reason is authentic)."""

    code: int
    reason: str = ""


AnyFrame = Union[  # noqa: UP007 -- a runtime union msgspec and typing.get_args both read
    Hello,
    Welcome,
    EventBatch,
    Ack,
    DroppedReport,
    Inventory,
    Command,
    CommandResult,
    Ping,
    Pong,
    Error,
    Close,
    Action,
    QueueReport,
]


@dataclass(frozen=True)
class FrameSpec:
    """One row of ``FRAME_TYPES``."""

    tag: str
    cls: type[Frame]
    senders: frozenset[Side]
    control: bool  # control frames go before event batches in every outbox


_AGENT = frozenset({Side.AGENT})
_BRAIN = frozenset({Side.BRAIN})
_BOTH = frozenset({Side.AGENT, Side.BRAIN})

#: Every frame type, once: its tag on the wire, its class, who may send it, and its priority.
FRAME_TYPES: Final[dict[type[Frame], FrameSpec]] = {
    spec.cls: spec
    for spec in (
        FrameSpec("hello", Hello, _AGENT, control=True),
        FrameSpec("welcome", Welcome, _BRAIN, control=True),
        FrameSpec("events", EventBatch, _AGENT, control=False),
        FrameSpec("ack", Ack, _BRAIN, control=True),
        FrameSpec("dropped", DroppedReport, _AGENT, control=True),
        FrameSpec("inventory", Inventory, _AGENT, control=False),
        FrameSpec("command", Command, _BRAIN, control=True),
        FrameSpec("result", CommandResult, _AGENT, control=True),
        FrameSpec("ping", Ping, _BOTH, control=True),
        FrameSpec("pong", Pong, _BOTH, control=True),
        FrameSpec("error", Error, _BOTH, control=True),
        FrameSpec("close", Close, _BOTH, control=True),
        FrameSpec("action", Action, _BRAIN, control=True),
        FrameSpec("queues", QueueReport, _AGENT, control=False),
    )
}


def is_control(frame: Frame) -> bool:
    """Whether ``frame`` must go before queued event batches (acks, commands, results...)."""
    return FRAME_TYPES[type(frame)].control
