"""Unit tests of the arq adapter: cron rendering and next runs against arq's own arithmetic,
settings instrumentation (the user's hooks still run), enqueue decisions, and the capture's
enqueue wrapper and outcome classification on real Redis where it talks to Redis."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from arq import Retry, cron
from arq.worker import Worker, create_worker, get_kwargs

import z4j_arq
from z4j_arq import capture, enqueue, schedules, worker
from z4j_arq.adapter import ArqAdapter
from z4j_core.plugins import load_adapters
from z4j_core.wire import Command, CommandKind, CommandOptions, CommandStatus, LifecycleKind

UTC = datetime.timezone.utc


async def job_a(ctx: dict[str, Any]) -> None:
    pass


async def job_b(ctx: dict[str, Any], x: int) -> int:
    return x


# -- observed cron jobs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expression"),
    [
        ({}, "* * * * *"),
        ({"minute": {0, 15, 30, 45}, "hour": set(range(9, 18))}, "*/15 9-17 * * *"),
        ({"weekday": "mon", "hour": 3, "minute": 0}, "0 3 * * 1"),
        ({"weekday": {5, 6}, "minute": 5}, "5 * * * 0,6"),  # sat, sun: cron's 6 and 0
        ({"day": 1, "month": {1, 4}, "hour": 0, "minute": 0}, "0 0 1 1,4 *"),
        ({"day": 1, "month": {1, 7}, "hour": 0, "minute": 0}, "0 0 1 */6 *"),
        ({"minute": 7, "second": 30}, "7 * * * * 30"),
        ({"second": set(range(0, 60, 2))}, "* * * * * */2"),
    ],
)
def test_cron_jobs_render_as_cron_fields(options: dict[str, Any], expression: str) -> None:
    assert schedules.cron_expression(cron(job_a, **options)) == expression


@pytest.mark.parametrize(
    "options",
    [
        {"minute": {0, 30}},
        {"hour": 3, "minute": 0, "weekday": "fri"},
        {"day": 31, "hour": 12, "minute": 0},
        {"second": {10, 40}},
        {"minute": 0, "microsecond": 0},
    ],
)
def test_next_runs_follow_arq_including_its_microsecond_offset(options: dict[str, Any]) -> None:
    now = datetime.datetime(2026, 1, 30, 23, 59, 58, 500_000, tzinfo=UTC)
    job = cron(job_a, **options)
    runs = schedules.next_runs(job, now, count=4)
    # arq's own worker arithmetic: calculate_next from now, then from each run
    expected = []
    job.calculate_next(now)
    for _ in range(4):
        assert job.next_run is not None
        expected.append(job.next_run)
        job.calculate_next(job.next_run)
    assert runs == expected
    assert runs[0].microsecond == options.get("microsecond", 123_456)


def test_observe_reports_each_cron_job_read_only_with_its_zone() -> None:
    jobs = [cron(job_a, hour=3, minute=0), cron(job_b, name="nightly", minute=0, hour=1)]
    now = datetime.datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    observed = schedules.observe(jobs, ZoneInfo("Europe/Berlin"), now)
    assert [s.name for s in observed] == ["cron:job_a", "nightly"]
    first = observed[0]
    assert first.expression == "0 3 * * * (Europe/Berlin)" and first.read_only
    assert first.source == "arq_cron" and len(first.next_runs) == schedules.NEXT_RUNS
    assert (
        first.next_runs[0]
        == datetime.datetime(
            2026, 3, 29, 3, 0, 0, 123_456, tzinfo=ZoneInfo("Europe/Berlin")
        ).timestamp()
    )
    assert schedules.observe(jobs, UTC, now)[0].expression == "0 3 * * *"


# -- settings --------------------------------------------------------------------------------


def test_instrumented_settings_keep_every_setting_and_run_the_users_hooks() -> None:
    calls: list[str] = []

    async def startup(ctx: dict[str, Any]) -> None:
        calls.append("startup")

    async def job_start(ctx: dict[str, Any]) -> None:
        calls.append(f"job_start {ctx['job_id']}")

    class Settings:
        functions = [job_a, job_b]
        cron_jobs = [cron(job_a, hour=1, minute=0)]
        queue_name = "billing"
        max_jobs = 3
        on_startup = startup
        on_job_start = staticmethod(job_start)

    instrumented = z4j_arq.instrument(Settings, start=False, brain_url="ws://127.0.0.1:9")
    assert issubclass(instrumented, Settings) and instrumented.__name__ == "Settings"
    kwargs = get_kwargs(instrumented)
    assert kwargs["functions"] == [job_a, job_b] and kwargs["max_jobs"] == 3
    assert kwargs["on_startup"] is not startup and kwargs["job_deserializer"] is not None
    assert z4j_arq.instrument(instrumented) is instrumented  # once is enough
    assert z4j_arq.agent_of(instrumented) is not None

    async def run_hooks() -> None:
        await kwargs["on_job_start"]({"job_id": "j1", "job_try": 1})
        await kwargs["after_job_end"]({"job_id": "j1"})

    asyncio.run(run_hooks())
    assert calls == ["job_start j1"]
    adapter = instrumented._z4j_adapter
    assert adapter.queue == "billing"
    assert sorted(adapter.functions) == ["cron:job_a", "job_a", "job_b"]
    assert adapter.knows("job_b", "billing") is True
    assert adapter.knows("nope", "billing") is False
    assert adapter.knows("nope", "other") is None  # another queue: another worker may have it


def test_dict_settings_are_returned_as_a_new_dict() -> None:
    settings = {"functions": [job_a], "on_shutdown": None}
    instrumented = z4j_arq.instrument(settings, start=False)
    assert instrumented is not settings and "on_startup" not in settings
    assert callable(instrumented["on_shutdown"]) and callable(instrumented["on_startup"])


def test_instrument_refuses_what_is_not_arq() -> None:
    with pytest.raises(TypeError, match="needs arq worker settings"):
        z4j_arq.instrument(object())


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's own call
def test_the_worker_is_found_from_its_startup_hook(redis_url: str) -> None:
    from arq.connections import RedisSettings

    found: list[Any] = []

    async def startup(ctx: dict[str, Any]) -> None:
        found.append(worker.find_worker())

    async def main() -> None:
        w = create_worker(
            {"functions": [job_a], "redis_settings": RedisSettings.from_dsn(redis_url)},
            burst=True,
            on_startup=startup,
            handle_signals=False,
        )
        await w.async_run()
        await w.close()
        assert found == [w] and isinstance(found[0], Worker)

    asyncio.run(main())


# -- capture ---------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, str, str, dict[str, Any]]] = []

    def __call__(self, kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
        self.events.append((kind, task_id, task_name, fields))


def test_the_pool_reports_enqueues_and_nothing_for_a_duplicate(redis_url: str) -> None:
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    emit = Recorder()

    async def main() -> None:
        pool = ArqRedis(ConnectionPool.from_url(redis_url), default_queue_name="q-units")
        try:
            adapter = ArqAdapter.create(pool, {})
            assert adapter is not None
            capture.install(adapter, emit)
            job = await pool.enqueue_job("job_b", 1, _job_id="u-1", x=2)
            assert job is not None and job.job_id == "u-1"
            assert await pool.enqueue_job("job_b", 1, _job_id="u-1") is None
            later = await pool.enqueue_job("job_a", _defer_by=60)
            assert later is not None
            adapter.uninstall_capture()
            assert "enqueue_job" not in vars(pool)
        finally:
            await pool.aclose(close_connection_pool=True)

    asyncio.run(main())
    kinds = [(e[0], e[1], e[2]) for e in emit.events]
    assert kinds[0] == (LifecycleKind.ENQUEUED, "u-1", "job_b")
    assert emit.events[0][3]["args"] == (1,) and emit.events[0][3]["kwargs"] == {"x": 2}
    assert emit.events[0][3]["queue"] == "q-units"
    assert len(kinds) == 2 and kinds[1][0] is LifecycleKind.SCHEDULED, kinds
    assert "eta" in emit.events[1][3]["extra"]


def _ended(exc: BaseException | None, *, aborting: bool = False, retry_jobs: bool = True) -> Any:
    """Run JobCapture's outcome classification as arq's run_job would reach it."""
    emit = Recorder()
    job_capture = capture.JobCapture(ArqAdapter(settings={"functions": [job_a]}), emit)
    fake_worker = type(
        "W", (), {"retry_jobs": retry_jobs, "aborting_tasks": {"j"} if aborting else set()}
    )
    tasks = capture.JobTasks(job_capture, fake_worker, {})

    async def run_job() -> None:
        capture._decoded.set({"f": "job_a", "a": (1,), "k": {}, "t": 1})
        job_capture.on_job_start({"job_id": "j", "job_try": 2})
        tasks["j"] = object()
        try:
            try:
                if exc is not None:
                    raise exc
            finally:
                del tasks["j"]
        except BaseException:
            pass
        job_capture.after_job_end({"job_id": "j"})

    asyncio.run(run_job())
    assert emit.events[0][0] is LifecycleKind.STARTED and emit.events[0][3]["retries"] == 1
    return emit.events[-1]


def test_outcomes_are_classified_as_arq_decides_them() -> None:
    kind, job_id, name, fields = _ended(None)
    assert (kind, job_id, name) == (LifecycleKind.SUCCEEDED, "j", "job_a")
    assert fields["runtime"] >= 0
    kind, _, _, fields = _ended(Retry(defer=5))
    assert kind is LifecycleKind.RETRIED and fields["extra"] == {"defer_seconds": 5.0}
    assert fields["retries"] == 2
    kind, _, _, fields = _ended(asyncio.CancelledError(), aborting=True)
    assert kind is LifecycleKind.CANCELLED and fields["exception"] == "arq.aborted"
    kind, _, _, fields = _ended(asyncio.CancelledError())
    assert kind is LifecycleKind.RETRIED  # arq runs a cancelled job again
    kind, _, _, fields = _ended(Retry(), retry_jobs=False)
    assert kind is LifecycleKind.FAILED and fields["exception"] == "arq.worker.Retry"
    kind, _, _, fields = _ended(ValueError("bad"))
    assert kind is LifecycleKind.FAILED and fields["message"] == "bad"
    assert "raise exc" in fields["traceback"]


def test_a_fault_in_emit_never_escapes_a_hook() -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("emit broke")

    job_capture = capture.JobCapture(ArqAdapter(settings={"functions": [job_a]}), broken)
    job_capture.on_job_start({"job_id": "j", "job_try": 1})
    job_capture.after_job_end({"job_id": "j"})
    assert job_capture.errors == 1
    serialize = job_capture.wrap_serializer(None)
    # a job that ends before it starts (no `on_job_start` in its context)
    assert contextvars.Context().run(serialize, {"s": False, "r": ValueError(), "id": "x"})
    assert job_capture.errors == 2


# -- enqueue ---------------------------------------------------------------------------------


def _command(task: str, **fields: Any) -> Command:
    return Command(
        command_id=uuid.uuid4().hex,
        kind=CommandKind.ENQUEUE,
        deadline_seconds=10,
        engine="arq",
        app="units",
        task=task,
        **fields,
    )


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (_command("missing"), "unknown function 'missing'"),
        (_command("job_a", options=CommandOptions(priority=5)), "no job priority"),
        (_command("job_a", kwargs={"_job_id": "x"}), "_job_id"),
        (
            _command("job_a", options=CommandOptions(delay_seconds=10, expires_seconds=5)),
            "before its 10",
        ),
    ],
)
def test_enqueue_rejects_what_arq_cannot_honour(command: Command, reason: str) -> None:
    adapter = ArqAdapter(settings={"functions": [job_a]})
    result = enqueue.enqueue(adapter, command)
    assert result.status is CommandStatus.REJECTED and reason in (result.reason or ""), result


def test_enqueue_uses_the_fire_id_as_job_id_and_maps_a_repeat_to_duplicate(
    redis_url: str,
) -> None:
    from arq.connections import RedisSettings

    settings = {"functions": [job_b], "redis_settings": RedisSettings.from_dsn(redis_url)}
    adapter = ArqAdapter(settings=settings)
    emit = Recorder()
    capture.install(adapter, emit)
    fire_id = f"fire-{uuid.uuid4().hex[:8]}"
    command = _command(
        "job_b",
        kwargs={"x": 3},
        options=CommandOptions(delay_seconds=30, expires_seconds=60),
    )
    fire = Command(**{**{f: getattr(command, f) for f in command.__struct_fields__},
                      "kind": CommandKind.TRIGGER_NOW, "fire_id": fire_id,
                      "schedule_id": "s"})  # fmt: skip
    first = adapter.enqueue(fire)
    assert first is not None and first.status is CommandStatus.ENQUEUED
    assert first.native_id == fire_id
    second = enqueue.enqueue(adapter, fire)
    assert second.status is CommandStatus.DUPLICATE and second.native_id == fire_id
    assert [e[0] for e in emit.events] == [LifecycleKind.SCHEDULED]  # none for the duplicate
    assert emit.events[0][3]["fire_id"] == fire_id

    from redis import Redis

    client = Redis.from_url(redis_url)
    ttl = client.pttl(f"arq:job:{fire_id}")
    assert 55_000 < ttl <= 60_000, ttl  # _expires
    score = client.zscore("arq:queue", fire_id)
    assert score is not None and score > (datetime.datetime.now().timestamp() + 25) * 1000


@pytest.mark.parametrize(
    "options", [{}, {"_defer_by": 30}, {"_expires": 60}, {"_defer_by": 30, "_expires": 90}]
)
def test_our_one_round_trip_enqueue_writes_what_arqs_enqueue_job_writes(
    redis_url: str, options: dict[str, Any]
) -> None:
    from arq.connections import ArqRedis
    from arq.constants import job_key_prefix, result_key_prefix
    from redis.asyncio import ConnectionPool

    run = uuid.uuid4().hex[:8]
    mine_id, arqs_id, ended, queue = f"ours-{run}", f"arqs-{run}", f"ended-{run}", f"q-{run}"

    async def main() -> None:
        pool = ArqRedis(ConnectionPool.from_url(redis_url), default_queue_name=queue)
        try:
            ours = await enqueue.enqueue_job(
                pool, "job_b", 1, _job_id=mine_id, _queue_name=queue, x=2, **options
            )
            theirs = await pool.enqueue_job(
                "job_b", 1, _job_id=arqs_id, _queue_name=queue, x=2, **options
            )
            assert ours is not None and theirs is not None and ours.job_id == mine_id
            mine, arqs = await ours.info(), await theirs.info()
            assert mine is not None and arqs is not None
            assert (mine.function, mine.args, mine.kwargs, mine.job_try) == (
                arqs.function, arqs.args, arqs.kwargs, arqs.job_try
            )  # fmt: skip
            assert abs((mine.enqueue_time - arqs.enqueue_time).total_seconds()) < 2
            delay = [job.score - job.enqueue_time.timestamp() * 1000 for job in (mine, arqs)]
            assert abs(delay[0] - delay[1]) < 50, delay  # the same deferral
            ttls = [await pool.pttl(job_key_prefix + name) for name in (mine_id, arqs_id)]
            assert abs(ttls[0] - ttls[1]) < 2000, ttls  # the same expiry
            # A taken id is refused by both, whichever wrote it; so is one with a kept result.
            assert await enqueue.enqueue_job(pool, "job_a", _job_id=arqs_id,
                                             _queue_name=queue) is None  # fmt: skip
            assert await pool.enqueue_job("job_a", _job_id=mine_id) is None
            await pool.set(result_key_prefix + ended, b"kept")
            assert await enqueue.enqueue_job(pool, "job_a", _job_id=ended,
                                             _queue_name=queue) is None  # fmt: skip
            assert await pool.zcard(queue) == 2
        finally:
            await pool.aclose(close_connection_pool=True)

    asyncio.run(main())


def test_commands_share_the_connections_kept_on_the_private_loop(redis_url: str) -> None:
    """Forty commands from eight command threads: one pool, opened once on the adapter's
    private loop, and its blocking twin the commands write on, a few connections to Redis (not
    one opened and closed per command)."""
    from arq.connections import RedisSettings
    from redis import Redis

    settings = {"functions": [job_b], "redis_settings": RedisSettings.from_dsn(redis_url)}
    adapter = ArqAdapter(settings=settings)
    server = Redis.from_url(redis_url)
    accepted_before = server.info("stats")["total_connections_received"]
    with concurrent.futures.ThreadPoolExecutor(8) as threads:
        results = list(threads.map(adapter.enqueue, [_command("job_b") for _ in range(40)]))
    accepted = server.info("stats")["total_connections_received"] - accepted_before
    assert [r.status for r in results] == [CommandStatus.ENQUEUED] * 40, results
    assert accepted <= 10, f"{accepted} connections for 40 commands"
    pool = adapter.private_loop.run(enqueue.own_pool(adapter), 10)
    assert adapter.private_loop.run(enqueue.own_pool(adapter), 10) is pool
    direct = adapter.enqueuer.direct(adapter)
    assert direct is not None and direct[0] is pool  # written from the command threads
    adapter.uninstall_capture()
    server.delete("arq:queue", *(f"arq:job:{r.native_id}" for r in results))


def test_a_pool_the_blocking_twin_cannot_mirror_enqueues_through_the_private_loop(
    redis_url: str,
) -> None:
    from arq.connections import ArqRedis
    from redis import Redis
    from redis.asyncio import Connection, ConnectionPool

    class Traced(Connection):  # a connection class of the app's own: no blocking twin
        pass

    queue = f"q-{uuid.uuid4().hex[:8]}"
    producer = ArqRedis(
        ConnectionPool.from_url(redis_url, connection_class=Traced), default_queue_name=queue
    )
    adapter = ArqAdapter.create(producer, {})
    assert adapter is not None
    emit = Recorder()
    capture.install(adapter, emit)
    first = adapter.enqueue(_command("job_b", kwargs={"x": 1}))
    assert first.status is CommandStatus.ENQUEUED, first
    assert adapter.enqueuer.direct(adapter) is None  # went through the loop
    again = adapter.enqueue(_command("job_b"))
    assert again.status is CommandStatus.ENQUEUED
    assert Redis.from_url(redis_url).zcard(queue) == 2
    assert [e[1] for e in emit.events] == [first.native_id, again.native_id]
    adapter.uninstall_capture()


def test_the_entry_point_names_the_adapter_class_and_it_lists_functions_and_crons() -> None:
    registry = load_adapters()
    assert registry.classes["arq"] is ArqAdapter
    assert ArqAdapter.create(object(), {}) is None
    adapter = ArqAdapter(settings={"functions": [job_a], "cron_jobs": [cron(job_b, minute=0)]})
    tasks = {t.name: t for t in adapter.registered_tasks()}
    assert tasks["cron:job_b"].options["cron"] == "true"
    assert tasks["job_a"].options["function"].endswith("test_arq_units.job_a")
