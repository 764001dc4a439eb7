"""Schedules and fires in the store (SQLite and Postgres): one fire per id whatever writes it,
delivery order, and the re-offer rules of an unanswered fire."""

from __future__ import annotations

from z4j_brain import schedules as sched
from z4j_brain.store import Store

NOW = 1_800_000_000.0


def _schedule(store: Store, name: str = "tick") -> sched.ScheduleRow:
    with store.transaction():
        return sched.create(
            store,
            {"name": name, "task": "t", "engine": "huey", "app": "shop",
             "schedule": {"kind": "interval", "every": "1s"}},
            actor="test", now=NOW,
        )  # fmt: skip


def _fire(row: sched.ScheduleRow, slot: float, claim_order: float | None = None) -> sched.NewFire:
    return sched.NewFire(
        fire_id=f"{row.schedule_id}_{int(slot)}",
        schedule_id=row.schedule_id,
        kind="scheduled" if claim_order is None else "catch_up",
        slot=slot,
        due_at=slot,
        deliver_by=max(slot, NOW) + 60,
        claim_order=claim_order,
    )


def _agent(instance: str = "a1", session: str = "s1", dedup: bool = False) -> sched.Agent:
    return sched.Agent(
        agent_instance=instance,
        session=session,
        app="shop",
        engines=frozenset({"huey"}),
        dedup_engines=frozenset({"huey"}) if dedup else frozenset(),
        labels={},
    )


def _state(store: Store, fire_id: str) -> str:
    found = sched.fire(store, fire_id)
    assert found is not None
    return str(found["state"])


def test_two_leaders_writing_one_slot_make_one_fire(store: Store) -> None:
    row = _schedule(store)
    with store.transaction():
        first = sched.insert_fires(store, row, [_fire(row, NOW + 1)], NOW)
        sched.advance_cursor(store, row.schedule_id, NOW + 1, None)
    with store.transaction():  # a second leader, a moment later, computes the same slot
        second = sched.insert_fires(store, row, [_fire(row, NOW + 1)], NOW + 0.5)
        sched.advance_cursor(store, row.schedule_id, NOW + 0.9, None)
    assert (first, second) == (1, 0)
    assert len(sched.history(store, row.schedule_id)) == 1
    assert sched.get(store, "tick").cursor == NOW + 1  # the cursor never moves back


def test_catch_up_fires_go_out_behind_on_time_ones(store: Store) -> None:
    row = _schedule(store)
    backlog = [_fire(row, NOW - 100 + i, claim_order=NOW + 0.5) for i in range(5)]
    with store.transaction():
        sched.insert_fires(store, row, [*backlog, _fire(row, NOW)], NOW)
    with store.transaction():
        claimed = sched.claim(store, [_agent()], "brain", NOW, limit=3)
    assert [c.slot for c in claimed] == [NOW, NOW - 100, NOW - 99]


def test_an_unanswered_fire_stays_with_its_agent_unless_the_engine_dedups(store: Store) -> None:
    row = _schedule(store)
    plain, dedup = _fire(row, NOW), _fire(row, NOW + 1)
    with store.transaction():
        sched.insert_fires(store, row, [plain], NOW)
        (claimed,) = sched.claim(store, [_agent("a1", "s1")], "brain", NOW)
        sched.release_unanswered(store, claimed.fire_id, "a1", "c1")
    # Another agent never gets it; the same agent on the same session is still waited for.
    with store.transaction():
        assert sched.claim(store, [_agent("a2", "s9")], "brain", NOW, reoffer=True) == []
        assert sched.claim(store, [_agent("a1", "s1")], "brain", NOW, reoffer=True) == []
    # The agent reconnected (a new session): it is offered again, and answers duplicate.
    with store.transaction():
        (again,) = sched.claim(store, [_agent("a1", "s2")], "brain", NOW, reoffer=True)
        sched.record_answer(store, again.fire_id, "a1", status="duplicate", command_id="c2",
                            native_id=None, reason="already enqueued", now=NOW)  # fmt: skip
    assert _state(store, plain.fire_id) == "duplicate"

    with store.transaction():
        sched.insert_fires(store, row, [dedup], NOW)
        (claimed,) = sched.claim(store, [_agent("a1", "s2", dedup=True)], "brain", NOW)
        assert claimed.native_dedup
        sched.release_unanswered(store, claimed.fire_id, "a1", "c3")
    with store.transaction():  # the engine refuses a repeated id: any agent may take it
        (other,) = sched.claim(store, [_agent("a2", "s9", dedup=True)], "brain", NOW)
    assert other.fire_id == dedup.fire_id and other.agent_instance == "a2"


def test_past_the_deadline_fires_are_missed_or_unknown_never_resent(store: Store) -> None:
    row = _schedule(store)
    waiting, silent = _fire(row, NOW), _fire(row, NOW + 1)
    with store.transaction():
        sched.insert_fires(store, row, [silent], NOW)
        sched.claim(store, [_agent()], "brain", NOW)
        sched.insert_fires(store, row, [waiting], NOW)
    with store.transaction():
        assert sched.expire(store, NOW + 1000) == (1, 1)
        assert sched.claim(store, [_agent("a1", "s2")], "brain", NOW + 1000, reoffer=True) == []
    assert _state(store, waiting.fire_id) == "missed"
    assert _state(store, silent.fire_id) == "unknown"
    # A late real answer still tells the truth.
    with store.transaction():
        sched.record_answer(store, silent.fire_id, "a1", status="enqueued", command_id="c",
                            native_id=silent.fire_id, reason="", now=NOW + 1001)  # fmt: skip
    assert _state(store, silent.fire_id) == "enqueued"


def test_names_are_unique_and_renamable_ids_are_not(store: Store) -> None:
    row = _schedule(store)
    _schedule(store, "other")
    with store.transaction():
        try:
            sched.edit(store, "other", {"name": "tick"}, actor="t", now=NOW)
        except sched.Conflict as exc:
            assert "already exists" in str(exc)
        else:
            raise AssertionError("a taken name was accepted")
    with store.transaction():
        _, after = sched.edit(store, "tick", {"name": "tock"}, actor="t", now=NOW)
    assert after.schedule_id == row.schedule_id and after.version == 2
    with store.transaction():
        try:
            sched.edit(store, "tock", {"id": "x"}, actor="t", now=NOW)
        except sched.ScheduleInputError as exc:
            assert "cannot edit 'id'" in str(exc)
        else:
            raise AssertionError("the id was editable")
