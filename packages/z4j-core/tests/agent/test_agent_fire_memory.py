"""Fire-id memory: a fire is enqueued at most once by all the processes of an app on a host,
across restarts, for its time to live."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from z4j_core.agent.commands import COMPACT_WHILE_RUNNING, FireMemory


def test_a_claim_is_seen_by_another_process_memory_on_the_same_log(tmp_path: Path) -> None:
    log = tmp_path / "fires-app.log"
    first, second = FireMemory(log), FireMemory(log)
    assert first.claim("s1_20250101T000000Z") is None
    assert second.claim("s1_20250101T000000Z") == ""  # in progress elsewhere: duplicate
    first.settle("s1_20250101T000000Z", "job-1")
    assert second.claim("s1_20250101T000000Z") == "job-1"


def test_a_failed_attempt_releases_the_fire_for_another_try(tmp_path: Path) -> None:
    log = tmp_path / "fires-app.log"
    first, second = FireMemory(log), FireMemory(log)
    assert first.claim("f") is None
    first.settle("f", None)
    assert second.claim("f") is None


def test_a_restarted_agent_remembers_and_forgets_after_the_ttl(tmp_path: Path) -> None:
    log = tmp_path / "fires-app.log"
    memory = FireMemory(log)
    assert memory.claim("f") is None
    memory.settle("f", "native-f")
    assert FireMemory(log).claim("f") == "native-f"
    assert FireMemory(log, ttl=0.0).claim("f") is None


def test_without_a_log_the_memory_is_per_process(tmp_path: Path) -> None:
    memory = FireMemory(None)
    assert memory.claim("f") is None
    assert memory.claim("f") == ""
    memory.settle("f", "n")
    assert memory.claim("f") == "n"


def test_the_log_is_compacted_and_others_follow_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "fires-app.log"
    memory = FireMemory(log, ttl=3600)
    for i in range(400):
        assert memory.claim(f"f{i}") is None
        memory.settle(f"f{i}", None)  # released: dead lines
    memory.claim("keep")
    memory.settle("keep", "k")
    size = log.stat().st_size
    other = FireMemory(log)  # compacts at start
    assert log.stat().st_size < size
    assert other.claim("keep") == "k"
    assert memory.claim("keep") == "k"  # the old handle notices the new file
    assert memory.claim("f1") is None


def test_a_long_lived_process_remembers_a_bounded_number_of_fires(tmp_path: Path) -> None:
    """A worker fed fires for days: memory keeps the newest `max_entries`, and the log is
    compacted as it goes instead of growing by two lines per fire forever."""
    log = tmp_path / "fires-app.log"
    memory = FireMemory(log, max_entries=100)
    for i in range(40_000):
        assert memory.claim(f"f{i:05d}") is None
        memory.settle(f"f{i:05d}", f"n{i}")
    assert memory.claim("f39999") == "n39999"  # the newest are remembered
    assert memory.claim("f00000") is None  # the oldest were forgotten
    assert log.stat().st_size < COMPACT_WHILE_RUNNING + 4096  # 40,000 fires wrote 2.4 MB
    assert FireMemory(log).claim("f39990") == "n39990"  # the compacted log still holds them


def test_without_a_log_the_memory_is_bounded_too() -> None:
    memory = FireMemory(None, max_entries=10)
    for i in range(50):
        assert memory.claim(f"f{i}") is None
    assert memory.claim("f49") == ""
    assert memory.claim("f0") is None


def _claim_all(path: str, fire_ids: list[str], results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    memory = FireMemory(Path(path))
    won = []
    for fire_id in fire_ids:
        if memory.claim(fire_id) is None:
            won.append(fire_id)
            time.sleep(0.0005)
            memory.settle(fire_id, f"native-{fire_id}")
    results.put(won)


def test_processes_racing_for_the_same_fires_enqueue_each_exactly_once(tmp_path: Path) -> None:
    fire_ids = [f"s_{i:04d}" for i in range(200)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_claim_all, args=(str(tmp_path / "fires.log"), fire_ids, results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    won: list[str] = []
    for _ in workers:
        won.extend(results.get(timeout=60))
    for worker in workers:
        worker.join(30)
    assert sorted(won) == fire_ids  # every fire claimed, none twice
