"""Schedules and fires in the store (SQLite and Postgres): one fire per id whatever writes it,
delivery order, and the re-offer rules of an unanswered fire."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

from brain_helpers import serving

from z4j_brain import schedules as sched
from z4j_brain.leader import BULK_LOAD
from z4j_brain.store import Agent, FireRecipe, NewFire, ScheduleRow, Store
from z4j_brain.store.schedules import UNANSWERED, FireAnswer

NOW = 1_800_000_000.0


def _schedule(store: Store, name: str = "tick") -> ScheduleRow:
    with store.transaction():
        return sched.create(
            store,
            {"name": name, "task": "t", "engine": "huey", "app": "shop", "force": True,
             "schedule": {"kind": "interval", "every": "1s"}},
            actor="test", now=NOW,
        )  # fmt: skip


def _fire(row: ScheduleRow, slot: float, claim_order: float | None = None) -> NewFire:
    return NewFire(
        fire_id=f"{row.schedule_id}_{int(slot)}",
        schedule_id=row.schedule_id,
        kind="scheduled" if claim_order is None else "catch_up",
        slot=slot,
        due_at=slot,
        deliver_by=max(slot, NOW) + 60,
        claim_order=claim_order,
    )


def _agent(instance: str = "a1", session: str = "s1", dedup: bool = False) -> Agent:
    return Agent(
        agent_instance=instance,
        session=session,
        app="shop",
        engines=frozenset({"huey"}),
        dedup_engines=frozenset({"huey"}) if dedup else frozenset(),
        labels={},
    )


def _state(store: Store, fire_id: str) -> str:
    found = store.fire(fire_id)
    assert found is not None
    return str(found["state"])


def test_two_leaders_writing_one_slot_make_one_fire(store: Store) -> None:
    row = _schedule(store)
    with store.transaction():
        first = store.insert_fires(row, [_fire(row, NOW + 1)], NOW)
        store.advance_cursor(row.schedule_id, NOW + 1, None)
    with store.transaction():  # a second leader, a moment later, computes the same slot
        second = store.insert_fires(row, [_fire(row, NOW + 1)], NOW + 0.5)
        store.advance_cursor(row.schedule_id, NOW + 0.9, None)
    assert (first, second) == (1, 0)
    assert len(store.fire_history(row.schedule_id)) == 1
    assert sched.get(store, "tick").cursor == NOW + 1  # the cursor never moves back


def test_catch_up_fires_go_out_behind_on_time_ones(store: Store) -> None:
    row = _schedule(store)
    backlog = [_fire(row, NOW - 100 + i, claim_order=NOW + 0.5) for i in range(5)]
    with store.transaction():
        store.insert_fires(row, [*backlog, _fire(row, NOW)], NOW)
    with store.transaction():
        claimed = store.claim_fires([_agent()], "brain", NOW, limit=3)
    assert [c.slot for c in claimed] == [NOW, NOW - 100, NOW - 99]


def test_an_unanswered_fire_stays_with_its_agent_unless_the_engine_dedups(store: Store) -> None:
    row = _schedule(store)
    plain, dedup = _fire(row, NOW), _fire(row, NOW + 1)
    with store.transaction():
        store.insert_fires(row, [plain], NOW)
        (claimed,) = store.claim_fires([_agent("a1", "s1")], "brain", NOW)
        store.release_unanswered_fire(claimed.fire_id, "a1", "c1")
    # Another agent never gets it; the same agent on the same session is still waited for.
    with store.transaction():
        assert store.claim_fires([_agent("a2", "s9")], "brain", NOW, reoffer=True) == []
        assert store.claim_fires([_agent("a1", "s1")], "brain", NOW, reoffer=True) == []
    # The agent reconnected (a new session): it is offered again, and answers duplicate.
    with store.transaction():
        (again,) = store.claim_fires([_agent("a1", "s2")], "brain", NOW, reoffer=True)
        store.record_fire_answer(again.fire_id, "a1", status="duplicate", command_id="c2",
                            native_id=None, reason="already enqueued", now=NOW)  # fmt: skip
    assert _state(store, plain.fire_id) == "duplicate"

    with store.transaction():
        store.insert_fires(row, [dedup], NOW)
        (claimed,) = store.claim_fires([_agent("a1", "s2", dedup=True)], "brain", NOW)
        assert claimed.native_dedup
        store.release_unanswered_fire(claimed.fire_id, "a1", "c3")
    with store.transaction():  # the engine refuses a repeated id: any agent may take it
        (other,) = store.claim_fires([_agent("a2", "s9", dedup=True)], "brain", NOW)
    assert other.fire_id == dedup.fire_id and other.agent_instance == "a2"


def test_past_the_deadline_fires_are_missed_or_unknown_never_resent(store: Store) -> None:
    row = _schedule(store)
    waiting, silent = _fire(row, NOW), _fire(row, NOW + 1)
    with store.transaction():
        store.insert_fires(row, [silent], NOW)
        store.claim_fires([_agent()], "brain", NOW)
        store.insert_fires(row, [waiting], NOW)
    with store.transaction():
        assert store.expire_fires(NOW + 1000) == (1, 1)
        assert store.claim_fires([_agent("a1", "s2")], "brain", NOW + 1000, reoffer=True) == []
    assert _state(store, waiting.fire_id) == "missed"
    assert _state(store, silent.fire_id) == "unknown"
    # A late real answer still tells the truth.
    with store.transaction():
        store.record_fire_answer(silent.fire_id, "a1", status="enqueued", command_id="c",
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


def test_the_fire_reads_tests_and_benchmarks_make(store: Store) -> None:
    row = _schedule(store)
    with store.transaction():
        store.insert_fires(row, [_fire(row, NOW + n) for n in range(3)], NOW)
        (claimed, *_) = store.claim_fires([_agent()], "brain", NOW, limit=1)
        store.record_fire_answer(claimed.fire_id, "a1", status="enqueued", command_id="c",
                                 native_id="n", reason="", now=NOW + 5)  # fmt: skip
    assert [f["slot"] for f in store.fires(app="shop")] == [NOW, NOW + 1, NOW + 2]
    assert len(store.fires(slot_from=NOW + 1, slot_before=NOW + 2)) == 1
    assert len(store.fires(exclude_kind="scheduled")) == 0
    assert len(store.fires(schedule_ids=[row.schedule_id])) == 3
    assert store.fires(schedule_ids=[]) == []
    answered = store.fires(answered_after=NOW, answered_until=NOW + 5)
    assert [f["fire_id"] for f in answered] == [claimed.fire_id]
    assert store.count_settled_fires("shop", NOW, NOW + 3) == 1
    assert store.first_fire_created_after(NOW - 1) == NOW
    assert store.first_fire_created_after(NOW) is None


def test_an_edit_moves_the_cursor_only_when_the_timing_changes(store: Store) -> None:
    row = _schedule(store)
    spec = dict(row.spec)
    with store.transaction():  # the leader settled slots up to NOW + 5
        store.advance_cursor(row.schedule_id, NOW + 5, None)
    with store.transaction():  # the same spec sent back, with a new description
        _, same = sched.edit(store, row.schedule_id, {"schedule": spec, "description": "x"},
                             actor="test", now=NOW + 60)  # fmt: skip
    assert same.cursor == NOW + 5 and same.description == "x"
    with store.transaction():
        _, changed = sched.edit(store, row.schedule_id, {"schedule": {**spec, "every": 2}},
                                actor="test", now=NOW + 60)  # fmt: skip
    assert changed.cursor == NOW + 60


def test_allow_past_is_refused_where_it_could_not_fire(store: Store) -> None:
    past = {"kind": "oneshot", "at": "2020-01-01T00:00:00Z"}
    body = {"name": "late", "task": "t", "engine": "huey", "app": "shop", "schedule": past,
            "allow_past": True, "enabled": False}  # fmt: skip
    with store.transaction():
        try:
            sched.create(store, body, actor="test", now=NOW)
        except sched.ScheduleInputError as exc:
            assert "cannot be created paused" in str(exc)
        else:
            raise AssertionError("a paused past one-shot with allow_past was accepted")


def test_a_trigger_key_written_by_the_previous_release_still_answers(store: Store) -> None:
    row = _schedule(store)
    with store.transaction():  # a brain of schema 3 (during a rolling upgrade) wrote this
        store.insert_fires(row, [_fire(row, NOW + 7)], NOW)
        store.conn.execute(
            "UPDATE fires SET idempotency_key = 'k1' WHERE fire_id = ?",
            (f"{row.schedule_id}_{int(NOW + 7)}",),
        )
    found = store.fire_by_key(row.schedule_id, "k1")
    assert found is not None and found["slot"] == NOW + 7
    other = _schedule(store, "other")
    assert store.fire_by_key(other.schedule_id, "k1") is None


def test_every_change_of_a_schedule_row_is_counted_and_cursor_moves_are_not(store: Store) -> None:
    """The leader's one-row poll: a change it would miss is a schedule that never fires as
    edited (a paused one firing on, a deleted one firing for ever)."""
    counts = [store.schedule_changes()]
    row = _schedule(store)
    counts.append(store.schedule_changes())
    with store.transaction():
        store.update_schedule(row.schedule_id, {"description": "d"}, cursor_at_least=None,
                              actor="test", now=NOW)  # fmt: skip
    counts.append(store.schedule_changes())
    with store.transaction():
        store.pause_schedule(row.schedule_id, "note", actor="test", now=NOW)
    counts.append(store.schedule_changes())
    with store.transaction():
        store.resume_schedule(row.schedule_id, actor="test", now=NOW)
    counts.append(store.schedule_changes())
    with store.transaction():  # the leader's own writes: not a change to read back
        store.insert_fires(row, [_fire(row, NOW + 1)], NOW)
        store.advance_cursor(row.schedule_id, NOW + 1, None)
    counts.append(store.schedule_changes())
    with store.transaction():
        store.delete_schedule(row, actor="test", now=NOW)
    counts.append(store.schedule_changes())
    assert counts == [0, 1, 2, 3, 4, 4, 5]


def test_the_recipe_a_leader_reads_is_the_one_made_from_the_row(store: Store) -> None:
    """The leader reads fire recipes (in the write of the fires) with the row's JSON left
    encoded; the fire it writes must carry exactly what the schedule says, whatever the
    arguments hold. What it holds between slots is only what orders them."""
    with store.transaction():
        row = sched.create(
            store,
            {"name": "odd", "task": "t", "engine": "huey", "app": "shop", "force": True,
             "labels": {"z": "1", "a": "é"}, "args": [1.5, None, "\u2603", [{"b": 1, "a": 2}]],
             "kwargs": {"k": {"y": [True]}, "e": ""}, "options": {"queue": "q", "priority": 3},
             "schedule": {"kind": "interval", "every": "1s"}},
            actor="test", now=NOW,
        )  # fmt: skip
    (held,) = store.schedules_to_hold([row.schedule_id, "no-such-schedule"])
    assert (held.schedule_id, held.version, json.loads(held.spec)) == (
        row.schedule_id, row.version, row.spec)  # fmt: skip
    assert (held.enabled, held.broken, held.cursor, held.overlap) == (True, "", row.cursor,
                                                                      "allow")  # fmt: skip
    recipes = store.fire_recipes([row.schedule_id, "no-such-schedule"])
    assert recipes == {row.schedule_id: FireRecipe.of(row)}
    with store.transaction():
        store.insert_fires(recipes[row.schedule_id], [_fire(row, NOW + 1)], NOW)
    fired = store.fire(f"{row.schedule_id}_{int(NOW + 1)}")
    assert fired is not None
    assert fired["payload"] == {"args": row.args, "kwargs": row.kwargs, "options": row.options}
    assert fired["labels"] == row.labels


def test_a_leader_loading_many_schedules_holds_them_all_and_leaves_the_collector_on(
    database: Path | str,
) -> None:
    """Past ``BULK_LOAD`` the leader pauses the garbage collector while it loads: it must be on
    again afterwards (the brain runs in this process), with every schedule held once. It reads
    and compares them a chunk at a time in the store's order of ids: changes at the first and
    the last id (a pause, a delete, a resume) must all be found, and nothing else read twice."""
    count = BULK_LOAD + 50
    store = Store.open(database)
    try:
        with store.transaction():
            for i in range(count):
                store.insert_schedule(
                    schedule_id=f"many{i:06d}", name=f"many-{i:06d}", task="t", engine="huey",
                    app="shop", labels={}, args=[i], kwargs={}, options={},
                    spec={"kind": "interval", "every": "1d"}, enabled=i % 10 != 0,
                    description="", actor="test", now=NOW,
                )  # fmt: skip
    finally:
        store.close()
    expected = sum(1 for i in range(count) if i % 10 != 0)  # every tenth is paused
    with serving(database) as brain:
        deadline = time.monotonic() + 120
        held = None
        while time.monotonic() < deadline:
            held = brain.api("GET", "/api/v1/scheduler")[1]["schedules_held"]
            if held == expected:
                break
            time.sleep(0.2)
        assert held == expected
        assert gc.isenabled()
        store = Store.open(database)
        try:
            last = store.schedule(f"many{count - 1:06d}")
            assert last is not None and last.enabled
            with store.transaction():  # each bumps the change count, as another brain's would
                store.pause_schedule("many000001", "", actor="test", now=NOW)
                store.delete_schedule(last, actor="test", now=NOW)
                store.resume_schedule("many000000", actor="test", now=NOW)
        finally:
            store.close()
        expected += -1 - 1 + 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            held = brain.api("GET", "/api/v1/scheduler")[1]["schedules_held"]
            if held == expected:
                break
            time.sleep(0.2)
        assert held == expected


def test_a_tick_written_twice_in_one_batch_makes_one_fire_per_slot(store: Store) -> None:
    """The leader writes a tick's fires of many schedules in one batch: a slot another leader
    already wrote, or the same slot twice in the batch, is still one fire (promise 3)."""
    one, two = _schedule(store, "one"), _schedule(store, "two")
    recipes = {row.schedule_id: FireRecipe.of(row) for row in (one, two)}
    with store.transaction():  # another leader wrote one's first slot
        store.insert_fires(one, [_fire(one, NOW + 1)], NOW)
    batch = [
        (recipes[row.schedule_id], _fire(row, slot), NOW + 0.5)
        for row in (one, two)
        for slot in (NOW + 1, NOW + 2, NOW + 2)
    ]
    with store.transaction():
        written = store.insert_many_fires(batch)
    assert written == 3  # one's second slot, two's first and second
    assert [f["slot"] for f in store.fire_history(one.schedule_id)] == [NOW + 2, NOW + 1]
    assert [f["slot"] for f in store.fire_history(two.schedule_id)] == [NOW + 2, NOW + 1]


def test_a_round_of_answers_applies_in_the_order_they_came(store: Store) -> None:
    """The answers of a round go in one statement per run of one kind (Postgres: over arrays,
    where one statement would apply only one of two rows about the same fire): two answers about
    one fire still apply one after the other, as they came."""
    row = _schedule(store)
    first, second, third = _fire(row, NOW), _fire(row, NOW + 1), _fire(row, NOW + 2)
    with store.transaction():
        store.insert_fires(row, [first, second], NOW)
        store.insert_fires(row, [third], NOW)
        store.claim_fires([_agent("a1", "s1", dedup=True)], "brain", NOW)
    answers = [
        # the first fire: enqueued, then a stray second answer that must find it settled
        FireAnswer(first.fire_id, "a1", "c1", "enqueued", "job-1", "", NOW + 1),
        FireAnswer(first.fire_id, "a1", "c1b", "duplicate", None, "seen", NOW + 2),
        # the second: its command went unanswered (released: a deduplicating engine), then
        # the agent's answer arrives, which is no longer this agent's to give
        FireAnswer(second.fire_id, "a1", "c2", UNANSWERED, None, "", NOW + 1),
        FireAnswer(second.fire_id, "a1", "c2", "enqueued", "job-2", "", NOW + 2),
        # the third: failed (nothing enqueued), back to pending for any agent
        FireAnswer(third.fire_id, "a1", "c3", "failed", None, "broker down", NOW + 1),
    ]
    with store.transaction():
        store.record_fire_answers(answers)
    settled = store.fire(first.fire_id)
    assert settled is not None
    assert (settled["state"], settled["native_id"], settled["command_id"]) == (
        "enqueued", "job-1", "c1")  # fmt: skip
    assert _state(store, second.fire_id) == "pending"
    failed = store.fire(third.fire_id)
    assert failed is not None and (failed["state"], failed["reason"]) == ("pending", "broker down")
    with store.transaction():  # both open fires go out again, to another agent
        again = store.claim_fires([_agent("a2", "s9", dedup=True)], "brain", NOW + 3)
    assert sorted(c.fire_id for c in again) == sorted([second.fire_id, third.fire_id])


def test_cursors_written_twice_in_one_batch_keep_the_latest(store: Store) -> None:
    """Two ticks of one schedule can share a leader's write: its cursor ends at the later slot
    and its skipped-through mark at the last one given, whichever order they came in."""
    one, two = _schedule(store, "one"), _schedule(store, "two")
    with store.transaction():
        store.advance_cursors([
            (one.schedule_id, NOW + 2, NOW - 50), (two.schedule_id, NOW + 5, None),
            (one.schedule_id, NOW + 1, NOW - 10), (two.schedule_id, NOW + 6, None),
        ])  # fmt: skip
    assert sched.get(store, "one").cursor == NOW + 2
    assert sched.get(store, "two").cursor == NOW + 6
    skipped = store.conn.execute(
        "SELECT skipped_through FROM schedules WHERE schedule_id = ?", (one.schedule_id,)
    ).fetchone()[0]
    assert skipped == NOW - 10


def test_an_answer_with_nul_characters_is_recorded(store: Store) -> None:
    """An agent's answer is text from a user's engine: a job id or a reason with a NUL in it is
    recorded (SQLite keeps it; Postgres text cannot hold one, so it becomes U+FFFD there), never
    a failed write that takes the round's other answers down with it."""
    row = _schedule(store)
    first, second, third = _fire(row, NOW), _fire(row, NOW + 1), _fire(row, NOW + 2)
    with store.transaction():
        store.insert_fires(row, [first, second, third], NOW)
        store.claim_fires([_agent("a1", "s1", dedup=False)], "brain", NOW)
    with store.transaction():
        store.record_fire_answers([
            FireAnswer(first.fire_id, "a1", "c1", "enqueued", "job\x00-1", "", NOW + 1),
            FireAnswer(second.fire_id, "a1", "c2", "rejected", None, "no\x00such", NOW + 1),
        ])  # fmt: skip
        store.release_unanswered_fire(third.fire_id, "a1", "c3", "lost\x00link")
    enqueued, rejected = store.fire(first.fire_id), store.fire(second.fire_id)
    released = store.fire(third.fire_id)
    assert enqueued is not None and rejected is not None and released is not None
    assert released["reason"] in ("lost\x00link", "lost\ufffdlink")
    assert (enqueued["state"], enqueued["native_id"]) in (
        ("enqueued", "job\x00-1"), ("enqueued", "job\ufffd-1"))  # fmt: skip
    assert (rejected["state"], rejected["reason"]) in (
        ("rejected", "no\x00such"), ("rejected", "no\ufffdsuch"))  # fmt: skip
