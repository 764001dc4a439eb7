"""Keyset paging of the list routes (SQLite and Postgres): paging returns each row once and in
order while rows are written between pages; filters hold across pages; the list queries read an
index range (no scan and sort); a malformed cursor is a 400 that says so; the CLI pages with
``--limit`` and ``--cursor``."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest
from brain_helpers import ADMIN, RunningBrain

from z4j_brain import schedules as sched
from z4j_brain.db import POSTGRES
from z4j_brain.paging import CursorError, decode_cursor, encode_cursor, page
from z4j_brain.store import NewFire, Store
from z4j_core.wire import Event, LifecycleKind

NOW = 1_800_000_000.0


def _store_tasks(
    store: Store,
    ids: list[str],
    at: float,
    *,
    kind: LifecycleKind = LifecycleKind.SUCCEEDED,
    engine: str = "e",
    agent: str = "a",
    app: str = "shop",
) -> None:
    """One batch: every task of it shares ``updated_at`` (ties the order must break). The
    sequence numbers of one agent grow with ``at``."""
    events = [
        Event(seq=int(at * 1000) + i, kind=kind, at=NOW, engine=engine, task_id=t, task_name="n")
        for i, t in enumerate(ids)
    ]
    with store.transaction():
        store.store_events(agent, app, events, at)


def _key(t: dict[str, Any]) -> tuple[float, str, str]:
    return (t["updated_at"], t["engine"], t["task_id"])


def _all_pages(store: Store, limit: int, between: Any = None, **filters: Any) -> list[Any]:
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        rows, cursor = page("tasks", store.tasks(cursor=cursor, limit=limit + 1, **filters), limit)
        seen += rows
        pages += 1
        if cursor is None:
            return seen
        if between is not None:
            between(pages)
        assert pages < 1000


def test_cursor_round_trips_and_refuses_what_it_did_not_give() -> None:
    cursor = encode_cursor("tasks", (NOW + 0.25, "celery", "id/with?odd&chars é"))
    assert cursor.isascii() and "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor("tasks", cursor) == (NOW + 0.25, "celery", "id/with?odd&chars é")
    assert decode_cursor("audit", encode_cursor("audit", (7,))) == (7,)
    bad = [
        "", "nope", "!!!!", encode_cursor("audit", (7,)), encode_cursor("tasks", (1.0, "e")),
        encode_cursor("tasks", ("x", "e", "t")), encode_cursor("audit", (True,)),
        encode_cursor("fires", (1.0, 2.0, 3)), "x" * 5000,
    ]  # fmt: skip
    for text in bad:
        with pytest.raises(CursorError, match="malformed cursor"):
            decode_cursor("tasks", text)
    with pytest.raises(CursorError, match="malformed cursor"):
        decode_cursor("audit", encode_cursor("audit", ("7",)))
    # Values the stores cannot hold are refused too, not met as an overflow in SQL.
    huge = base64.urlsafe_b64encode(f'["tasks",{"9" * 400},"e","t"]'.encode()).decode()
    infinite = base64.urlsafe_b64encode(b'["tasks",1e999,"e","t"]').decode()
    for text in (huge, infinite, encode_cursor("tasks", (-1e301, "e", "t"))):
        with pytest.raises(CursorError, match="malformed cursor"):
            decode_cursor("tasks", text)
    with pytest.raises(CursorError, match="malformed cursor"):
        decode_cursor("audit", encode_cursor("audit", (10**30,)))


def test_paging_returns_each_task_once_in_order_while_tasks_arrive(store: Store) -> None:
    # 60 tasks in 6 batches of 10: ten tasks share each updated_at, and two engines share ids.
    for b in range(6):
        ids = [f"t{b}-{i}" for i in range(10)]
        _store_tasks(store, ids[:5], NOW + b)
        _store_tasks(store, ids[5:], NOW + b, engine="f" if b % 2 else "e", agent="b")
    _store_tasks(store, ["t0-0"], NOW + 2.5, engine="f", agent="c")  # same id, other engine
    before = store.tasks(limit=1000)
    assert len(before) == 61
    added_newer: list[str] = []
    added_older: list[str] = []

    def write_between(pages: int) -> None:
        # A newer task lands before the cursor (not on later pages); an older one after it
        # (on a later page, once). Both are in the next full read.
        newer, older = f"new{pages}", f"old{pages}"
        _store_tasks(store, [newer], NOW + 100 + pages, agent=f"n{pages}")
        _store_tasks(store, [older], NOW - 100 - pages, agent=f"o{pages}")
        added_newer.append(newer)
        added_older.append(older)

    seen = _all_pages(store, 7, between=write_between)
    keys = [_key(t) for t in seen]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)
    ids = {(t["engine"], t["task_id"]) for t in seen}
    assert {(t["engine"], t["task_id"]) for t in before} <= ids
    assert {("e", i) for i in added_older} <= ids
    assert not {("e", i) for i in added_newer} & ids
    # Paging whatever the page size gives the same rows as one read.
    everything = store.tasks(limit=10000)
    for limit in (1, 3, 10, 500):
        assert [_key(t) for t in _all_pages(store, limit)] == [_key(t) for t in everything]


def test_filters_and_time_window_hold_across_pages(store: Store) -> None:
    for b in range(8):
        kind = LifecycleKind.FAILED if b % 2 else LifecycleKind.SUCCEEDED
        _store_tasks(store, [f"x{b}-{i}" for i in range(4)], NOW + b, kind=kind)
    failed = _all_pages(store, 3, state="failed")
    assert len(failed) == 16 and {t["state"] for t in failed} == {"failed"}
    assert [_key(t) for t in failed] == sorted((_key(t) for t in failed), reverse=True)
    window = _all_pages(store, 3, since=NOW + 2, until=NOW + 6)
    assert {t["updated_at"] for t in window} == {NOW + 2, NOW + 3, NOW + 4, NOW + 5}
    assert len(window) == 16
    both = _all_pages(store, 2, state="succeeded", since=NOW + 2, until=NOW + 6, engine="e")
    assert {t["updated_at"] for t in both} == {NOW + 2, NOW + 4} and len(both) == 8
    assert _all_pages(store, 5, task_id="x3-1") == store.tasks(task_id="x3-1")
    # A scope of several apps merges one range per app, in the same order.
    for b in range(6):
        _store_tasks(store, [f"y{b}-{i}" for i in range(3)], NOW + b + 0.5, app=f"app{b % 3}",
                     agent=f"y{b}")  # fmt: skip
    scope = ["app0", "app2", "elsewhere"]
    scoped = _all_pages(store, 4, apps=scope)
    expected = [t for t in store.tasks(limit=1000) if t["app"] in scope]
    assert [_key(t) for t in scoped] == [_key(t) for t in expected] and len(scoped) == 12
    assert [_key(t) for t in _all_pages(store, 4, apps=scope, app="app2")] == [
        _key(t) for t in expected if t["app"] == "app2"
    ]
    assert store.tasks(apps=scope, app="app1") == [] == store.tasks(apps=[])
    with pytest.raises(CursorError):
        store.tasks(cursor="garbage")


def test_fire_history_audit_and_actions_page(store: Store) -> None:
    with store.transaction():
        row = sched.create(
            store,
            {"name": "tick", "task": "t", "engine": "huey", "app": "shop", "force": True,
             "schedule": {"kind": "interval", "every": "1s"}},
            actor="test", now=NOW,
        )  # fmt: skip
        fires = [
            NewFire(fire_id=f"{row.schedule_id}_{i}", schedule_id=row.schedule_id,
                    kind="scheduled", slot=NOW + i // 2, due_at=NOW + i // 2, deliver_by=NOW + 99)
            for i in range(23)
        ]  # fmt: skip
        store.insert_fires(row, fires, NOW)
        for i in range(17):
            store.insert_action(
                action_id=f"act{i:02d}", kind="retry", engine="huey",
                app="shop" if i % 3 else "other", task_id=f"t{i}", task=None, queue=None,
                options={}, status="done", reason="", agent_instance=None, bulk_id=None,
                requested_by="test", requested_from="test", requested_at=NOW + i // 4,
            )  # fmt: skip
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        rows, cursor = page("fires", store.fire_history(row.schedule_id, 5, cursor), 4)
        seen += rows
        if cursor is None:
            break
    assert len({f["fire_id"] for f in seen}) == 23 == len(seen)
    keys = [(f["slot"], f["created_at"], f["fire_id"]) for f in seen]
    assert keys == sorted(keys, reverse=True)

    actions: list[dict[str, Any]] = []
    cursor = None
    while True:
        rows, cursor = page("actions", store.actions(cursor=cursor, limit=4, apps=["shop"]), 3)
        actions += rows
        if cursor is None:
            break
    assert [a["action_id"] for a in actions] == [
        a["action_id"] for a in store.actions(limit=100) if a["app"] == "shop"
    ]
    assert len(actions) == 11


@contextmanager
def _recording(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the store runs meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []
    execute = store.conn.execute

    def record(sql: str, params: Any = ()) -> Any:
        seen.append((sql, params))
        return execute(sql, params)

    store.conn.execute = record  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        store.conn.execute = execute  # type: ignore[method-assign]


def _plan(store: Store, sql: str, params: Any, *, ordered: bool = True) -> str:
    if store.dialect == POSTGRES:
        with store.transaction():
            # Small tables read faster by a scan and a sort: forbid both to see whether an index
            # gives the rows in order (the planner still sorts when none can).
            off = ("enable_seqscan", "enable_bitmapscan", "enable_sort") if ordered else ()
            for setting in off or ("enable_seqscan",):
                store.conn.execute(f"SET LOCAL {setting} = off")
            rows = store.conn.execute("EXPLAIN " + sql, params).fetchall()
        return "\n".join(str(r[0]) for r in rows)
    rows = store.conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return "\n".join(str(r[-1]) for r in rows)


LIST_QUERIES = {
    "first page": {},
    "state": {"state": "failed"},
    "name": {"name": "n"},
    "engine": {"engine": "e"},
    "app": {"app": "shop"},
    "window": {"since": NOW, "until": NOW + 5},
    "state and window": {"state": "failed", "since": NOW, "until": NOW + 5},
}


@pytest.mark.parametrize("deep", [False, True], ids=["first", "deep"])
@pytest.mark.parametrize("filters", LIST_QUERIES.values(), ids=LIST_QUERIES.keys())
def test_list_queries_read_an_index_range_in_order(
    store: Store, filters: dict[str, Any], deep: bool
) -> None:
    _store_tasks(store, [f"p{i}" for i in range(20)], NOW + 1)
    cursor = encode_cursor("tasks", (NOW + 1, "e", "p10")) if deep else None
    with _recording(store) as seen:
        store.tasks(cursor=cursor, limit=10, **filters)
    (sql, params), *_ = seen
    plan = _plan(store, sql, params)
    if store.dialect == POSTGRES:
        assert "Index" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    else:
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


def test_task_id_search_and_other_lists_use_indexes(store: Store) -> None:
    with store.transaction():
        row = sched.create(
            store,
            {"name": "tick", "task": "t", "engine": "huey", "app": "shop", "force": True,
             "schedule": {"kind": "interval", "every": "1s"}},
            actor="test", now=NOW,
        )  # fmt: skip
    with _recording(store) as seen:
        store.tasks(task_id="p1", limit=10)
        store.fire_history(row.schedule_id, 10, encode_cursor("fires", (NOW, NOW, "f")))
        store.actions(cursor=encode_cursor("actions", (NOW, "a")), limit=10)
    search, *lists = seen
    # A task id search sorts the few rows of that id (one per engine), no more.
    assert "tasks_task_id" in _plan(store, *search, ordered=False)
    for sql, params in lists:
        plan = _plan(store, sql, params)
        assert "fires_schedule_recent" in plan or "actions_recent" in plan, plan
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan


# -- the API and the CLI -------------------------------------------------------------------------


def _get(brain: RunningBrain, path: str) -> tuple[int, Any]:
    return brain.api("GET", path)


def test_the_api_pages_tasks_audit_and_fires_and_refuses_a_bad_cursor(
    running_brain: RunningBrain,
) -> None:
    store = Store.open(running_brain.database)
    try:
        for b in range(5):
            _store_tasks(store, [f"api{b}-{i}" for i in range(5)], NOW + b)
    finally:
        store.close()
    seen: list[dict[str, Any]] = []
    path = "/api/v1/tasks?limit=4&since=" + str(NOW + 1)
    cursor = None
    while True:
        status, body = _get(running_brain, path + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        seen += body["tasks"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 20 and len({t["task_id"] for t in seen}) == 20
    assert [_key(t) for t in seen] == sorted((_key(t) for t in seen), reverse=True)

    for name in ("a", "b", "c"):
        assert running_brain.api("POST", "/api/v1/tokens", {"name": name})[0] == 201
    status, first = _get(running_brain, "/api/v1/audit?limit=2")
    assert status == 200 and len(first["audit"]) == 2 and first["next_cursor"]
    status, rest = _get(running_brain, f"/api/v1/audit?limit=2&cursor={first['next_cursor']}")
    assert status == 200 and [r["seq"] for r in rest["audit"]] == [3]
    assert rest["next_cursor"] is None

    status, created = running_brain.api(
        "POST", "/api/v1/schedules",
        {"name": "tick", "task": "t", "engine": "huey", "app": "shop", "force": True,
         "schedule": {"kind": "interval", "every": "1h"}},
    )  # fmt: skip
    assert status == 201, created
    status, history = _get(running_brain, "/api/v1/schedules/tick/fires?limit=5")
    assert status == 200 and history["next_cursor"] is None

    tasks_cursor = body["next_cursor"] or encode_cursor("tasks", (NOW, "e", "x"))
    for path in (
        "/api/v1/tasks?cursor=not-a-cursor",
        f"/api/v1/tasks?cursor={quote(first['next_cursor'])}",  # the audit's, not the tasks'
        "/api/v1/audit?cursor=%25%25",
        f"/api/v1/schedules/tick/fires?cursor={tasks_cursor}",
        f"/api/v1/actions?cursor={tasks_cursor}",
        "/api/v1/tasks?since=yesterday",
    ):
        status, answer = _get(running_brain, path)
        assert status == 400, (path, answer)
        assert "malformed cursor" in answer["error"] or "epoch seconds" in answer["error"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_cli_pages_with_limit_and_cursor(running_brain: RunningBrain) -> None:
    store = Store.open(running_brain.database)
    try:
        _store_tasks(store, [f"cli{i}" for i in range(5)], time.time())
    finally:
        store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update(Z4J_BRAIN_URL=running_brain.url, Z4J_ADMIN_TOKEN=ADMIN)

    def z4j(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "z4j_core.cli", *args],
            capture_output=True, text=True, env=env, timeout=90,
        )  # fmt: skip

    first = z4j("tasks", "--limit", "3", "--json")
    assert first.returncode == 0, first.stderr
    hint = first.stderr.strip().splitlines()[-1]
    assert hint.startswith("z4j: more rows: run again with --cursor ")
    cursor = hint.rsplit(" ", 1)[1]
    second = z4j("tasks", "--limit", "3", "--cursor", cursor)
    assert second.returncode == 0, second.stderr
    assert "more rows" not in second.stderr
    shown = first.stdout + second.stdout
    assert all(shown.count(f"cli{i}") == 1 for i in range(5)), shown
    bad = z4j("tasks", "--cursor", "nope")
    assert bad.returncode != 0 and "malformed cursor" in bad.stderr
    assert "--limit must be between" in z4j("tasks", "--limit", "0").stderr
    recent = z4j("tasks", "--since", "1h", "--json")  # the tasks were updated just now
    assert recent.returncode == 0 and recent.stdout.count('"task_id"') == 5, recent.stderr
    assert "duration" in z4j("tasks", "--since", "soon").stderr
