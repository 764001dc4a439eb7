"""Adopting a native schedule: an observed one (celery beat, rq, huey, dramatiq, arq, taskiq)
turned into the brain schedule that fires the same task, with the same arguments and queue, at
the same times.

Owns reading an observed schedule's `definition` (built by each adapter with
`z4j_core.adapter.native_definition`, in z4j's cron syntax read with the engine's own day rule
and zone) into a brain schedule, what each native scheduler does differently from z4j (said as
`notes` when it only matters on DST dates, as `differences` when it changes what runs), how to
remove the native twin, and the side-by-side comparison of fire times that the dry run prints.
Pure: the caller passes `now`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.spec import schedule_from_dict
from z4j_core.scheduling.zones import resolve_zone

#: How far apart a brain slot and a native run may be and still be the same fire: arq runs
#: its cron jobs at microsecond 123456 by default, redbeat scores an entry up to a second
#: before it is due (its wake-up, not its run).
SAME_FIRE_SECONDS = 2.0
COMPARE_COUNT = 10
_UTC = timezone.utc

#: Where each source keeps its schedules, and how an operator removes one there.
REMOVE_HINTS: dict[str, str] = {
    "celery_beat": (
        "delete the entry {name!r} from the app's beat_schedule (celery config) and restart "
        "celery beat"
    ),
    "django_celery_beat": (
        "disable or delete the periodic task {name!r} (Django admin > Periodic tasks, or "
        "PeriodicTask.objects.filter(name={name!r}).delete())"
    ),
    "redbeat": (
        "delete the redbeat entry: RedBeatSchedulerEntry.from_key(key_prefix + {name!r}, "
        "app=app).delete(), and remove it from beat_schedule if it is defined there"
    ),
    "rq_cron": (
        "remove the cron.register(...) of {name!r} from the `rq cron` configuration and "
        "restart `rq cron`"
    ),
    "rq_scheduler": "cancel the job: Scheduler(connection=redis).cancel({name!r})",
    "huey_periodic": (
        "turn @periodic_task on {name!r} into @task (or drop it) and restart the consumers"
    ),
    "periodiq": "remove periodic=cron(...) from the actor {name!r} and restart `periodiq`",
    "dramatiq_crontab": (
        "remove the @cron/@interval decorator of {name!r} and restart the crontab command"
    ),
    "arq_cron": "remove cron({name!r}) from WorkerSettings.cron_jobs and restart the arq workers",
    "taskiq_labels": "remove the schedule label from the task {name!r} and restart the scheduler",
    "taskiq_redis_list": "delete it: await source.delete_schedule({name!r})",
    "taskiq_redis": "delete it: await source.delete_schedule({name!r})",
}

#: What each native scheduler does on DST dates that z4j does not (zones with DST only).
DST_NOTES: dict[str, str] = {
    "huey_periodic": (
        "Huey matches the local wall clock each minute: after a fall-back it runs a repeated "
        "time twice, and never runs a time skipped by spring-forward (z4j: once, and at the "
        "end of the gap, for fixed hours)"
    ),
    "taskiq_labels": (
        "taskiq matches the wall clock each minute: both occurrences of a repeated time run, "
        "a skipped one never does (z4j: once, and at the end of the gap, for fixed hours)"
    ),
    "rq_cron": (
        "croniter in the host's zone: a time skipped by spring-forward may run at another "
        "instant than z4j's (the end of the gap)"
    ),
    "celery_beat": (
        "celery beat's crontab may run a time repeated or skipped by DST at another instant "
        "than z4j"
    ),
    "arq_cron": (
        "arq steps its cron in the zone's wall clock: a time repeated or skipped by DST may "
        "run at another instant than z4j's"
    ),
}
DST_NOTES["taskiq_redis"] = DST_NOTES["taskiq_redis_list"] = DST_NOTES["taskiq_labels"]
DST_NOTES["rq_scheduler"] = DST_NOTES["rq_cron"]
DST_NOTES["django_celery_beat"] = DST_NOTES["redbeat"] = DST_NOTES["celery_beat"]
DST_NOTES["periodiq"] = DST_NOTES["dramatiq_crontab"] = (
    "the native scheduler reads the wall clock in its own way: a time repeated or skipped by "
    "DST may run at another instant than z4j's"
)

_OPTIONS = ("queue", "priority", "expires_seconds")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:-]+")


class NotAdoptable(ValueError):
    """An observed schedule that cannot become a brain schedule; the message says why."""


@dataclass(frozen=True)
class Adoption:
    """The brain schedule an observed one becomes, and what differs."""

    source: str
    name: str
    task: str
    schedule: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    #: Where what runs would change: adopt refuses unless told to accept them.
    differences: list[str] = field(default_factory=list)
    #: What to know, that does not change the fires in the compared window.
    notes: list[str] = field(default_factory=list)
    remove: str = ""

    def body(self, name: str, engine: str, app: str, **extra: Any) -> dict[str, Any]:
        """The API's create request."""
        return {
            "name": name,
            "engine": engine,
            "app": app,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "schedule": self.schedule,
            "description": f"adopted from {self.source} {self.name!r}",
            **extra,
        }


def remove_hint(source: str, name: str) -> str:
    hint = REMOVE_HINTS.get(source)
    if hint is None:
        return f"remove {name!r} from {source}"
    return hint.format(name=name)


def schedule_name(observed_name: str) -> str:
    """A brain schedule name for an observed one (characters the brain refuses become '-')."""
    name = _NAME_CHARS.sub("-", observed_name).strip("-._:")[:120]
    return name or "adopted"


def _has_dst(zone_name: str, now: datetime) -> bool:
    zone = resolve_zone(zone_name)
    offsets = {
        datetime(now.year, month, 1, 12, tzinfo=_UTC).astimezone(zone).utcoffset()
        for month in (1, 4, 7, 10)
    }
    return len(offsets) > 1


def adopt(
    observed: Mapping[str, Any],
    now: datetime,
    *,
    tz: str | None = None,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Adoption:
    """The brain schedule for `observed` (an inventory's schedule, with its `definition`).

    `tz` names the zone where the native scheduler reads the host's unnamed local zone; `args`
    and `kwargs` replace arguments the agent withheld (or reported)."""
    source, name = str(observed.get("source")), str(observed.get("name"))
    what = f"{source} {name!r}"
    definition = observed.get("definition")
    if not isinstance(definition, Mapping) or not definition:
        raise NotAdoptable(
            f"{what} carries no definition: the agent that reported it predates adopt "
            "(upgrade its z4j package), or the schedule has no form z4j can read "
            f"({observed.get('kind')}: {observed.get('expression')})"
        )
    if definition.get("refused"):
        raise NotAdoptable(f"{what} cannot be adopted: {definition['refused']}")
    zone = tz or definition.get("timezone")
    if not zone:
        raise NotAdoptable(
            f"{what} runs in its host's local time zone, which has no IANA name there: give "
            "the zone with --tz (e.g. --tz Europe/Berlin)"
        )
    spec: dict[str, Any] = {"timezone": zone}
    notes: list[str] = []
    if "cron" in definition:
        spec.update(kind="cron", expression=definition["cron"])
        if definition.get("day_and"):
            spec["day_and"] = True
    elif "every" in definition:
        anchor = definition.get("anchor")
        runs = [float(r) for r in observed.get("next_runs") or []]
        if anchor is None and runs:
            anchor = runs[0]
            notes.append(
                f"{source} counts each interval from the previous run; z4j keeps a fixed grid "
                "from the next native run (the same times while runs are on time)"
            )
        if anchor is None:
            raise NotAdoptable(
                f"{what} is an interval whose next run only its scheduler knows (it counts "
                "from its own start): adopt it from an agent in the scheduler's process"
            )
        spec.update(
            kind="interval",
            every=float(definition["every"]),
            anchor=datetime.fromtimestamp(float(anchor), _UTC).isoformat(),
        )
    elif "at" in definition:
        at = datetime.fromtimestamp(float(definition["at"]), _UTC)
        if at <= now:
            raise NotAdoptable(f"{what} was due once, at {at.isoformat()}, which has passed")
        spec.update(kind="oneshot", at=at.isoformat())
    elif "solar" in definition:
        spec.update(kind="solar", **dict(definition["solar"]))
    else:
        raise NotAdoptable(f"{what} has a definition of no kind z4j knows: {dict(definition)}")
    try:
        schedule = schedule_from_dict(spec)
    except ScheduleError as exc:
        raise NotAdoptable(f"{what}: {exc}") from None
    differences = [
        f"{feature}: z4j has no equivalent" for feature in definition.get("unsupported") or []
    ]
    if spec["kind"] == "solar":
        differences.append(
            f"{source} computes the sun with its own library; z4j's solar times agree within "
            "a minute, not to the second"
        )
    if spec["kind"] in ("cron", "interval") and zone != "UTC" and _has_dst(zone, now):
        note = DST_NOTES.get(source)
        if note is not None and spec["kind"] == "cron":
            notes.append(note)
    if args is None and kwargs is None and definition.get("withheld"):
        raise NotAdoptable(
            f"the agent did not send the arguments of {what}: {definition['withheld']}. "
            "Give them with --args JSON and --kwargs JSON"
        )
    options = {k: v for k, v in dict(definition.get("options") or {}).items() if k in _OPTIONS}
    for other in sorted(set(definition.get("options") or {}) - set(_OPTIONS)):
        differences.append(f"option {other!r}: z4j has no equivalent")
    return Adoption(
        source=source,
        name=name,
        task=str(observed.get("task")),
        schedule=schedule.to_dict(),
        args=list(args if args is not None else definition.get("args") or []),
        kwargs=dict(kwargs if kwargs is not None else definition.get("kwargs") or {}),
        options=options,
        differences=differences,
        notes=notes,
        remove=remove_hint(source, name),
    )


@dataclass(frozen=True)
class Row:
    brain: datetime | None
    native: datetime | None

    @property
    def same(self) -> bool:
        if self.brain is None or self.native is None:
            return self.brain is None and self.native is None
        return abs((self.brain - self.native).total_seconds()) < SAME_FIRE_SECONDS


def compare(
    adoption: Adoption,
    native_runs: Sequence[float],
    now: datetime,
    count: int = COMPARE_COUNT,
) -> list[Row]:
    """The next `count` brain slots after `now` beside the native runs after `now`. The native
    runs are those the agent reported (up to 10, computed when it observed them), so fewer
    may remain; rows past them have no native time and are not counted as differences."""
    schedule = schedule_from_dict(adoption.schedule)
    native = sorted(
        datetime.fromtimestamp(float(r), _UTC) for r in native_runs if float(r) > now.timestamp()
    )[:count]
    start = now
    if native:  # the agent computed its runs a while ago: start just before the first
        start = min(now, native[0] - timedelta(seconds=SAME_FIRE_SECONDS))
    brain = [s for s in schedule.slots(start, count + len(native)) if s > start][:count]
    return [
        Row(brain[i] if i < len(brain) else None, native[i] if i < len(native) else None)
        for i in range(max(len(brain), len(native)) if native else len(brain))
    ][:count]


def mismatches(rows: Sequence[Row]) -> list[Row]:
    """Rows where both schedules have a time and the times differ, or only one has a time
    while the other had more to show."""
    known = sum(1 for r in rows if r.native is not None)
    return [r for i, r in enumerate(rows) if i < known and not r.same]
