"""Every request and response body of the brain's HTTP API, declared once as msgspec structs.

Requests are decoded into these types (one validation style: msgspec, unknown fields refused),
responses are encoded from them, and the OpenAPI document's schemas are generated from them
(``z4j_brain.openapi``), so the document says exactly what is served. Response types forbid
unknown fields: a store row that grew a column the type does not declare fails the tests
instead of reaching a client undocumented. Times are epoch seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from z4j_core.wire.frames import CommandKind, CommandOptions

Seconds = Annotated[float, Meta(description="Epoch seconds.")]
OptSeconds = Annotated[float | None, Meta(description="Epoch seconds, or null.")]
Labels = Annotated[dict[str, str], Meta(description="String labels.")]
NonEmpty = Annotated[str, Meta(pattern=r"\S", description="A non-empty string.")]
SCHEDULE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,119}$"
ScheduleName = Annotated[
    str,
    Meta(
        pattern=SCHEDULE_NAME_PATTERN,
        description="1 to 120 letters, digits, '_', '.', ':' and '-', starting with a letter "
        "or digit; unique, and never another schedule's id.",
    ),
]
PositiveSeconds = Annotated[float, Meta(gt=0, description="A positive number of seconds.")]
#: Longest an idempotency key may be.
MAX_KEY_LENGTH: Final = 200
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=MAX_KEY_LENGTH)]

FireState = Literal[
    "pending", "delivering", "enqueued", "duplicate", "rejected", "failed", "unknown", "missed",
    "skipped", "buffered",
]  # fmt: skip
FireKind = Literal["scheduled", "catch_up", "trigger", "backfill"]
Overlap = Annotated[
    Literal["allow", "skip", "buffer-one", "cancel-previous"],
    Meta(
        description="What a slot does while the previous fire's task is still queued or "
        "running: allow (fire anyway), skip (record it skipped), buffer-one (at most one "
        "waits), cancel-previous (cancel the previous task, then fire; needs agents that "
        "advertise cancel, and terminate to stop a running one)."
    ),
]
ResultLog = Annotated[
    Literal["all", "failures", "none"],
    Meta(description="What retention keeps of the fires' tasks (fires themselves stay)."),
]
PauseAfterFailures = Annotated[
    int,
    Meta(ge=1, le=1000, description="Pause after this many consecutive failed task outcomes."),
]
Force = Annotated[
    bool,
    Meta(
        description="Create or edit even when the engine, app or task is not in what the "
        "agents reported (an app not deployed yet), or with overlap cancel-previous when no "
        "agent of its engine advertises cancel; the schedule's health says why it may not run."
    ),
]


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: a field the API does not know is refused (400), never ignored."""


class Response(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of response bodies."""


# -- errors and health -------------------------------------------------------------------------


class Error(Response):
    """Every refusal: one line saying what is wrong."""

    error: str


class Health(Response):
    """Liveness: the process answers."""

    status: Literal["ok"]
    agents_connected: int
    version: str


class ReadyChecks(Response):
    """Each readiness check: true when it passed."""

    store_reachable: bool
    store_writable: bool
    migrations_current: bool
    leader_known: bool


class Ready(Response):
    """Readiness: 200 with ``status`` ``ready`` when every check passed, else 503 with
    ``not_ready`` and one line per failed check in ``problems``."""

    status: Literal["ready", "not_ready"]
    version: str
    brain_id: str
    #: Whether this brain is the scheduler leader (another brain may be: see ``leader_known``).
    leader: bool
    schema_version: int | None
    schema_expected: int
    checks: ReadyChecks
    problems: list[str]


# -- commands -----------------------------------------------------------------------------------


class CommandOptionsRequest(Request):
    """How the engine enqueues it. Times are durations from the moment the agent enqueues."""

    queue: str | None = None
    priority: int | None = None
    delay_seconds: Annotated[float, Meta(ge=0)] | None = None
    expires_seconds: Annotated[float, Meta(ge=0)] | None = None
    headers: dict[str, str] = {}

    def to_wire(self) -> CommandOptions:
        return CommandOptions(
            queue=self.queue,
            priority=self.priority,
            delay_seconds=self.delay_seconds,
            expires_seconds=self.expires_seconds,
            headers=dict(self.headers),
        )


class CommandRequest(Request):
    """Body of ``POST /api/v1/commands`` (``fire`` needs fire_id, schedule_id and slot)."""

    kind: CommandKind
    engine: Annotated[str, Meta(description="Engine name, e.g. huey, celery.")]
    app: Annotated[str, Meta(description="The application's name (agents' hello).")]
    task: Annotated[str, Meta(description="Task name as the engine knows it.")]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    options: CommandOptionsRequest = msgspec.field(default_factory=CommandOptionsRequest)
    fire_id: str | None = None
    schedule_id: str | None = None
    slot: str | None = None
    labels: Annotated[
        dict[str, str], Meta(description="Only agents whose labels include these may take it.")
    ] = {}
    deadline: (
        Annotated[float, Meta(gt=0, description="Seconds the agent has to answer (default 30).")]
        | None
    ) = None


class CommandOutcome(Response):
    """How a command ended: enqueued, duplicate, rejected, failed, expired, or unknown (no
    answer before the deadline, or the agent's enqueue timed out mid-request: nobody can know
    whether the engine took it)."""

    command_id: str
    agent_instance: str
    status: str
    native_id: str | None
    reason: str


class CommandRecord(Response):
    """A command as recorded, with its answer (status is pending until answered)."""

    command_id: str
    agent_instance: str
    kind: str
    engine: str
    app: str
    task: str
    payload: dict[str, Any]
    fire_id: str | None
    status: str
    native_id: str | None
    reason: str
    created_at: Seconds
    deadline_at: Seconds
    answered_at: OptSeconds


# -- tasks, events, agents, inventory -----------------------------------------------------------


class Task(Response):
    """The latest state of one task."""

    engine: str
    task_id: str
    name: str
    state: str
    app: str | None
    queue: str | None
    worker: str | None
    enqueued_at: OptSeconds
    received_at: OptSeconds
    started_at: OptSeconds
    finished_at: OptSeconds
    runtime: float | None
    retries: int | None
    exception: str | None
    message: str | None
    traceback: Annotated[str | None, Meta(description="Redacted by the agent before it left.")]
    fire_id: str | None
    updated_at: Seconds
    retry_of: Annotated[
        str | None, Meta(description="The run this one retried (a done retry action).")
    ] = None
    retried_as: Annotated[
        list[str], Meta(description="The runs this one was retried as, oldest first.")
    ] = []


NextCursor = Annotated[
    str | None,
    Meta(description="Pass as cursor= to get the next page; null on the last page."),
]


class TaskList(Response):
    tasks: list[Task]
    next_cursor: NextCursor


class Event(Response):
    """One stored lifecycle event; ``position`` orders all events in the store."""

    agent_instance: str
    seq: int
    position: int
    stored_at: Seconds
    app: str
    kind: str
    at: Seconds
    engine: str
    task_id: str
    task_name: str
    queue: str | None
    worker: str | None
    args: str | None
    kwargs: str | None
    result: str | None
    runtime: float | None
    retries: int | None
    exception: str | None
    message: str | None
    traceback: str | None
    fire_id: str | None
    extra: dict[str, Any]


class EventList(Response):
    events: list[Event]


class EventPage(Response):
    events: list[Event]
    next_after: Annotated[int, Meta(description="Pass as after= to get the next page.")]
    latest: Annotated[int, Meta(description="Position of the newest stored event.")]


class AgentEngine(Response):
    name: str
    version: str | None = None
    capabilities: list[str] = []
    actions: Annotated[
        list[str],
        Meta(
            description="The actions this engine runs: retry, cancel, terminate, purge, "
            "queue_depth (docs/actions.md)."
        ),
    ] = []


class Agent(Response):
    agent_instance: str
    token_name: str
    app: str
    host: str
    pid: int
    engines: list[AgentEngine]
    labels: Labels
    agent_version: str
    session_id: str | None
    connected: bool
    connected_at: OptSeconds
    last_seen_at: OptSeconds
    dropped_total: int
    dropped_reason: str


class AgentList(Response):
    agents: list[Agent]


class Inventory(Response):
    """What one agent reported for one engine app."""

    agent_instance: str
    engine: str
    app: str
    tasks: list[dict[str, Any]]
    schedules: list[dict[str, Any]]
    queues: list[str]
    workers: list[str]
    updated_at: Seconds


class InventoryList(Response):
    inventory: list[Inventory]


class ObservedAgent(Response):
    agent_instance: str
    connected: bool
    reported_at: Annotated[
        float, Meta(description="When it last reported it: now while connected (epoch s).")
    ]


class Observed(Response):
    """A native schedule agents observe, once per (engine, app, source, name)."""

    engine: str
    app: str
    source: str
    name: str
    task: str
    kind: str
    expression: str
    next_runs: list[float]
    agents: Annotated[list[ObservedAgent], Meta(description="Who reports it, newest first.")]
    last_reported_at: Seconds
    stale: Annotated[
        bool,
        Meta(description="No connected agent reports it, and none did for 10 minutes."),
    ]


class ObservedList(Response):
    observed: list[Observed]


# -- tokens -------------------------------------------------------------------------------------


class TokenRequest(Request):
    """Body of ``POST /api/v1/tokens``."""

    name: Annotated[str, Meta(pattern="^[A-Za-z0-9._-]{1,64}$")]
    labels: Labels = {}
    expires_in: (
        Annotated[float, Meta(gt=0, description="Lifetime in seconds (default: never).")] | None
    ) = None
    app: (
        Annotated[
            str,
            Meta(min_length=1, max_length=200, description="The only app its agents may present."),
        ]
        | None
    ) = None
    engine: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                description="The only engine its agents may serve (needs app).",
            ),
        ]
        | None
    ) = None


class Token(Response):
    """A token as listed: never its secret."""

    name: str
    status: Literal["active", "expired", "revoked"]
    labels: Labels
    created_at: Seconds
    expires_at: OptSeconds
    revoked_at: OptSeconds
    app: Annotated[str | None, Meta(description="The app it is bound to; null: unbound.")]
    engine: Annotated[str | None, Meta(description="The engine it is bound to; null: any.")]


class NewToken(Token):
    token: Annotated[str, Meta(description="The agent token: returned only here, never again.")]


class TokenList(Response):
    tokens: list[Token]


# -- operators and sessions ---------------------------------------------------------------------

RoleName = Annotated[
    Literal["viewer", "operator", "admin"],
    Meta(description="viewer < operator < admin; each may do all the one before may."),
]
AppPatterns = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=128)]],
    Meta(max_length=32, description="Glob patterns of the apps it sees; ['*']: every app."),
]


class OperatorRequest(Request):
    """Body of ``POST /api/v1/operators``."""

    name: Annotated[str, Meta(pattern="^[A-Za-z0-9._-]{1,64}$")]
    role: RoleName
    apps: AppPatterns = []
    expires_in: (
        Annotated[float, Meta(gt=0, description="Lifetime in seconds (default: never).")] | None
    ) = None


class Operator(Response):
    """An operator as listed: never its token."""

    name: str
    role: RoleName
    apps: list[str]
    status: Literal["active", "expired", "revoked"]
    created_at: Seconds
    expires_at: OptSeconds
    revoked_at: OptSeconds
    rotated_at: OptSeconds


class NewOperator(Operator):
    token: Annotated[
        str, Meta(description="The operator's token: returned only here, never again.")
    ]


class OperatorList(Response):
    operators: list[Operator]


class Whoami(Response):
    """Who the caller is."""

    operator: str
    role: RoleName
    apps: list[str]
    via: Literal["token", "session"]


class NewSession(Whoami):
    csrf_token: Annotated[
        str, Meta(description="Send it as X-CSRF-Token with every mutating request.")
    ]
    expires_at: Annotated[float, Meta(description="Absolute expiry, epoch seconds.")]
    idle_seconds: Annotated[float, Meta(description="It ends after this long unused.")]


class SessionEnded(Response):
    ended: bool


# -- schedules ----------------------------------------------------------------------------------


class ScheduleOptions(Request):
    """Native options of every fire; on an edit, a null removes one."""

    queue: str | UnsetType | None = UNSET
    priority: int | UnsetType | None = UNSET
    expires_seconds: PositiveSeconds | UnsetType | None = UNSET

    def given(self) -> dict[str, Any]:
        """The options set by the request (``None``: remove it)."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not UNSET}


ScheduleSpec = Annotated[
    dict[str, Any],
    Meta(
        description="The schedule as docs/schedules.md spells it: kind (cron, interval, "
        "oneshot, solar) and its fields, timezone, start, end, jitter, catch_up (skip, one, "
        "all), misfire_grace, max_catch_up."
    ),
]


class ScheduleCreate(Request):
    """Body of ``POST /api/v1/schedules``."""

    name: ScheduleName
    task: NonEmpty
    engine: NonEmpty
    schedule: ScheduleSpec
    app: (
        Annotated[
            str,
            Meta(pattern=r"\S", description="Default: the one app whose agents run the engine."),
        ]
        | None
    ) = None
    id: Annotated[str, Meta(description="Immutable id (default: generated).")] | None = None
    labels: Annotated[Labels, Meta(description="Only agents with these labels take it.")] = {}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    options: ScheduleOptions = msgspec.field(default_factory=ScheduleOptions)
    description: str = ""
    enabled: bool = True
    allow_past: Annotated[
        bool, Meta(description="A one-shot whose instant has passed fires once, now (else 400).")
    ] = False
    overlap: Overlap = "allow"
    pause_after_failures: PauseAfterFailures | None = None
    result_log: ResultLog = "all"
    force: Force = False


class ScheduleEdit(Request):
    """Body of ``PATCH /api/v1/schedules/{ref}``: any of these; ``name`` renames (the id never
    changes); a new ``schedule`` takes effect from now."""

    name: ScheduleName | UnsetType = UNSET
    task: NonEmpty | UnsetType = UNSET
    engine: NonEmpty | UnsetType = UNSET
    app: NonEmpty | UnsetType = UNSET
    labels: Labels | UnsetType = UNSET
    args: list[Any] | UnsetType = UNSET
    kwargs: dict[str, Any] | UnsetType = UNSET
    options: ScheduleOptions | UnsetType = UNSET
    schedule: ScheduleSpec | UnsetType = UNSET
    description: str | UnsetType = UNSET
    overlap: Overlap | UnsetType = UNSET
    pause_after_failures: PauseAfterFailures | UnsetType | None = UNSET
    result_log: ResultLog | UnsetType = UNSET
    allow_past: bool = False
    force: Force = False


#: Fields of an edit that qualify it rather than change the schedule.
EDIT_QUALIFIERS: Final = ("allow_past", "force")
#: What ``PATCH`` may change.
EDITABLE: Final = tuple(f for f in ScheduleEdit.__struct_fields__ if f not in EDIT_QUALIFIERS)
#: What ``POST`` takes.
CREATABLE: Final = ScheduleCreate.__struct_fields__


class PauseRequest(Request):
    note: Annotated[str | None, Meta(description="Why it is paused (shown in listings).")] = None


class TriggerRequest(Request):
    idempotency_key: IdempotencyKey | None = None


class LastFire(Response):
    """A schedule's newest fire (by slot) and its task's outcome."""

    fire_id: str
    kind: FireKind
    slot: Seconds
    state: FireState
    reason: str
    task_state: Annotated[str | None, Meta(description="null until the engine reported it.")]


class ScheduleHealth(Response):
    """What the brain knows of how a schedule is doing, worked out when it is read."""

    state: Annotated[
        Literal["active", "paused", "failing", "no agent", "missing", "broken"],
        Meta(
            description="paused: see note; failing: its newest task outcomes failed; no "
            "agent: no connected agent can take its fires; missing: its newest fire went "
            "missed or unknown; broken: the leader set it aside."
        ),
    ]
    note: Annotated[str, Meta(description="What is wrong, in words ('' when active).")]
    last_fire: LastFire | None
    consecutive_failures: Annotated[
        int, Meta(description="Newest settled task outcomes that failed, in a row.")
    ]
    next_fire: Annotated[str | None, Meta(description="The next slot (ISO 8601), if any.")]
    problems: Annotated[
        list[str],
        Meta(
            description="Why it may not run: its engine, app or task not in what the agents "
            "reported (a schedule made with force)."
        ),
    ]


class Schedule(Response):
    """A schedule as stored."""

    id: str
    name: str
    task: str
    engine: str
    app: str
    labels: Labels
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    schedule: dict[str, Any]
    enabled: bool
    pause_note: str
    description: str
    cursor: Annotated[float, Meta(description="Newest slot settled (epoch s).")]
    skipped_through: Annotated[float | None, Meta(description="Newest slot skipped by catch-up.")]
    version: int
    created_at: Seconds
    created_by: str
    updated_at: Seconds
    updated_by: str
    state: Annotated[
        Literal["active", "paused", "broken"],
        Meta(description="broken: the leader could not compute or fire it (see broken)."),
    ]
    broken: Annotated[str, Meta(description="Why it was set aside ('' when it is not).")]
    broken_at: OptSeconds
    overlap: Overlap
    pause_after_failures: PauseAfterFailures | None
    result_log: ResultLog
    health: Annotated[
        ScheduleHealth | None, Meta(description="In listings and GET of one schedule.")
    ] = None


class NativeTwin(Response):
    """A native schedule agents observe for the same engine, app and task: the task runs for
    both until it is removed."""

    source: str
    name: str
    expression: str
    agents: Annotated[list[str], Meta(description="Agent instances that report it.")]
    remove: Annotated[str, Meta(description="How to remove the native one.")]


class ScheduleView(Schedule, kw_only=True):
    """A schedule with its words and next slots."""

    describe: str
    next_slots: list[str]
    native_twins: Annotated[
        list[NativeTwin],
        Meta(description="Native schedules of the same task that agents still observe."),
    ] = []


class ScheduleList(Response):
    schedules: list[Schedule]


class Deleted(Response):
    deleted: Schedule


class HistorySchedule(Response):
    """The schedule a history belongs to: live, or as it was when deleted."""

    id: str
    name: str
    task: str
    engine: str
    app: str
    labels: Labels
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    schedule: dict[str, Any]
    enabled: bool
    pause_note: str
    description: str
    cursor: float
    skipped_through: float | None
    version: int
    created_at: Seconds
    created_by: str
    updated_at: Seconds
    updated_by: str
    state: Literal["active", "paused", "broken", "deleted"]
    deleted_at: OptSeconds
    broken: str = ""
    broken_at: OptSeconds = None
    deleted_by: str | None = None
    overlap: Overlap = "allow"
    pause_after_failures: PauseAfterFailures | None = None
    result_log: ResultLog = "all"


class TaskOutcome(Response):
    """What the engine reported of a fire's task (null until it did)."""

    task_state: Annotated[str | None, Meta(description="The task's latest state.")]
    task_finished_at: OptSeconds
    task_runtime: float | None
    task_exception: str | None


class FireSummary(TaskOutcome):
    """One fire in a schedule's history."""

    fire_id: str
    kind: FireKind
    slot: Seconds
    due_at: Seconds
    state: FireState
    agent_instance: str | None
    native_id: str | None
    reason: str
    decision: Annotated[
        str, Meta(description="The overlap policy's decision on the slot ('' when it fired).")
    ]
    created_at: Seconds
    sent_at: OptSeconds
    answered_at: OptSeconds


class Fire(TaskOutcome):
    """One fire: a schedule's slot (or a trigger), its delivery and its task's outcome."""

    fire_id: str
    schedule_id: str
    kind: FireKind
    slot: Seconds
    due_at: Seconds
    deliver_by: Seconds
    engine: str
    app: str
    task: str
    labels: Labels
    payload: dict[str, Any]
    state: FireState
    agent_instance: str | None
    agent_session: str | None
    native_dedup: bool
    claimed_by: str | None
    command_id: str | None
    native_id: str | None
    reason: str
    attempts: int
    idempotency_key: str | None
    created_at: Seconds
    sent_at: OptSeconds
    answered_at: OptSeconds
    decision: Annotated[
        str, Meta(description="The overlap policy's decision on the slot ('' when it fired).")
    ]


class BackfillRequest(Request):
    """Body of ``POST /api/v1/schedules/{ref}/backfill``."""

    start: Annotated[
        str, Meta(description="ISO 8601 instant with offset: the range's first instant.")
    ] = msgspec.field(name="from")
    end: Annotated[
        str, Meta(description="ISO 8601 instant with offset, at most now: its last instant.")
    ] = msgspec.field(name="to")
    dry_run: Annotated[bool, Meta(description="List the slots; fire nothing.")] = False


class BackfillSlot(Response):
    slot: Seconds
    fire_id: Annotated[str, Meta(description="The id a live slot gets: never fired twice.")]
    had_fire: Annotated[
        FireState | None, Meta(description="The state of the fire it already had, or null.")
    ]


class BackfillResult(Response):
    schedule: str
    schedule_id: str
    dry_run: bool
    slots: Annotated[list[BackfillSlot], Meta(description="Every slot in the range, oldest first.")]
    fired: Annotated[int, Meta(description="Fires written now (0 for a dry run).")]


class FireHistory(Response):
    schedule: HistorySchedule
    fires: list[FireSummary]
    next_cursor: NextCursor


class Triggered(Response):
    """201: the trigger's fire; 200: the fire an earlier request with that key made."""

    fire: Fire
    created: bool


class SchedulerStatus(Response):
    brain_id: str
    leader: bool
    election: Literal["sqlite", "postgres-advisory-lock"]
    schedules_held: Annotated[int | None, Meta(description="null unless this brain leads.")]
    fires_written: int
    broken_found: int
    delivering: int
    fires: Annotated[dict[str, int], Meta(description="Fires by state.")]


class Applied(Response):
    applied: bool
    leader: bool


class AuditRow(Response):
    seq: int
    at: Seconds
    actor: str
    source: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hmac: str
    hmac: str


class AuditList(Response):
    audit: list[AuditRow]
    next_cursor: NextCursor


class AuditVerify(Response):
    ok: bool
    count: int
    bad_seq: int | None
    reason: str


# -- actions (docs/actions.md) ------------------------------------------------------------------

ActionStatus = Literal["pending", "done", "unavailable", "failed", "expired", "unknown"]
Deadline = Annotated[
    float, Meta(gt=0, le=300, description="Seconds the agent has to answer (default 30).")
]
EngineName = Annotated[str, Meta(pattern=r"\S", description="Engine name, e.g. rq, huey.")]
AppName = Annotated[str, Meta(pattern=r"\S", description="The application's name.")]


class RetryRequest(Request):
    """Retry a finished task with its original arguments (never the brain's redacted copy).
    engine and app are needed only for a task the brain has not seen or whose id two engines
    share."""

    engine: EngineName | None = None
    app: AppName | None = None
    force: Annotated[
        bool, Meta(description="Retry a finished task that did not fail (succeeded...).")
    ] = False
    deadline: Deadline | None = None


class CancelRequest(Request):
    """Cancel a queued or scheduled task; with terminate, stop a running one."""

    engine: EngineName | None = None
    app: AppName | None = None
    terminate: bool = False
    deadline: Deadline | None = None


class PurgeRequest(Request):
    """Remove the ready messages of a queue of one engine app."""

    engine: EngineName
    app: AppName | None = None
    deadline: Deadline | None = None


class ActionResult(Response):
    """One action and how it ended: done, unavailable (the reason says why), failed (the
    error), expired, unknown (no answer before the deadline) or pending."""

    action_id: str
    action: Annotated[str, Meta(description="retry, cancel or purge.")]
    engine: str
    app: str
    task_id: str | None
    task: str | None
    queue: str | None
    options: dict[str, Any]
    status: ActionStatus
    reason: str
    new_task_id: Annotated[str | None, Meta(description="A retry's new run.")]
    count: Annotated[int | None, Meta(description="A purge's removed messages.")]
    agent_instance: str | None
    bulk_id: str | None
    requested_by: str
    requested_from: str
    requested_at: Seconds
    finished_at: OptSeconds


class ActionList(Response):
    actions: list[ActionResult]
    next_cursor: NextCursor


Since = Annotated[float, Meta(gt=0, description="Only tasks updated within this many seconds.")]


class BulkRequest(Request):
    """Act on every task matching the filter; `dry_run` only counts them."""

    states: Annotated[list[str], Meta(min_length=1, description="Task states to act on.")]
    task: str | None = None
    engine: EngineName | None = None
    app: AppName | None = None
    since: Since | None = None
    dry_run: bool = False
    force: bool = False
    terminate: bool = False
    per_second: (
        Annotated[float, Meta(gt=0, le=1000, description="Actions sent per second (default 100).")]
        | None
    ) = None
    deadline: Deadline | None = None


class BulkResult(Response):
    """A bulk action: what it matched and, by status, how its actions ended so far."""

    bulk_id: str | None
    action: str
    filter: dict[str, Any]
    matched: int
    dry_run: bool
    counts: Annotated[dict[str, int], Meta(description="Actions by status so far.")]
    finished: bool
    requested_by: str
    requested_from: str
    requested_at: Seconds
    finished_at: OptSeconds


class QueueRow(Response):
    """One queue's depth, from the freshest report of a connected agent (null: the engine
    has no such count)."""

    engine: str
    app: str
    queue: str
    ready: int
    scheduled: int | None
    running: int | None
    failed: int | None
    agent: str
    updated_at: Seconds


class QueueList(Response):
    queues: list[QueueRow]
