"""Shared test helpers for the wire tests: hypothesis strategies for every frame, and a pair of
sessions joined in memory (like h11's ConnectionPair)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from z4j_core.wire import (
    MAX_BATCH_EVENTS,
    MAX_FRAME_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    Ack,
    Action,
    ActionKind,
    AgentSession,
    BrainSession,
    Capability,
    Close,
    Command,
    CommandKind,
    CommandOptions,
    CommandResult,
    CommandStatus,
    DroppedReport,
    EngineInfo,
    Error,
    Event,
    EventBatch,
    Frame,
    Hello,
    Inventory,
    LifecycleKind,
    Limits,
    ObservedSchedule,
    Ping,
    Pong,
    QueueDepth,
    QueueReport,
    TaskInfo,
    Welcome,
    token_hash,
)
from z4j_core.wire.signing import seal

TOKEN = "z4j_test-token-0123456789abcdef0123456789abcdef"

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
short_dict = st.dictionaries(text, text, max_size=3)
uint = st.integers(min_value=0, max_value=2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
opt_text = st.none() | text
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | finite
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
durations = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


def events(first_seq: int, count: int) -> st.SearchStrategy[list[Event]]:
    return st.tuples(
        *[
            st.builds(
                Event,
                seq=st.just(first_seq + i),
                kind=st.sampled_from(LifecycleKind),
                at=finite,
                engine=text,
                task_id=text,
                task_name=text,
                queue=opt_text,
                worker=opt_text,
                args=opt_text,
                kwargs=opt_text,
                result=opt_text,
                runtime=st.none() | finite,
                retries=st.none() | st.integers(0, 1000),
                exception=opt_text,
                message=opt_text,
                traceback=opt_text,
                fire_id=opt_text,
                extra=short_dict,
            )
            for i in range(count)
        ]
    ).map(list)


event_batches = st.tuples(uint.map(lambda n: n // 2), st.integers(1, 5)).flatmap(
    lambda t: events(t[0], t[1]).map(lambda evs: EventBatch(first_seq=t[0], events=evs))
)

limits = st.builds(
    Limits,
    max_frame_bytes=st.integers(1024, MAX_FRAME_BYTES),
    max_batch_events=st.integers(1, MAX_BATCH_EVENTS),
    window=st.integers(1, 256),
    heartbeat_seconds=st.floats(0.05, 3600.0),
    command_concurrency=st.integers(1, 1000),
)

hellos = st.builds(
    Hello,
    protocol_version=st.just(PROTOCOL_VERSION),
    agent_instance=text,
    app=text,
    host=text,
    pid=st.integers(0, 2**31),
    agent_version=text,
    engines=st.lists(
        st.builds(
            EngineInfo,
            name=text,
            version=text,
            capabilities=st.lists(st.sampled_from(Capability), unique=True),
            actions=st.lists(st.text(max_size=20), max_size=5),
        ),
        max_size=3,
    ),
    labels=short_dict,
    nonce=st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES),
)

welcomes = st.builds(
    Welcome,
    protocol_version=st.just(PROTOCOL_VERSION),
    session_id=st.binary(min_size=16, max_size=16).map(bytes.hex),
    nonce=st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES),
    limits=limits,
    brain_version=text,
    features=st.lists(text, max_size=3),
)

inventories = st.builds(
    Inventory,
    engine=text,
    app=text,
    tasks=st.lists(st.builds(TaskInfo, name=text, queue=opt_text, options=short_dict), max_size=3),
    schedules=st.lists(
        st.builds(
            ObservedSchedule,
            source=text,
            name=text,
            task=text,
            kind=text,
            expression=text,
            next_runs=st.lists(finite, max_size=3),
            read_only=st.booleans(),
        ),
        max_size=3,
    ),
    queues=st.lists(text, max_size=3),
    workers=st.lists(text, max_size=3),
)


def _command(kind: CommandKind, fire_id: str, schedule_id: str, slot: str, **kw: Any) -> Command:
    if kind is CommandKind.ENQUEUE:
        return Command(kind=kind, **kw)
    if kind is CommandKind.TRIGGER_NOW:
        return Command(kind=kind, fire_id=fire_id, schedule_id=schedule_id, **kw)
    return Command(kind=kind, fire_id=fire_id, schedule_id=schedule_id, slot=slot, **kw)


nonempty = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
commands = st.builds(
    _command,
    kind=st.sampled_from(CommandKind),
    fire_id=nonempty,
    schedule_id=nonempty,
    slot=nonempty,
    command_id=text,
    deadline_seconds=durations,
    engine=text,
    app=text,
    task=text,
    args=st.lists(json_value, max_size=3),
    kwargs=st.dictionaries(text, json_value, max_size=3),
    options=st.builds(
        CommandOptions,
        queue=opt_text,
        priority=st.none() | st.integers(-(2**31), 2**31),
        delay_seconds=st.none() | durations,
        expires_seconds=st.none() | durations,
        headers=short_dict,
    ),
)

results = st.builds(
    CommandResult,
    command_id=text,
    status=st.sampled_from(CommandStatus),
    native_id=opt_text,
    reason=text,
    count=st.none() | uint,
)


def _action(action: ActionKind, task_id: str, queue: str, **kw: Any) -> Action:
    if action is ActionKind.PURGE:
        return Action(action=action, queue=queue, **kw)
    return Action(action=action, task_id=task_id, **kw)


actions = st.builds(
    _action,
    action=st.sampled_from(ActionKind),
    task_id=nonempty,
    queue=nonempty,
    command_id=text,
    deadline_seconds=durations,
    engine=text,
    app=text,
    task=opt_text,
    terminate=st.booleans(),
    force=st.booleans(),
    new_task_id=opt_text,
)
queue_reports = st.builds(
    QueueReport,
    engine=text,
    app=text,
    queues=st.lists(
        st.builds(
            QueueDepth,
            name=st.text(max_size=50),
            ready=uint,
            scheduled=st.none() | uint,
            running=st.none() | uint,
            failed=st.none() | uint,
        ),
        max_size=4,
    ),
)
acks = st.builds(Ack, up_to_seq=uint)
dropped = st.builds(DroppedReport, total=uint, reason=text)
pings = st.builds(Ping, id=uint)
pongs = st.builds(Pong, id=uint)
errors = st.builds(Error, code=st.integers(1000, 4999), message=text, fatal=st.booleans())
closes = st.builds(Close, code=st.integers(1000, 4999), reason=text)

#: One strategy per frame class; a test checks this covers the whole union.
FRAME_STRATEGIES: dict[type[Frame], st.SearchStrategy[Any]] = {
    Hello: hellos,
    Welcome: welcomes,
    EventBatch: event_batches,
    Ack: acks,
    DroppedReport: dropped,
    Inventory: inventories,
    Command: commands,
    CommandResult: results,
    Ping: pings,
    Pong: pongs,
    Error: errors,
    Close: closes,
    Action: actions,
    QueueReport: queue_reports,
}
any_frame: st.SearchStrategy[Frame] = st.one_of(*FRAME_STRATEGIES.values())


def make_hello(**overrides: Any) -> Hello:
    fields: dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION,
        "agent_instance": "agent-1",
        "app": "billing",
        "host": "worker-7",
        "pid": 4242,
        "agent_version": "2.0.0.dev0",
        "engines": [
            EngineInfo(
                name="celery", version="5.4.0", capabilities=[Capability.ENQUEUE, Capability.FIRE]
            )
        ],
        "labels": {"region": "eu"},
    }
    fields.update(overrides)
    return Hello(**fields)


def make_events(first_seq: int, count: int) -> list[Event]:
    return [
        Event(
            seq=first_seq + i,
            kind=LifecycleKind.SUCCEEDED,
            at=1_750_000_000.0 + i,
            engine="celery",
            task_id=f"task-{first_seq + i}",
            task_name="billing.tasks.send_invoice",
            args="('cus_1', 42)",
            runtime=0.01,
        )
        for i in range(count)
    ]


def batch(first_seq: int, count: int = 1) -> EventBatch:
    return EventBatch(first_seq=first_seq, events=make_events(first_seq, count))


class SessionPair:
    """An agent and a brain session joined in memory; ``now`` is a fake monotonic clock."""

    def __init__(
        self,
        limits: Limits | None = None,
        token: str = TOKEN,
        brain_token: str | None = None,
        hello: Hello | None = None,
        features: tuple[str, ...] = (),
    ) -> None:
        self.now = 0.0
        self.agent = AgentSession(token, hello or make_hello())
        self.brain = BrainSession(token_hash(brain_token or token), limits, features=features)

    def handshake(self) -> None:
        (hello,) = self.brain.receive(self.agent.start(self.now), self.now)
        assert isinstance(hello, Hello)
        (welcome,) = self.agent.receive(self.brain.accept(self.now), self.now)
        assert isinstance(welcome, Welcome)

    def agent_to_brain(self, frame: Frame) -> list[Frame]:
        return self.brain.receive(self.agent.send(frame, self.now), self.now)

    def brain_to_agent(self, frame: Frame) -> list[Frame]:
        return self.agent.receive(self.brain.send(frame, self.now), self.now)


def forge(session: AgentSession | BrainSession, frame: Frame) -> bytes:
    """Sign ``frame`` as ``session`` would, skipping every local check: a misbehaving peer."""
    from z4j_core.wire.codec import encode_frame

    data = seal(session._key, session.side, session._send_seq, encode_frame(frame))
    session._send_seq += 1
    return data
