"""The fleet end to end: one brain on Postgres, one real worker per engine, schedules of every
kind made through the `z4j` command, and what landed checked from both sides.

The fleet (z4j_core.testing.fleet, as scripts/fleet runs it) runs once for the module: Celery,
RQ, Dramatiq, Huey, arq and taskiq workers with the agent attached (Celery, arq and taskiq in
environments of their own, made by z4j_core.testing.venvs from the run spec), a per-second cron,
an interval, a one-shot and a solar schedule for each. Once every recurring schedule has fired
past a cut-off instant, the schedules are paused through the CLI and the fleet settles; then the
brain's fires are compared with the slots each schedule has (computed here from its stored
spec), with the runs each engine's workers counted in Redis by their own job id, and with the
lifecycle events the brain stored.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from z4j_core.scheduling import fire_id, parse_fire_id, schedule_from_dict
from z4j_core.testing.engines import FLEET_ENVIRONMENTS
from z4j_core.testing.fleet import APP, ENGINES, Engine, Fleet, Schedule
from z4j_core.testing.postgres import temporary_database
from z4j_core.testing.venvs import ensure

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(600)]

CRON = "* * * * * */2"  # every 2 s (seconds last)
EVERY = "3s"
ONESHOT_IN = 6.0  # seconds after the recurring schedules exist
#: Every recurring schedule must have fired at least this long after its creation; the slots
#: in (created, cut] are what the test expects to have fired, each once.
RUN_FOR = 12.0
#: Generous deadlines for outcomes (a loaded 2-CPU machine), never timing assertions.
FIRED_DEADLINE = 120.0
SETTLE_DEADLINE = 90.0


@dataclass
class Outcome:
    fleet: Fleet
    cut: float
    fires: dict[str, list[dict[str, Any]]]  # schedule name -> its fires, by slot
    runs: dict[str, dict[str, int]]  # engine -> job id -> runs counted by its workers
    agents: list[dict[str, Any]]  # every agent seen
    events: dict[str, list[dict[str, Any]]]  # fire id -> its task's stored events
    listing: str  # `z4j schedules list --all`
    listing_json: dict[str, Any]  # `z4j schedules list --all --json`
    agents_text: str  # `z4j agents`
    tasks_text: str  # `z4j tasks`
    log: list[str]

    def schedules(self, kind: str | None = None) -> list[Schedule]:
        return [s for s in self.fleet.schedules if kind is None or s.kind == kind]

    def agent_engines(self, agent_instance: str) -> set[str]:
        for agent in self.agents:
            if agent["agent_instance"] == agent_instance:
                return {e["name"] for e in agent["engines"]}
        return set()


def _not_fired_past(fleet: Fleet, cut: float) -> dict[str, list[str]]:
    """The schedules that have not fired past `cut` yet (one-shots: not at all), each with its
    latest fires' states, for the failure message."""
    waiting: dict[str, list[str]] = {}
    for schedule in fleet.schedules:
        if schedule.kind == "solar":
            continue
        fires = fleet.fires(schedule)
        done = fires if schedule.kind == "once" else [f for f in fires if f["slot"] >= cut]
        if not done:
            waiting[schedule.name] = [
                f"{f['fire_id']} {f['state']} {f['reason'] or ''} task={f['task_state']}".strip()
                for f in fires[-3:]
            ]
    return waiting


@pytest.fixture(scope="module")
def pythons() -> dict[str, Path]:
    """The main engines run in this test's environment; the others in theirs (cached)."""
    needed = {e.environment for e in ENGINES} - {"main"}
    built = {name: ensure(FLEET_ENVIRONMENTS[name]) for name in sorted(needed)}
    return {"main": Path(sys.executable), **built}


@pytest.fixture(scope="module")
def outcome(
    pythons: dict[str, Path], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    log: list[str] = []
    workdir = tmp_path_factory.mktemp("fleet")
    with temporary_database("fleet") as database:
        fleet = Fleet(workdir, pythons, redis_url, database, say=log.append)
        try:
            fleet.start()
            fleet.create_schedules(cron=CRON, every=EVERY, oneshot_in=ONESHOT_IN)
            cut = max(s.created_at for s in fleet.schedules) + RUN_FOR
            deadline = time.monotonic() + FIRED_DEADLINE
            while waiting := _not_fired_past(fleet, cut):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"not every schedule fired past the cut-off within {FIRED_DEADLINE:g}s: "
                        f"{json.dumps(waiting, indent=1)}\n{_fleet_logs(fleet)}"
                    )
                time.sleep(0.5)
            fleet.pause_all()
            snapshot = fleet.settle(SETTLE_DEADLINE)
            fires = {s.name: fleet.fires(s) for s in fleet.schedules}
            events = {
                f["fire_id"]: fleet.task_events(f["fire_id"], f["engine"])
                for f in snapshot.fires
                if f["state"] == "enqueued"
            }
            yield Outcome(
                fleet=fleet,
                cut=cut,
                fires=fires,
                runs={e.name: fleet.runs(e.name) for e in fleet.engines},
                agents=fleet.brain.api("GET", "/api/v1/agents?seen_within=3600")["agents"],
                events=events,
                listing=_cli(fleet, "schedules", "list", "--all"),
                listing_json=json.loads(_cli(fleet, "schedules", "list", "--all", "--json")),
                agents_text=_cli(fleet, "agents"),
                tasks_text=_cli(fleet, "tasks", "--limit", "200"),
                log=log,
            )
        finally:
            fleet.stop()


def _cli(fleet: Fleet, *args: str) -> str:
    result = fleet.z4j(*args, echo=False)
    assert result.returncode == 0, f"z4j {' '.join(args)}: {result.stderr}"
    return result.stdout


def _fleet_logs(fleet: Fleet) -> str:
    return "\n".join(
        f"--- {w.engine.name} ({w.log_path}):\n{w.output(1500)}" for w in fleet.workers
    )


def _slots(schedule: Schedule, after: float, through: float) -> list[float]:
    """The schedule's slots in (after, through], from its stored spec (the core's math)."""
    spec = schedule_from_dict(schedule.spec)
    slots: list[float] = []
    instant = datetime.fromtimestamp(after, timezone.utc)
    while True:
        nxt = spec.next_after(instant)
        if nxt is None or nxt.timestamp() > through:
            return slots
        slots.append(nxt.timestamp())
        instant = nxt


def _engine(name: str) -> Engine:
    return next(e for e in ENGINES if e.name == name)


# -- the fleet as an operator sees it --------------------------------------------------------


def test_every_engine_has_its_agent_in_z4j_agents(outcome: Outcome) -> None:
    connected = {e["name"] for a in outcome.agents if a["connected"] for e in a["engines"]}
    assert connected >= {e.name for e in ENGINES}, outcome.agents_text
    lines = outcome.agents_text.splitlines()
    for engine in ENGINES:
        assert any(f" {engine.name} " in line and "connected" in line for line in lines), (
            f"{engine.name} missing from z4j agents:\n{outcome.agents_text}"
        )


def test_schedules_list_shows_ours_and_every_engines_native_ones_side_by_side(
    outcome: Outcome,
) -> None:
    ours = {s["name"] for s in outcome.listing_json["schedules"]}
    assert ours == {s.name for s in outcome.schedules()}
    sources = {(o["engine"], o["source"]) for o in outcome.listing_json["observed"]}
    for engine in ENGINES:
        assert (engine.name, engine.native_source) in sources, sorted(sources)
    # Observed under the app the agents route by (Z4J_APP), as the brain's schedules are.
    apps = {(o["engine"], o["app"]) for o in outcome.listing_json["observed"]}
    assert apps == {(e.name, APP) for e in ENGINES}, sorted(apps)
    rows = outcome.listing.splitlines()
    for schedule in outcome.schedules():
        assert any(row.startswith(schedule.name + " ") for row in rows), outcome.listing
    for engine in ENGINES:
        assert any(f"observed ({engine.native_source}," in row for row in rows), outcome.listing


def test_z4j_tasks_lists_fired_tasks_of_every_engine(outcome: Outcome) -> None:
    for engine in ENGINES:
        assert any(
            engine.task in line and f" {engine.name} " in line and "succeeded" in line
            for line in outcome.tasks_text.splitlines()
        ), f"no succeeded {engine.name} task in z4j tasks:\n{outcome.tasks_text}"


# -- once per slot, into the right engine ----------------------------------------------------


@pytest.mark.parametrize("engine", [e.name for e in ENGINES])
def test_every_slot_fired_once_into_its_engine(outcome: Outcome, engine: str) -> None:
    for schedule in outcome.schedules():
        if schedule.engine != engine or schedule.kind == "solar":
            continue
        fires = outcome.fires[schedule.name]
        slots = [f["slot"] for f in fires]
        assert len(slots) == len(set(slots)), f"{schedule.name}: a slot fired twice: {slots}"
        if schedule.kind == "once":
            expected = _slots(schedule, schedule.created_at, float("inf"))
            assert expected, f"{schedule.name} was created after its instant: {schedule.spec}"
            assert slots == expected, f"{schedule.name}: fired {slots}, its slot is {expected}"
        else:
            expected = _slots(schedule, schedule.created_at, outcome.cut)
            assert len(expected) >= 4, expected
            fired = set(slots)
            missing = [s for s in expected if s not in fired]
            assert not missing, f"{schedule.name}: slots never fired: {missing}"
            every_slot = set(_slots(schedule, schedule.created_at, max(slots)))
            off_grid = [s for s in slots if s not in every_slot]
            assert not off_grid, f"{schedule.name}: fires at instants it has no slot: {off_grid}"
        for fire in fires:
            assert fire["kind"] == "scheduled", fire
            assert fire["fire_id"] == fire_id(schedule.id, parse_fire_id(fire["fire_id"])[1])
            assert parse_fire_id(fire["fire_id"])[0] == schedule.id
            assert fire["state"] == "enqueued", f"{schedule.name}: {fire}"
            assert fire["native_id"] == fire["fire_id"], "the fire id is the engine's job id"
            assert engine in outcome.agent_engines(fire["agent_instance"]), (
                f"{fire['fire_id']} was delivered to agent {fire['agent_instance']}, which "
                f"serves {outcome.agent_engines(fire['agent_instance'])}, not {engine}"
            )


@pytest.mark.parametrize("engine", [e.name for e in ENGINES])
def test_every_fire_ran_exactly_once_in_its_own_engine(outcome: Outcome, engine: str) -> None:
    fire_ids = {
        f["fire_id"]
        for s in outcome.schedules()
        if s.engine == engine
        for f in outcome.fires[s.name]
    }
    assert fire_ids, f"{engine}: nothing fired"
    runs = outcome.runs[engine]
    twice = {job: n for job, n in runs.items() if n > 1}
    assert not twice, f"{engine} ran these more than once: {twice}"
    never = sorted(fire_ids - set(runs))
    assert not never, f"{engine} never ran these fires:\n{never}\n{_fleet_logs(outcome.fleet)}"
    strangers = sorted(set(runs) - fire_ids)
    assert not strangers, f"{engine} ran jobs that are not its fires: {strangers}"
    for other, other_runs in outcome.runs.items():
        if other != engine:
            assert not fire_ids & set(other_runs), f"{engine}'s fires ran in {other}"


# -- every task's lifecycle reached the brain ------------------------------------------------


@pytest.mark.parametrize("engine", [e.name for e in ENGINES])
def test_every_fired_tasks_lifecycle_reached_the_brain(outcome: Outcome, engine: str) -> None:
    wanted = _engine(engine).lifecycle
    fires = [f for s in outcome.schedules() if s.engine == engine for f in outcome.fires[s.name]]
    assert fires
    for fire in fires:
        kinds = [e["kind"] for e in outcome.events[fire["fire_id"]]]
        assert wanted <= set(kinds), f"{fire['fire_id']} ({engine}): stored {kinds}"
        assert fire["task_state"] == "succeeded", fire
        for event in outcome.events[fire["fire_id"]]:
            assert event["engine"] == engine and event["task_name"] == _engine(engine).task


# -- the solar schedules: listed with the right next event -----------------------------------


def _next_solar_event(spec: dict[str, Any], after: datetime) -> datetime:
    """The oracle: astral asked directly for each local date around `after` (within 60 s)."""
    from astral import Observer
    from astral import sun as astral_sun

    zone = ZoneInfo(spec["timezone"])
    observer = Observer(latitude=spec["latitude"], longitude=spec["longitude"])
    compute = {
        "sunrise": astral_sun.sunrise,
        "sunset": astral_sun.sunset,
        "noon": astral_sun.noon,
        "dawn": lambda o, d, tzinfo: astral_sun.dawn(o, d, depression=6.0, tzinfo=tzinfo),
        "dusk": lambda o, d, tzinfo: astral_sun.dusk(o, d, depression=6.0, tzinfo=tzinfo),
    }[spec["event"]]
    local_today: date = after.astimezone(zone).date()
    for days in range(-1, 3):
        instant = compute(observer, local_today + timedelta(days=days), tzinfo=zone)
        instant = instant.replace(microsecond=0)
        if instant > after:
            return instant.astimezone(timezone.utc)
    raise AssertionError(f"no {spec['event']} within three days of {after}")


@pytest.mark.parametrize("engine", [e.name for e in ENGINES])
def test_solar_schedule_is_listed_with_its_next_event(outcome: Outcome, engine: str) -> None:
    schedule = next(s for s in outcome.schedules("solar") if s.engine == engine)
    shown = outcome.fleet.brain.api("GET", f"/api/v1/schedules/{schedule.id}")
    now = datetime.now(timezone.utc)
    expected = _next_solar_event(shown["schedule"], now)
    first = datetime.fromisoformat(shown["next_slots"][0].replace("Z", "+00:00"))
    # The core finds events by its own search of the sun's elevation (NOAA's equations); astral
    # is an independent reading of the same equations: they agree within a minute
    # (docs/schedules.md, Solar).
    assert abs(first - expected) <= timedelta(seconds=60), (
        f"{schedule.name}: brain says {first}, astral says {expected}"
    )
    solar = _engine(engine).solar
    assert (shown["schedule"]["event"], shown["schedule"]["timezone"]) == (
        solar.event,
        solar.timezone,
    )
    row = next(r for r in outcome.listing.splitlines() if r.startswith(schedule.name + " "))
    assert first.isoformat(timespec="seconds") in row, row  # ISO 8601 with its offset
