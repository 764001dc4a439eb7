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
