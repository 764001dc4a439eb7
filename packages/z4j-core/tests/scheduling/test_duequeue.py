"""The due queue: ordering, edits, pause, catch-up on pop, and no full scans."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from z4j_core.scheduling import (
    CronSchedule,
    DueQueue,
    IntervalSchedule,
    OneShotSchedule,
    ScheduleError,
    fire_id,
)

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def every(seconds: int, **kw: object) -> IntervalSchedule:
    return IntervalSchedule(every=timedelta(seconds=seconds), anchor=T0, **kw)  # type: ignore[arg-type]


def test_pop_due_returns_exactly_the_due_schedules_in_order() -> None:
    queue = DueQueue()
    queue.add("a", every(60), T0)
    queue.add("b", every(30), T0)
    queue.add("c", OneShotSchedule(at=T0 + timedelta(seconds=45)), T0)
    assert queue.next_wakeup() == T0 + timedelta(seconds=30)
    assert queue.pop_due(T0 + timedelta(seconds=29)) == []
    popped = queue.pop_due(T0 + timedelta(seconds=60))
    assert [(d.schedule_id, d.slots[0].second or 60) for d in popped] == [
        ("b", 30),
        ("c", 45),
        ("a", 60),
        ("b", 60),
    ]
    assert queue.next_slot("c") is None  # the one-shot is finished
    assert queue.next_wakeup() == T0 + timedelta(seconds=90)


def test_matches_a_naive_model_under_random_edits() -> None:
    # A day of grace: every slot is on time, so the model is "every slot fires once".
    def every(seconds: int) -> IntervalSchedule:
        return IntervalSchedule(
            every=timedelta(seconds=seconds), anchor=T0, misfire_grace=timedelta(days=1)
        )

    rng = random.Random(7)
    queue = DueQueue()
    model: dict[str, tuple[IntervalSchedule, datetime, bool]] = {}
    now = T0
    for step in range(3000):
        action = rng.random()
        sid = f"s{rng.randrange(60)}"
        if action < 0.3 and sid not in model:
            schedule = every(rng.randrange(5, 500))
            queue.add(sid, schedule, now)
            model[sid] = (schedule, now, False)
        elif action < 0.4 and sid in model:
            schedule = every(rng.randrange(5, 500))
            queue.update(sid, schedule)
            model[sid] = (schedule, model[sid][1], model[sid][2])
        elif action < 0.45 and sid in model:
            queue.pause(sid)
            model[sid] = (model[sid][0], model[sid][1], True)
        elif action < 0.5 and sid in model and model[sid][2]:
            queue.resume(sid, now)
            model[sid] = (model[sid][0], max(model[sid][1], now), False)
        elif action < 0.55 and sid in model:
            assert queue.remove(sid)
            del model[sid]
        else:
            now += timedelta(seconds=rng.randrange(1, 40))
            popped = queue.pop_due(now)
            expected = []
            for key, (schedule, last, paused) in model.items():
                if paused:
                    continue
                cursor = last
                slot = schedule.next_after(cursor)
                while slot is not None and slot <= now:
                    expected.append((slot, key))
                    cursor = slot
                    slot = schedule.next_after(slot)
                model[key] = (schedule, cursor, paused)
            got = sorted((d.slots[0], d.schedule_id) for d in popped)
            assert got == sorted(expected), f"step {step}"
        assert len(queue) == len(model)
    wake = queue.next_wakeup()
    live = [s.next_after(c) for s, c, p in model.values() if not p]
    assert wake == min((x for x in live if x is not None), default=None)


def test_missed_slots_follow_the_catch_up_policy_on_pop() -> None:
    grace = timedelta(seconds=10)
    queue = DueQueue()
    queue.add("skip", CronSchedule(expression="* * * * *", misfire_grace=grace), T0)
    queue.add("one", CronSchedule(expression="* * * * *", catch_up="one", misfire_grace=grace), T0)
    queue.add(
        "all",
        CronSchedule(expression="* * * * *", catch_up="all", max_catch_up=3, misfire_grace=grace),
        T0,
    )
    now = T0 + timedelta(minutes=10, seconds=5)  # 10:00 is on time, 1..9 are missed
    by_id: dict[str, list[tuple[tuple[datetime, ...], bool]]] = {}
    for due in queue.pop_due(now):
        by_id.setdefault(due.schedule_id, []).append((due.slots, due.truncated))
    minute = [T0 + timedelta(minutes=i) for i in range(11)]
    assert by_id["skip"] == [((), False), ((minute[10],), False)]
    assert by_id["one"] == [((minute[9],), False), ((minute[10],), False)]
    assert by_id["all"] == [((minute[1], minute[2], minute[3]), True)]  # paced
    assert [d.slots for d in queue.pop_due(now)] == [(minute[4], minute[5], minute[6])]


def test_jitter_delays_due_time_but_not_the_slot() -> None:
    schedule = CronSchedule(expression="0 * * * *", jitter=timedelta(minutes=5))
    queue = DueQueue()
    due = queue.add("j", schedule, T0)
    assert due == schedule.due_at("j", T0 + timedelta(hours=1))
    assert due is not None and T0 + timedelta(hours=1) <= due <= T0 + timedelta(hours=1, minutes=5)
    [popped] = queue.pop_due(due)
    assert popped.slots == (T0 + timedelta(hours=1),)
    assert popped.fire_ids == (fire_id("j", T0 + timedelta(hours=1)),)


def test_herd_at_one_instant_is_popped_in_full() -> None:
    queue = DueQueue()
    n = 20_000
    queue.load((f"h{i}", OneShotSchedule(at=T0), T0 - timedelta(seconds=1)) for i in range(n))
    popped = queue.pop_due(T0)
    assert len(popped) == n and len({d.schedule_id for d in popped}) == n
    assert queue.next_wakeup() is None


def test_stale_items_are_compacted() -> None:
    queue = DueQueue()
    for i in range(3000):
        queue.add(f"s{i}", every(60), T0)
    for _ in range(3):
        for i in range(3000):
            queue.update(f"s{i}", every(61))
    assert len(queue._heap) < 2 * 3000 + 1024


def test_errors() -> None:
    queue = DueQueue()
    queue.add("a", every(60), T0)
    with pytest.raises(ScheduleError, match="already"):
        queue.add("a", every(60), T0)
    with pytest.raises(ScheduleError, match="not in the due queue"):
        queue.pause("zz")
    with pytest.raises(ScheduleError, match="no time zone"):
        queue.pop_due(datetime(2025, 1, 1))
    assert not queue.remove("zz")


def test_instants_are_kept_to_the_microsecond_far_from_now() -> None:
    """The queue keeps instants as integers of microseconds: exact before 1970 and centuries
    ahead, where a float of seconds would drift by a microsecond or more."""
    far = datetime(2399, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    early = datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC)
    queue = DueQueue()
    queue.add("far", OneShotSchedule(at=far), far - timedelta(days=1))
    queue.add("early", OneShotSchedule(at=early), early - timedelta(days=1))
    assert queue.next_wakeup() == early
    assert queue.next_slot("far") == far
    assert queue.cursor("far") == far - timedelta(days=1)
    [popped] = queue.pop_due(early)
    assert popped.slots == (early,) and popped.cursor == early
    assert queue.pop_due(far - timedelta(microseconds=1)) == []
    [popped] = queue.pop_due(far)
    assert popped.slots == (far,) and popped.fire_ids == (fire_id("far", far),)


def test_schedules_sharing_a_cursor_never_share_another_timings_slot() -> None:
    """Next slots are remembered per (timing, cursor), so a million schedules loaded with one
    cursor compute each timing once: a different timing after the same cursor, or an equal
    one made anew, must still get its own answer."""
    queue = DueQueue()
    hourly, minutely = CronSchedule(expression="0 * * * *"), CronSchedule(expression="* * * * *")
    queue.add("h1", hourly, T0)
    queue.add("m1", minutely, T0)
    queue.add("h2", hourly, T0)
    queue.add("h3", CronSchedule(expression="0 * * * *"), T0)
    queue.add("m2", every(30), T0)
    assert queue.next_slot("h1") == queue.next_slot("h2") == queue.next_slot("h3")
    assert queue.next_slot("h1") == T0 + timedelta(hours=1)
    assert queue.next_slot("m1") == T0 + timedelta(minutes=1)
    assert queue.next_slot("m2") == T0 + timedelta(seconds=30)


def test_a_removed_schedules_old_place_never_pops_the_one_that_reuses_it() -> None:
    """A removed schedule's number is given to the next one added; its stale heap key (due
    sooner) must neither pop the newcomer early nor twice."""
    queue = DueQueue()
    queue.add("gone", OneShotSchedule(at=T0 + timedelta(seconds=10)), T0)
    queue.add("kept", OneShotSchedule(at=T0 + timedelta(seconds=20)), T0)
    assert queue.remove("gone")
    queue.add("new", OneShotSchedule(at=T0 + timedelta(seconds=100)), T0)
    assert [d.schedule_id for d in queue.pop_due(T0 + timedelta(seconds=50))] == ["kept"]
    assert queue.next_wakeup() == T0 + timedelta(seconds=100)
    assert [d.schedule_id for d in queue.pop_due(T0 + timedelta(seconds=100))] == ["new"]
    assert queue.pop_due(T0 + timedelta(days=1)) == []
    assert "gone" not in queue and len(queue) == 2


def test_a_schedule_whose_first_slot_raises_is_not_held() -> None:
    """`add` raising (the leader then sets the schedule aside) leaves nothing behind: the id
    can be added again once mended."""

    class Raising(IntervalSchedule):
        def _next_slot_after(self, after: datetime) -> datetime | None:
            raise OverflowError("date value out of range")

    queue = DueQueue()
    with pytest.raises(OverflowError):
        queue.add("bad", Raising(every=timedelta(seconds=60)), T0)
    assert "bad" not in queue and len(queue) == 0 and queue.next_wakeup() is None
    queue.add("bad", every(60), T0)
    assert queue.next_slot("bad") == T0 + timedelta(seconds=60)


def test_the_callers_version_is_kept_with_each_schedule() -> None:
    """The brain keeps each schedule's row version in the queue (no map of its own): a number
    given to another schedule must carry the newcomer's version, not its predecessor's."""
    queue = DueQueue()
    queue.add("a", every(60), T0, version=7)
    queue.add("b", every(60), T0)
    assert (queue.version("a"), queue.version("b")) == (7, 0)
    assert queue.remove("a")
    queue.add("c", every(60), T0, version=3)
    assert queue.version("c") == 3 and sorted(queue) == ["b", "c"]
    assert (queue.version_of("c"), queue.version_of("a")) == (3, None)
    with pytest.raises(ScheduleError, match="not in the due queue"):
        queue.version("a")
