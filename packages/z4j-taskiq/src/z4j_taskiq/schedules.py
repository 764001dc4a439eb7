"""Observing taskiq's schedule sources, read-only.

Owns reading schedules back into something a person can read, and computing their next runs the
way taskiq's scheduler does: it checks every second of real time and fires a cron schedule when
`pycron` matches the current minute's wall clock in UTC, shifted by a `cron_offset` timedelta or
read in a `cron_offset` zone (so after a fall-back both occurrences of a matching wall time
fire, and a time skipped by spring-forward never fires; day-of-month and day-of-week are ORed
only when neither contains `*`); a `time` schedule fires once; an `interval` schedule fires when
its scheduler starts and then every interval, so its next runs are known only in the scheduler's
own process.

Sources read: schedule labels of the broker's tasks (what `LabelScheduleSource` serves, read from
the tasks, so this works in every process), and taskiq-redis's `ListRedisScheduleSource` and
`RedisScheduleSource`, read with a synchronous client of their own (never the source's pool,
never its `get_schedules`, which changes the source's state) and decoded with the source's own
serializer. Never writes. Cluster and Sentinel sources are not read.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.adapter import fixed_offset_zone, native_definition
from z4j_core.scheduling.cron import compile_cron
from z4j_core.wire import ObservedSchedule

log = logging.getLogger("z4j.taskiq")

SOURCE_LABELS = "taskiq_labels"
SOURCE_REDIS_LIST = "taskiq_redis_list"
SOURCE_REDIS = "taskiq_redis"
NEXT_RUNS = 10
MAX_REDIS_SCHEDULES = 10_000
_UTC = datetime.timezone.utc
_WALL_EPOCH = datetime.datetime(1970, 1, 1)


# -- pure: next runs ---------------------------------------------------------------------------


def offset_zone(offset: Any) -> datetime.tzinfo:
    """The clock taskiq reads a cron in: UTC, UTC shifted by a timedelta, or an IANA zone."""
    if offset is None or offset == "":
        return _UTC
    if isinstance(offset, datetime.timedelta):
        return datetime.timezone(offset)
    return ZoneInfo(str(offset))


def next_cron_runs(cron: str, offset: Any, after: float, count: int = NEXT_RUNS) -> list[float]:
    """The next `count` instants strictly after `after` (epoch seconds) taskiq fires `cron`."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"taskiq crons have five fields, not {len(fields)}: {cron!r}")
    day, weekday = fields[2], fields[4]
    rule = compile_cron(cron, day_and="*" in day or "*" in weekday)
    zone = offset_zone(offset)
    wall_after = datetime.datetime.fromtimestamp(after, zone).replace(tzinfo=None)
    # Start two hours early: an instant after `after` can have an earlier wall time (a fall-back).
    start = math.floor((wall_after - _WALL_EPOCH).total_seconds()) - 7200
    found: set[float] = set()
    wall = rule.next_wall(start)
    while wall is not None:
        naive = _WALL_EPOCH + datetime.timedelta(seconds=wall)
        for fold in (0, 1):
            instant = naive.replace(tzinfo=zone, fold=fold)
            ts = instant.timestamp()
            # A wall time skipped by a gap maps to another wall time: taskiq never sees it.
            if (
                ts > after
                and datetime.datetime.fromtimestamp(ts, zone).replace(tzinfo=None) == naive
            ):
                found.add(ts)
        if len(found) >= count:
            last = sorted(found)[count - 1]
            if (
                wall - 7200
                > (
                    datetime.datetime.fromtimestamp(last, zone).replace(tzinfo=None) - _WALL_EPOCH
                ).total_seconds()
            ):
                break
        wall = rule.next_wall(wall + 1)
    return sorted(found)[:count]


def interval_seconds(interval: Any) -> int:
    if isinstance(interval, datetime.timedelta):
        return int(interval.total_seconds())
    return int(interval)


def next_interval_runs(
    seconds: int, anchor: float | None, after: float, count: int = NEXT_RUNS
) -> list[float]:
    """Runs `anchor + k * seconds` after `after`; none when the anchor is unknown."""
    if anchor is None or seconds <= 0:
        return []
    k = max(0, math.floor((after - anchor) / seconds) + 1)
    return [anchor + (k + i) * seconds for i in range(count)]


def as_epoch(moment: datetime.datetime) -> float:
    """taskiq reads a naive `time` as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.timestamp()


def describe_offset(offset: Any) -> str:
    if isinstance(offset, datetime.timedelta):
        sign = "-" if offset < datetime.timedelta(0) else "+"
        minutes = int(abs(offset.total_seconds()) // 60)
        return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return str(offset)


def zone_of_offset(offset: Any) -> str | None:
    """`cron_offset` as an IANA name: UTC, the zone itself, or `Etc/GMT±N` for a whole-hour
    timedelta; None when it has no such name."""
    if offset is None or offset == "":
        return "UTC"
    if isinstance(offset, datetime.timedelta):
        return fixed_offset_zone(offset)
    return str(offset)


def definition(
    *,
    cron: str | None,
    cron_offset: Any,
    epoch: float | None,
    interval: Any,
    anchor: float | None,
    args: Any,
    kwargs: Any,
    labels: Any,
) -> dict[str, Any]:
    """What `z4j schedules adopt` needs. taskiq matches a cron's day fields with OR only when
    neither contains `*` (else AND), which z4j reads alike when told `day_and` in the AND case."""
    timing: dict[str, Any]
    zone: str | None = "UTC"
    if cron:
        fields = cron.split()
        if len(fields) != 5:
            return {"refused": f"taskiq crons have five fields: {cron!r}"}
        zone = zone_of_offset(cron_offset)
        if zone is None:
            return {"refused": f"its cron_offset {describe_offset(cron_offset)} is not a whole "
                    "number of hours: z4j reads crons in IANA zones"}  # fmt: skip
        timing = {"cron": cron, "day_and": "*" in fields[2] or "*" in fields[4]}
    elif interval is not None:
        timing = {"every": float(interval_seconds(interval)), "anchor": anchor}
    elif epoch is not None:
        timing = {"at": epoch}
    else:
        return {"refused": "it has no cron, interval or time"}
    extra = {k: v for k, v in dict(labels or {}).items() if k != "schedule"}
    return native_definition(
        timing,
        timezone=zone,
        args=args or (),
        kwargs=kwargs or {},
        unsupported=[f"labels {extra!r}"[:80]] if extra else (),
    )


def observed(
    source: str,
    name: str,
    task: str,
    *,
    cron: str | None = None,
    cron_offset: Any = None,
    at: datetime.datetime | str | None = None,
    interval: Any = None,
    now: float,
    anchor: float | None = None,
    args: Any = None,
    kwargs: Any = None,
    labels: Any = None,
) -> ObservedSchedule:
    """One schedule as the inventory shows it (taskiq checks cron, then interval, then time)."""
    epoch = None
    if cron:
        expression = cron + (f" ({describe_offset(cron_offset)})" if cron_offset else "")
        try:
            runs = next_cron_runs(cron, cron_offset, now)
        except Exception as exc:
            expression += f" [unreadable: {exc}]"[:120]
            runs = []
        kind = "cron"
    elif interval is not None:
        seconds = interval_seconds(interval)
        kind, expression = "interval", f"every {seconds}s"
        runs = next_interval_runs(seconds, anchor, now)
    elif at is not None:
        epoch = as_epoch(datetime.datetime.fromisoformat(at) if isinstance(at, str) else at)
        kind = "oneshot"
        expression = f"at {datetime.datetime.fromtimestamp(epoch, _UTC).isoformat()}"
        runs = [epoch] if epoch > now else []
    else:
        kind, expression, runs = "unknown", "no cron, interval or time", []
    try:
        adoptable = definition(
            cron=cron, cron_offset=cron_offset, epoch=epoch,
            interval=interval, anchor=anchor, args=args, kwargs=kwargs, labels=labels,
        )  # fmt: skip
    except Exception as exc:
        adoptable = {"refused": f"z4j could not read it: {exc}"[:200]}
    return ObservedSchedule(
        source=source,
        name=name,
        task=task,
        kind=kind,
        expression=expression,
        next_runs=runs,
        definition=adoptable,
    )


def _from_scheduled(source: str, item: Any, now: float, anchor: float | None) -> ObservedSchedule:
    return observed(
        source,
        str(item.schedule_id),
        str(item.task_name),
        cron=item.cron,
        cron_offset=item.cron_offset,
        at=item.time,
        interval=item.interval,
        now=now,
        anchor=anchor,
        args=getattr(item, "args", None),
        kwargs=getattr(item, "kwargs", None),
        labels=getattr(item, "labels", None),
    )


# -- reading sources ---------------------------------------------------------------------------


def label_schedules(broker: Any, now: float, anchor: float | None) -> list[ObservedSchedule]:
    """The `schedule` labels of the broker's tasks (what `LabelScheduleSource` serves)."""
    found = []
    for task_name, task in sorted(broker.get_all_tasks().items()):
        for index, entry in enumerate((getattr(task, "labels", {}) or {}).get("schedule") or []):
            if not isinstance(entry, Mapping) or not {"cron", "interval", "time"} & entry.keys():
                continue
            found.append(
                observed(
                    SOURCE_LABELS,
                    str(entry.get("schedule_id") or f"{task_name}[{index}]"),
                    task_name,
                    cron=entry.get("cron"),
                    cron_offset=entry.get("cron_offset"),
                    at=entry.get("time"),
                    interval=entry.get("interval"),
                    now=now,
                    anchor=anchor,
                    args=entry.get("args"),
                    kwargs=entry.get("kwargs"),
                    labels=entry.get("labels"),
                )
            )
    return found


def sync_client(pool: Any) -> Any:
    """A synchronous Redis client to the server the source's async pool points at."""
    import redis
    import redis.connection

    kwargs = dict(getattr(pool, "connection_kwargs", {}))
    name = getattr(getattr(pool, "connection_class", None), "__name__", "Connection")
    connection_class = getattr(redis.connection, name, redis.connection.Connection)
    kwargs.setdefault("socket_timeout", 5.0)
    kwargs.setdefault("socket_connect_timeout", 5.0)
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs)
    )


def _mget(client: Any, keys: list[Any]) -> list[Any]:
    """The values of at most `MAX_REDIS_SCHEDULES` keys, 500 per round trip."""
    keys = keys[:MAX_REDIS_SCHEDULES]
    return [v for start in range(0, len(keys), 500) for v in client.mget(keys[start : start + 500])]


def redis_list_schedules(source: Any) -> list[Any]:
    """Every schedule a `ListRedisScheduleSource` holds: its cron and interval lists, and every
    time list (`<prefix>:time:<minute>`), each id's data decoded with the source's serializer."""
    from taskiq.scheduler.scheduled_task import ScheduledTask

    prefix, serializer = source._prefix, source._serializer
    client = sync_client(source._connection_pool)
    try:
        ids: list[bytes] = []
        ids.extend(client.lrange(f"{prefix}:cron", 0, -1))
        ids.extend(client.lrange(f"{prefix}:interval", 0, -1))
        for key in client.scan_iter(f"{prefix}:time:*", count=500):
            ids.extend(client.lrange(key, 0, -1))
        ids = list(dict.fromkeys(ids))[:MAX_REDIS_SCHEDULES]
        raw = _mget(client, [f"{prefix}:data:{i.decode()}" for i in ids])
    finally:
        client.close()
    return [ScheduledTask.model_validate(serializer.loadb(item)) for item in raw if item]


def redis_key_schedules(source: Any) -> list[Any]:
    """Every schedule a `RedisScheduleSource` holds (`<prefix>:<id>`), decoded with its
    serializer (keys under the prefix that are not schedules are skipped)."""
    from taskiq.scheduler.scheduled_task import ScheduledTask

    client = sync_client(source.connection_pool)
    try:
        raw = _mget(client, list(client.scan_iter(f"{source.prefix}:*", count=500)))
    finally:
        client.close()
    decoded = []
    for item in raw:
        if not item:
            continue
        try:
            decoded.append(ScheduledTask.model_validate(source.serializer.loadb(item)))
        except Exception:
            continue  # another kind of key under the same prefix
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
    if now is None:
        now = time.time()
    broker = adapter.broker
    # Interval runs are anchored at the scheduler's start, known only in the scheduler's process.
    anchor = adapter.started_at if getattr(broker, "is_scheduler_process", False) else None
    result = label_schedules(broker, now, anchor)
    label_brokers = {id(broker)}
    for source in _unique(adapter.sources):
        kind = source_kind(source)
        try:
            if kind == SOURCE_LABELS:
                other = getattr(source, "broker", None)
                if other is not None and id(other) not in label_brokers:
                    label_brokers.add(id(other))
                    result.extend(label_schedules(other, now, anchor))
            elif kind == SOURCE_REDIS_LIST:
                result.extend(
                    _from_scheduled(kind, s, now, anchor) for s in redis_list_schedules(source)
                )
            elif kind == SOURCE_REDIS:
                result.extend(
                    _from_scheduled(kind, s, now, anchor) for s in redis_key_schedules(source)
                )
            else:
                log.debug("z4j cannot read schedule source %s", type(source).__name__)
        except Exception:
            log.warning(
                "z4j could not read schedule source %s", type(source).__name__, exc_info=True
            )
    return result


def _unique(sources: Iterable[Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    for source in sources:
        seen.setdefault(id(source), source)
    return list(seen.values())
