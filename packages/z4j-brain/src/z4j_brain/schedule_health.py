"""What the brain can tell about a schedule without firing it: whether its engine, app and task
are among what the agents reported (checked on create and edit, shown on every read), and how
its fires are going (its health state, last fire, consecutive failures, next fire).

Pure over what the store returns: callers pass the inventories, the connected agents and the
schedule's newest fires, and ``now``. Never writes; pausing after failures is the leader's
(``z4j_brain.leader``), with the note written here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from z4j_brain.routing import may_take
from z4j_brain.store.schedules import (
    BUFFERED,
    DELIVERING,
    FAILED,
    MISSED,
    PENDING,
    REJECTED,
    SKIPPED,
    TASK_DONE_STATES,
    TASK_FAILED_STATES,
    UNKNOWN,
    ScheduleRow,
)
from z4j_core.scheduling import format_instant
from z4j_core.wire.frames import Capability

#: The engines z4j ships adapters for; an engine any agent reported is known too.
BUILTIN_ENGINES: Final = ("arq", "celery", "dramatiq", "huey", "rq", "taskiq")
#: Engines whose task list is open: RQ runs any importable function, and its agents report only
#: the functions they have seen or were told of, so a task missing from them is not refused.
OPEN_TASK_ENGINES: Final = ("rq",)
#: A schedule is ``failing`` when this many of its newest settled task outcomes failed in a row.
FAILING_AFTER: Final = 1
#: How many newest fires health reads (enough for the largest pause-after-failures, 1000).
HEALTH_FIRES: Final = 50
#: Most names (engines, apps) an error line lists.
LISTED_NAMES: Final = 10
#: Longest exception text quoted in a pause note, per fire.
NOTE_EXCEPTION_LENGTH: Final = 80
_UTC = timezone.utc


@dataclass(frozen=True)
class Reported:
    """What the agents reported, as the checks need it: engines by name, and for each
    (engine, app) the task names its agents listed."""

    engines: frozenset[str]
    tasks: Mapping[tuple[str, str], frozenset[str]]

    @classmethod
    def from_store(
        cls, inventories: Iterable[Mapping[str, Any]], agents: Iterable[Mapping[str, Any]]
    ) -> Reported:
        engines = {e["name"] for a in agents for e in a["engines"]}
        tasks: dict[tuple[str, str], set[str]] = {}
        for inventory in inventories:
            engines.add(inventory["engine"])
            names = tasks.setdefault((inventory["engine"], inventory["app"]), set())
            names.update(t["name"] for t in inventory["tasks"])
        return cls(frozenset(engines), {k: frozenset(v) for k, v in tasks.items()})


def _names(names: Iterable[str]) -> str:
    """Names for an error line, at most ``LISTED_NAMES`` of them."""
    ordered = sorted(names)
    shown = ", ".join(ordered[:LISTED_NAMES])
    more = len(ordered) - LISTED_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def target_problems(reported: Reported, engine: str, app: str, task: str) -> list[str]:
    """Why a schedule for ``task`` of ``engine``/``app`` may not run, judged by what the agents
    reported ([] when it all checks out). The first one is what a create or edit without
    force is refused with."""
    known = reported.engines | set(BUILTIN_ENGINES)
    if engine not in known:
        return [f"unknown engine {engine!r}{_did_you_mean(engine, known)} "
                f"(engines: {_names(known)})"]  # fmt: skip
    apps = sorted(a for e, a in reported.tasks if e == engine)
    if not apps:
        return [f"no agent of engine {engine!r} has reported its apps and tasks yet, so app "
                f"{app!r} and task {task!r} cannot be checked"]  # fmt: skip
    if app not in apps:
        return [f"unknown app {app!r} for {engine}{_did_you_mean(app, apps)} "
                f"(apps reported: {_names(apps)})"]  # fmt: skip
    tasks = reported.tasks[(engine, app)]
    if tasks and task not in tasks and engine not in OPEN_TASK_ENGINES:
        hint = (
            _did_you_mean(task, tasks) or f" (not among the {len(tasks)} tasks its agents reported)"
        )
        return [f"unknown task {task!r} for {engine}/{app}{hint}"]
    return []


def refusal(problem: str) -> str:
    """The error a create or edit without force gets for a target problem."""
    return f"{problem}; to keep it anyway (an app not deployed yet), force it (--force)"


def serving_agents(row: ScheduleRow, agents: Iterable[Mapping[str, Any]]) -> int:
    """How many connected agents (as ``store.agents(connected_only=True)`` lists them) could
    take this schedule's fires."""
    count = 0
    for agent in agents:
        able = [e["name"] for e in agent["engines"] if Capability.FIRE.value in e["capabilities"]]
        if may_take(agent_app=agent["app"], agent_labels=agent["labels"], able_engines=able,
                    app=row.app, engine=row.engine, labels=row.labels):  # fmt: skip
            count += 1
    return count


def _failed(fire: Mapping[str, Any]) -> bool | None:
    """True: the fire's outcome failed; False: it succeeded (or ended otherwise); None: no
    outcome yet, or the slot was not run (skipped, missed, unknown)."""
    if fire["state"] in (FAILED, REJECTED):
        return True
    task_state = fire.get("task_state")
    if task_state in TASK_FAILED_STATES:
        return True
    if task_state in TASK_DONE_STATES:
        return False
    return None


def consecutive_failures(fires: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The newest settled fires that failed, in a row (``fires`` newest first); fires with no
    outcome yet, skipped, missed or unknown ones are stepped over."""
    run: list[Mapping[str, Any]] = []
    for fire in fires:
        failed = _failed(fire)
        if failed is None:
            continue
        if not failed:
            break
        run.append(fire)
    return run


def pause_note(failures: Sequence[Mapping[str, Any]]) -> str:
    """The note of a schedule paused after ``failures`` (newest first): which fires failed."""
    named = []
    for fire in failures[:5]:
        slot = format_instant(datetime.fromtimestamp(fire["slot"], _UTC))
        why = fire.get("task_exception") or fire.get("reason") or fire.get("task_state") or ""
        text = f"fire {fire['fire_id']} (slot {slot}) {fire.get('task_state') or fire['state']}"
        if why and why != fire.get("task_state"):
            text += f": {str(why)[:NOTE_EXCEPTION_LENGTH]}"
        named.append(text)
    more = f", and {len(failures) - 5} more" if len(failures) > 5 else ""
    return (f"paused after {len(failures)} consecutive failures: "
            f"{'; '.join(named)}{more}")  # fmt: skip


def next_fire(row: ScheduleRow, now: datetime) -> str | None:
    if not row.enabled or row.broken:
        return None
    try:
        slot = row.schedule().next_after(max(row.cursor_dt(), now))
    except Exception:  # the leader marks it broken and says why
        return None
    return None if slot is None else format_instant(slot)


def health(
    row: ScheduleRow,
    fires: Sequence[Mapping[str, Any]],
    *,
    serving: int,
    problems: list[str],
    now: datetime,
) -> dict[str, Any]:
    """The schedule's health (``shapes.ScheduleHealth``): ``fires`` are its newest (by slot,
    with their task outcomes), ``serving`` how many connected agents could take them."""
    last = fires[0] if fires else None
    failures = consecutive_failures(fires)
    settled = next((f for f in fires if f["state"] not in (PENDING, DELIVERING, BUFFERED,
                                                           SKIPPED)), None)  # fmt: skip
    state, note = "active", ""
    if row.broken:
        state, note = "broken", row.broken
    elif not row.enabled:
        state, note = "paused", row.pause_note
    elif serving == 0:
        state = "no agent"
        note = (f"no connected agent can take its fires (engine {row.engine}, app {row.app}"
                + (f", labels {row.labels}" if row.labels else "") + ")")  # fmt: skip
    elif settled is not None and settled["state"] in (MISSED, UNKNOWN):
        state, note = "missing", f"its newest fire went {settled['state']}: {settled['reason']}"
    elif len(failures) >= FAILING_AFTER:
        state = "failing"
        note = f"its last {len(failures)} task outcome(s) failed"
    if problems:
        note = "; ".join([note, *problems]) if note else "; ".join(problems)
    return {
        "state": state,
        "note": note,
        "last_fire": None
        if last is None
        else {
            "fire_id": last["fire_id"],
            "kind": last["kind"],
            "slot": last["slot"],
            "state": last["state"],
            "reason": last["reason"],
            "task_state": last["task_state"],
        },
        "consecutive_failures": len(failures),
        "next_fire": next_fire(row, now),
        "problems": problems,
    }
