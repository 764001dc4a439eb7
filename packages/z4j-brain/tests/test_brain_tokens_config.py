"""Tokens (create, verify, revoke, expire; constant-time compare), config, the writer."""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from z4j_brain import tokens as tokens_module
from z4j_brain.config import BrainConfig, ConfigError
from z4j_brain.store import Store, StoreError
from z4j_brain.store.schedules import FireAnswer
from z4j_brain.tokens import (
    AdminCheck,
    TokenError,
    create_token,
    ensure_admin_token,
    find_token,
    hash_hex,
    parse_labels,
)
from z4j_brain.writer import StoreWriter
from z4j_core.wire.signing import token_hash


def test_create_keeps_only_the_keyed_hash(store: Store) -> None:
    token = create_token(store, "api-1", {"env": "prod"}, now=10.0)
    assert token.startswith("z4j_") and len(token) > 40
    (row,) = store.token_rows()
    assert row.token_hash == token_hash(token).hex()
    # The secret is nowhere in the database (every table, every column).
    tables = ["tokens", "admin_tokens", "agents", "events", "tasks", "commands", "inventory"]
    dump = repr([list(r) for t in tables for r in store.conn.execute(f"SELECT * FROM {t}")])
    assert "api-1" in dump and token not in dump


def test_verify_revoke_expire(store: Store) -> None:
    good = create_token(store, "good", {}, now=10.0)
    expiring = create_token(store, "soon", {}, now=10.0, expires_at=100.0)
    rows = store.token_rows()
    assert find_token(rows, good, now=50.0) is not None
    assert find_token(rows, expiring, now=50.0) is not None
    assert find_token(rows, expiring, now=100.0) is None
    assert find_token(rows, "z4j_wrong", now=50.0) is None
    with store.transaction():
        assert store.revoke_token("good", now=60.0)
        assert not store.revoke_token("missing", now=60.0)
    assert find_token(store.token_rows(), good, now=61.0) is None


def test_names_are_unique_and_checked(store: Store) -> None:
    create_token(store, "a", {}, now=1.0)
    with pytest.raises(StoreError, match="already exists"):
        create_token(store, "a", {}, now=1.0)
    with pytest.raises(TokenError):
        create_token(store, "has space", {}, now=1.0)


def test_compare_is_constant_time_over_every_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create_token(store, "one", {}, now=1.0)
    create_token(store, "two", {}, now=1.0)
    create_token(store, "three", {}, now=1.0)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", spy)
    assert find_token(store.token_rows(), first, now=2.0) is not None
    assert len(calls) == 3  # no early exit on the match
    calls.clear()
    assert AdminCheck(hash_hex("secret")).verify("secret")
    assert not AdminCheck(hash_hex("secret")).verify("other")
    assert len(calls) == 2


def test_admin_token_is_created_once(store: Store) -> None:
    token = ensure_admin_token(store, now=1.0)
    assert token is not None and token.startswith("z4j_admin_")
    assert ensure_admin_token(store, now=2.0) is None
    assert store.admin_token_hash() == hash_hex(token)


def test_parse_labels() -> None:
    assert parse_labels("env=prod, zone=a") == {"env": "prod", "zone": "a"}
    assert parse_labels(None) == {}
    with pytest.raises(TokenError, match="key=value"):
        parse_labels("env")


def test_config_precedence_and_errors(tmp_path: Path) -> None:
    env = {"Z4J_HOME": str(tmp_path), "Z4J_BRAIN_PORT": "8000", "Z4J_EVENT_RETENTION_DAYS": "2"}
    config = BrainConfig.load(env=env)
    assert config.port == 8000 and config.host == "127.0.0.1"
    assert config.database == tmp_path / "brain.sqlite3"
    assert config.retention_seconds == 2 * 86400
    assert BrainConfig.load(port=9000, database=tmp_path / "x.db", env=env).port == 9000
    with pytest.raises(ConfigError, match="Z4J_BRAIN_PORT"):
        BrainConfig.load(env={"Z4J_BRAIN_PORT": "eighty"})
    with pytest.raises(ConfigError, match="limits"):
        BrainConfig.load(env={"Z4J_WINDOW": "0"})
    assert BrainConfig.load(env={}).database.name == "brain.sqlite3"


def test_the_purge_interval_is_a_positive_number_of_seconds() -> None:
    assert BrainConfig.load(env={}).purge_interval_seconds == 300.0
    assert BrainConfig.load(env={"Z4J_PURGE_INTERVAL_SECONDS": "30"}).purge_interval_seconds == 30
    for bad in ("0", "-5", "often"):
        with pytest.raises(ConfigError, match="Z4J_PURGE_INTERVAL_SECONDS"):
            BrainConfig.load(env={"Z4J_PURGE_INTERVAL_SECONDS": bad})


def test_secure_cookies_follow_tls_unless_set() -> None:
    assert not BrainConfig.load(env={}).cookies_secure  # plain HTTP, no proxy said
    behind_proxy = BrainConfig.load(env={"Z4J_SECURE_COOKIES": "true"})
    assert behind_proxy.cookies_secure and not behind_proxy.tls
    assert not BrainConfig.load(env={"Z4J_SECURE_COOKIES": "0"}).cookies_secure
    with pytest.raises(ConfigError, match="Z4J_SECURE_COOKIES must be 1 or 0"):
        BrainConfig.load(env={"Z4J_SECURE_COOKIES": "sometimes"})
    with pytest.raises(ConfigError, match="Z4J_ACCESS_LOG must be 1 or 0"):
        BrainConfig.load(env={"Z4J_ACCESS_LOG": "loud"})
    assert not BrainConfig.load(env={"Z4J_ACCESS_LOG": "off"}).access_log


def test_writer_commits_groups_and_isolates_a_failing_job(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    Store.open(path).close()
    writer = StoreWriter(path)
    writer.start()
    gate = threading.Event()
    blocker = writer.submit(lambda s: gate.wait(5))
    good = writer.submit(
        lambda s: s.revoke_token("x", 1.0) or s.create_token("a", "00", {}, 1.0, None)
    )
    bad = writer.submit(lambda s: s.create_token("a", "11", {}, 1.0, None))  # same name: fails
    later = writer.submit(lambda s: s.create_token("b", "22", {}, 1.0, None))
    gate.set()
    assert blocker.result(5) is True
    good.result(5)
    with pytest.raises(StoreError):
        bad.result(5)
    later.result(5)
    writer.close()
    reader = Store.open(path)
    assert [r.name for r in reader.token_rows()] == ["a", "b"]
    reader.close()


def test_a_job_alone_in_its_group_that_fails_leaves_no_write_behind(tmp_path: Path) -> None:
    # A lone job runs without a savepoint: its failure must roll its writes back all the same.
    path = tmp_path / "db.sqlite3"
    Store.open(path).close()
    writer = StoreWriter(path)
    writer.start()

    def half_done(s: Store) -> None:
        s.create_token("half", "00", {}, 1.0, None)
        raise RuntimeError("the job fails after its first write")

    with pytest.raises(RuntimeError, match="after its first write"):
        writer.submit(half_done).result(5)
    writer.submit(lambda s: s.create_token("next", "11", {}, 1.0, None)).result(5)
    writer.close()
    reader = Store.open(path)
    assert [r.name for r in reader.token_rows()] == ["next"]
    reader.close()


def test_an_urgent_job_runs_before_the_ordinary_ones_queued_with_it(tmp_path: Path) -> None:
    # A fire's write must not wait behind a queue of event batches.
    path = tmp_path / "db.sqlite3"
    Store.open(path).close()
    writer = StoreWriter(path)
    writer.start()
    ran: list[str] = []
    started, gate = threading.Event(), threading.Event()

    def running(s: Store) -> None:
        started.set()
        gate.wait(5)
        ran.append("running")

    blocker = writer.submit(running)
    assert started.wait(5)
    ordinary = [writer.submit(lambda s, n=n: ran.append(f"ordinary {n}")) for n in range(3)]
    urgent = writer.submit(lambda s: ran.append("urgent"), urgent=True)
    gate.set()
    blocker.result(5)
    urgent.result(5)
    for future in ordinary:
        future.result(5)
    writer.close()
    assert ran == ["running", "urgent", "ordinary 0", "ordinary 1", "ordinary 2"]


def test_a_flood_of_urgent_jobs_never_starves_the_ordinary_ones(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    Store.open(path).close()
    writer = StoreWriter(path)
    writer.start()
    flooding = threading.Event()
    flooding.set()

    def flood() -> None:
        while flooding.is_set():
            writer.submit(lambda s: time.sleep(0.001), urgent=True)
            time.sleep(0.0005)  # faster than the writer runs them: the urgent queue never empties

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        time.sleep(0.2)
        ordinary = writer.submit(lambda s: "done")
        assert ordinary.result(30) == "done"  # while the flood goes on
    finally:
        flooding.clear()
        flooder.join()
        writer.close()


def test_an_urgent_job_cuts_a_running_group_of_ordinary_ones_short(tmp_path: Path) -> None:
    # A group of event batches already under way yields after the job it is running: a fire's
    # write waits for one ordinary job at most, never for a whole group of them.
    path = tmp_path / "db.sqlite3"
    Store.open(path).close()
    writer = StoreWriter(path)
    writer.start()
    ran: list[str] = []

    def gated(name: str, started: threading.Event, gate: threading.Event) -> Any:
        def job(s: Store) -> None:
            started.set()
            gate.wait(5)
            ran.append(name)

        return job

    first = threading.Event(), threading.Event()
    second = threading.Event(), threading.Event()
    futures = [writer.submit(gated("first", *first))]
    assert first[0].wait(5)  # the writer is busy: what follows queues up as one group
    futures.append(writer.submit(gated("second", *second)))
    futures += [writer.submit(lambda s, n=n: ran.append(f"ordinary {n}")) for n in range(2)]
    first[1].set()
    assert second[0].wait(5)  # that group is running its first job
    futures.append(writer.submit(lambda s: ran.append("urgent"), urgent=True))
    second[1].set()
    for future in futures:
        future.result(5)
    writer.close()
    assert ran == ["first", "second", "urgent", "ordinary 0", "ordinary 1"]


def test_an_answer_that_cannot_be_written_fails_alone_not_the_answers_written_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Answers arriving together are written in one transaction; when one of them cannot be
    # written, the others must still be kept (written again, each on its own).
    from z4j_brain.brain import Brain, CommandOutcome

    path = tmp_path / "db.sqlite3"
    Store.open(path).close()
    config = BrainConfig.load(database=path, env={"Z4J_ADMIN_TOKEN": "z4j_admin_" + "x" * 40})
    brain = Brain(config)
    brain.writer.start()
    ids = ["c-ok-1", "c-refused", "c-ok-2"]
    fields = {"agent_instance": "inst-1", "kind": "enqueue", "engine": "e", "app": "shop",
              "task": "t", "payload": {}, "fire_id": None, "created_at": 1.0,
              "deadline_at": 2.0}  # fmt: skip
    for command_id in ids:
        brain.writer.submit(lambda s, c=command_id: s.insert_command(command_id=c, **fields))
    brain.writer.submit(lambda s: None).result(5)  # in order: every row is stored

    record_fire_answers = Store.record_fire_answers

    def refuse(store: Store, answers: Sequence[FireAnswer]) -> None:
        if any(a.fire_id == "f-refused" for a in answers):
            raise StoreError("this fire's record is refused")
        record_fire_answers(store, answers)

    monkeypatch.setattr(Store, "record_fire_answers", refuse)

    async def answer_together() -> list[BaseException | None]:
        blocked = threading.Event()
        gate = brain.writer.submit(lambda s: blocked.wait(5), urgent=True)  # answers pile up
        router = brain.commands
        recording = [
            asyncio.ensure_future(
                router._record(
                    CommandOutcome(c, "inst-1", "enqueued", f"n-{c}"),
                    "f-refused" if c == "c-refused" else None,
                )
            )
            for c in ids
        ]
        await asyncio.sleep(0)  # the first goes alone; the other two wait, then go together
        blocked.set()
        await asyncio.wrap_future(gate)
        done = await asyncio.gather(*recording, return_exceptions=True)
        return [d if isinstance(d, BaseException) else None for d in done]

    failures = asyncio.run(answer_together())
    brain.writer.close()
    assert [type(f) if f else None for f in failures] == [None, StoreError, None], failures
    reader = Store.open(path)
    try:
        rows = {c: reader.command(c) for c in ids}
    finally:
        reader.close()
    assert {c: (r or {}).get("status") for c, r in rows.items()} == {
        "c-ok-1": "enqueued", "c-refused": "pending", "c-ok-2": "enqueued"
    }  # fmt: skip
