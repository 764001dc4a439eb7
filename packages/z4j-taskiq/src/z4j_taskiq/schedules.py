"""Observing taskiq's schedule sources, read-only: what they hold, and their next runs.

Next runs are computed the way taskiq's scheduler fires: every second it matches the current
minute's wall clock with `pycron`, in UTC, shifted by a `cron_offset` timedelta or read in a
`cron_offset` zone (so after a fall-back both occurrences of a matching time fire, and a time
skipped by spring-forward never does; the day fields are ORed only when neither contains `*`);
a `time` fires once; an `interval` fires at the scheduler's start and then every interval, so
only the scheduler's own process knows its runs.

Reads the `schedule` labels of the broker's tasks (what `LabelScheduleSource` serves, so in
every process) and taskiq-redis's `ListRedisScheduleSource` and `RedisScheduleSource`, with a
synchronous client of its own (never the source's pool, nor its `get_schedules`, which changes
the source's state), decoded with the source's own serializer. Never writes. Cluster and
Sentinel sources are not read.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.adapter import NEXT_RUNS, fixed_offset_zone, native_definition
from z4j_core.scheduling.cron import compile_cron
from z4j_core.wire import ObservedSchedule

log = logging.getLogger("z4j.taskiq")

SOURCE_LABELS = "taskiq_labels"
SOURCE_REDIS_LIST = "taskiq_redis_list"
SOURCE_REDIS = "taskiq_redis"
MAX_REDIS_SCHEDULES = 10_000
_UTC = datetime.timezone.utc
_WALL_EPOCH = datetime.datetime(1970, 1, 1)


# -- pure: next runs ---------------------------------------------------------------------------


def offset_zone(offset: Any) -> datetime.tzinfo:
    """The clock taskiq reads a cron in: UTC, UTC shifted by a timedelta, or an IANA zone."""
    if not offset:
        return _UTC
    if isinstance(offset, datetime.timedelta):
        return datetime.timezone(offset)
    return ZoneInfo(str(offset))


def _wall(ts: float, zone: datetime.tzinfo) -> float:
    """`zone`'s wall clock at instant `ts`, in seconds since 1970-01-01T00:00 on that clock."""
    return (
        datetime.datetime.fromtimestamp(ts, zone).replace(tzinfo=None) - _WALL_EPOCH
    ).total_seconds()


def next_cron_runs(cron: str, offset: Any, after: float, count: int = NEXT_RUNS) -> list[float]:
    """The next `count` instants strictly after `after` (epoch seconds) taskiq fires `cron`."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"taskiq crons have five fields, not {len(fields)}: {cron!r}")
    rule = compile_cron(cron, day_and="*" in fields[2] or "*" in fields[4])
    zone = offset_zone(offset)
    # Start two hours early: an instant after `after` can have an earlier wall time (a fall-back).
    wall = rule.next_wall(math.floor(_wall(after, zone)) - 7200)
    found: set[float] = set()
    while wall is not None:
        naive = _WALL_EPOCH + datetime.timedelta(seconds=wall)
        for fold in (0, 1):
            ts = naive.replace(tzinfo=zone, fold=fold).timestamp()
            # A wall time skipped by a gap maps to another wall time: taskiq never sees it.
            if ts > after and _wall(ts, zone) == wall:
                found.add(ts)
        if len(found) >= count and wall - 7200 > _wall(sorted(found)[count - 1], zone):
            break
        wall = rule.next_wall(wall + 1)
    return sorted(found)[:count]


def describe_offset(offset: Any) -> str:
    """`UTC+05:30` for a timedelta (within a day, as `datetime.timezone` takes), else the zone."""
    if isinstance(offset, datetime.timedelta) and abs(offset) < datetime.timedelta(days=1):
        return datetime.timezone(offset).tzname(None)
    return str(offset)


def observed(
    source: str, name: str, task: str, *, now: float, anchor: float | None = None, **entry: Any
) -> ObservedSchedule:
    """One schedule as the inventory shows it, from its `cron`, `cron_offset`, `at` (taskiq's
    `time`), `interval`, `args`, `kwargs` and `labels` (taskiq checks cron, then interval, then
    time), with what `z4j schedules adopt` needs, or why it cannot adopt it."""
    cron, offset, interval, at = (entry.get(k) for k in ("cron", "cron_offset", "interval", "at"))
    runs: list[float] = []
    timing: dict[str, Any] = {}
    zone: str | None = "UTC"
    refused = "it has no cron, interval or time"
    if cron:
        kind, expression = "cron", cron + (f" ({describe_offset(offset)})" if offset else "")
        try:
            runs = next_cron_runs(cron, offset, now)
        except Exception as exc:
            expression += f" [unreadable: {exc}]"[:120]
        if isinstance(offset, datetime.timedelta):
            zone = fixed_offset_zone(offset)
        elif offset:
            zone = str(offset)
        fields = cron.split()
        if len(fields) != 5:
            refused = f"taskiq crons have five fields: {cron!r}"
        elif zone is None:
            refused = (
                f"its cron_offset {describe_offset(offset)} is not a whole number of hours: "
                "z4j reads crons in IANA zones"
            )
        else:
            timing = {"cron": cron, "day_and": "*" in fields[2] or "*" in fields[4]}
    elif interval is not None:
        seconds = int(
            interval.total_seconds() if isinstance(interval, datetime.timedelta) else interval
        )
        kind, expression = "interval", f"every {seconds}s"
        if anchor is not None and seconds > 0:  # the scheduler's start, known only there
            k = max(0, math.floor((now - anchor) / seconds) + 1)
            runs = [anchor + (k + i) * seconds for i in range(NEXT_RUNS)]
        timing = {"every": float(seconds), "anchor": anchor}
    elif at is not None:
        moment = datetime.datetime.fromisoformat(at) if isinstance(at, str) else at
        if moment.tzinfo is None:  # taskiq reads a naive `time` as UTC
            moment = moment.replace(tzinfo=_UTC)
        epoch = moment.timestamp()
        kind, expression = "oneshot", f"at {moment.astimezone(_UTC).isoformat()}"
        runs, timing = [epoch] if epoch > now else [], {"at": epoch}
    else:
        kind, expression = "unknown", "no cron, interval or time"
    definition: dict[str, Any] = {"refused": refused}
    try:
        if timing:
            extra = {k: v for k, v in dict(entry.get("labels") or {}).items() if k != "schedule"}
            unsupported = [f"labels {extra!r}"[:80]] if extra else ()
            args, kwargs = entry.get("args"), entry.get("kwargs")
            definition = native_definition(
                timing, timezone=zone, args=args, kwargs=kwargs, unsupported=unsupported
            )
    except Exception as exc:
        definition = {"refused": f"z4j could not read it: {exc}"[:200]}
    return ObservedSchedule(
        source=source,
        name=name,
        task=task,
        kind=kind,
        expression=expression,
        next_runs=runs,
        definition=definition,
    )


def _fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule label's entry, or a stored `ScheduledTask`'s fields, as `observed` keywords."""
    keys = ("cron", "cron_offset", "time", "interval", "args", "kwargs", "labels")
    return {"at" if key == "time" else key: entry.get(key) for key in keys}


# -- reading sources ---------------------------------------------------------------------------


def label_schedules(broker: Any, now: float, anchor: float | None) -> list[ObservedSchedule]:
    """The `schedule` labels of the broker's tasks (what `LabelScheduleSource` serves)."""
    found = []
    for name, task in sorted(broker.get_all_tasks().items()):
        for index, entry in enumerate((getattr(task, "labels", {}) or {}).get("schedule") or []):
            if isinstance(entry, Mapping) and {"cron", "interval", "time"} & entry.keys():
                label = str(entry.get("schedule_id") or f"{name}[{index}]")
                fields = _fields(entry)
                found.append(observed(SOURCE_LABELS, label, name, now=now, anchor=anchor, **fields))
    return found


def sync_client(pool: Any) -> Any:
    """A synchronous Redis client to the server the source's async pool points at."""
    import redis
    import redis.connection

    kwargs = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    kwargs.update(getattr(pool, "connection_kwargs", {}))
    name = getattr(getattr(pool, "connection_class", None), "__name__", "Connection")
    kwargs["connection_class"] = getattr(redis.connection, name, redis.connection.Connection)
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))


def redis_schedules(source: Any, kind: str) -> list[Any]:
    """Every schedule a taskiq-redis source holds (at most `MAX_REDIS_SCHEDULES`), decoded with
    its own serializer. A `ListRedisScheduleSource` lists ids in its cron and interval lists and
    every time list (`<prefix>:time:<minute>`), data at `<prefix>:data:<id>`; a
    `RedisScheduleSource` keeps each at `<prefix>:<id>`, beside keys that are not schedules."""
    from taskiq.scheduler.scheduled_task import ScheduledTask

    listed = kind == SOURCE_REDIS_LIST
    if listed:
        prefix, serializer, pool = source._prefix, source._serializer, source._connection_pool
    else:
        prefix, serializer, pool = source.prefix, source.serializer, source.connection_pool
    with sync_client(pool) as client:
        if listed:
            times = client.scan_iter(f"{prefix}:time:*", count=500)
            lists = [f"{prefix}:cron", f"{prefix}:interval", *times]
            ids = dict.fromkeys(i for key in lists for i in client.lrange(key, 0, -1))
            keys = [f"{prefix}:data:{i.decode()}" for i in ids]
        else:
            keys = list(client.scan_iter(f"{prefix}:*", count=500))
        keys = keys[:MAX_REDIS_SCHEDULES]
        raw = [
            v for start in range(0, len(keys), 500) for v in client.mget(keys[start : start + 500])
        ]
    decoded = []
    for item in filter(None, raw):
        try:
            decoded.append(ScheduledTask.model_validate(serializer.loadb(item)))
        except Exception:
            if listed:  # every key read is a schedule's: the source itself is unreadable
                raise
    return decoded


def source_kind(source: Any) -> str | None:
    name = type(source).__name__
    if name == "LabelScheduleSource":
        return SOURCE_LABELS
    if name == "ListRedisScheduleSource" and hasattr(source, "_connection_pool"):
        return SOURCE_REDIS_LIST
    if name == "RedisScheduleSource" and hasattr(source, "connection_pool"):
        return SOURCE_REDIS
    return None


def observe(adapter: Any, now: float | None = None) -> list[ObservedSchedule]:
    """Every schedule the adapter can see, with its expression and next run times."""
    now = time.time() if now is None else now
    broker = adapter.broker
    # Interval runs are anchored at the scheduler's start, known only in the scheduler's process.
    anchor = adapter.started_at if getattr(broker, "is_scheduler_process", False) else None
    result = label_schedules(broker, now, anchor)
    label_brokers = {id(broker)}
    for source in {id(source): source for source in adapter.sources}.values():
        kind = source_kind(source)
        try:
            if kind == SOURCE_LABELS:
                other = getattr(source, "broker", None)
                if other is not None and id(other) not in label_brokers:
                    label_brokers.add(id(other))
                    result.extend(label_schedules(other, now, anchor))
            elif kind is not None:
                for item in redis_schedules(source, kind):
                    name, task = str(item.schedule_id), str(item.task_name)
                    fields = _fields(vars(item))
                    result.append(observed(kind, name, task, now=now, anchor=anchor, **fields))
            else:
                log.debug("z4j cannot read schedule source %s", type(source).__name__)
        except Exception:
            log.warning(
                "z4j could not read schedule source %s", type(source).__name__, exc_info=True
            )
    return result
