"""Where the soak's Huey consumer's memory goes: the soak of bench/soak.py (SQLite brain, 100
fires/s into a real Huey consumer with the agent) with the consumer under tracemalloc.

    python bench/soak_huey_memory.py                    # ten minutes, snapshots every minute
    python bench/soak_huey_memory.py --minutes 3 --every 30

The consumer (and only it: z4j_core/testing/memtrace/sitecustomize.py picks it by its command)
dumps a tracemalloc snapshot and its resident memory every `--every` seconds. At the end this
prints, per dump, the resident memory and what Python allocations account for (traced), then
the growth between the first dump after `--warm-up` and the last, by source line and by file:
traced growth that a line explains, and resident growth that no Python allocation explains
(C allocations: SQLite's page caches, the allocator's arenas). Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

from z4j_core.testing.faults.engine import environ
from z4j_core.testing.soak import SoakPlan, run_soak

MEMTRACE = Path(__file__).resolve().parents[1] / "packages/z4j-core/src/z4j_core/testing/memtrace"
PROGRAM = "huey.bin.huey_consumer"
IGNORED = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>"))


def dumps(folder: Path) -> list[tuple[int, Path, int, int]]:
    """(seconds, snapshot file, rss bytes, traced bytes) of every dump, in order."""
    found = []
    for snapshot in sorted(folder.glob("snapshot-*.pickle")):
        seconds = int(snapshot.stem.split("-")[1])
        rss_file = folder / f"rss-{seconds:06d}.txt"
        if rss_file.exists():
            rss, traced = (int(x) for x in rss_file.read_text().split())
            found.append((seconds, snapshot, rss, traced))
    return found


def analyse(folder: Path, warm_up: float, fires_per_s: int) -> None:
    found = dumps(folder)
    if len(found) < 2:
        print(f"fewer than two snapshots in {folder}: run longer than two --every periods")
        return
    print(f"{'t s':>6} {'rss MiB':>8} {'traced MiB':>10} {'untraced MiB':>12}")
    for seconds, _, rss, traced in found:
        untraced = (rss - traced) / 2**20
        print(f"{seconds:6d} {rss / 2**20:8.1f} {traced / 2**20:10.1f} {untraced:12.1f}")
    first = next((d for d in found if d[0] >= warm_up), found[0])
    last = found[-1]
    span = last[0] - first[0]
    fires = fires_per_s * span
    rss_growth, traced_growth = last[2] - first[2], last[3] - first[3]
    print(
        f"from {first[0]} s to {last[0]} s ({fires:,} fires): resident +{rss_growth / 2**20:.1f} "
        f"MiB ({rss_growth / max(fires, 1):.0f} B/fire), traced +{traced_growth / 2**20:.1f} MiB "
        f"({traced_growth / max(fires, 1):.0f} B/fire), untraced "
        f"+{(rss_growth - traced_growth) / 2**20:.1f} MiB"
    )
    old = tracemalloc.Snapshot.load(str(first[1])).filter_traces(IGNORED)
    new = tracemalloc.Snapshot.load(str(last[1])).filter_traces(IGNORED)
    for key, top in (("filename", 12), ("lineno", 15)):
        print(f"traced growth by {key} (top {top}):")
        for stat in new.compare_to(old, key)[:top]:
            frame = stat.traceback[0]
            where = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
            where = where.split("site-packages/")[-1].split("/src/")[-1]
            print(
                f"  {stat.size_diff / 2**10:+9.0f} KiB {stat.count_diff:+8d} blocks "
                f"(now {stat.size / 2**10:8.0f} KiB)  {where}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length (10)")
    parser.add_argument("--fires-per-s", type=int, default=100, help="1 s schedules (100)")
    parser.add_argument("--events-per-s", type=float, default=100.0, help="emitter's (100)")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between dumps (60)")
    parser.add_argument("--warm-up", type=float, default=120.0, help="seconds (120)")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth traced (1)")
    parser.add_argument("--analyse", type=Path, help="only analyse the dumps in this folder")
    options = parser.parse_args()
    if options.analyse is not None:
        analyse(options.analyse, options.warm_up, options.fires_per_s)
        return 0
    seconds = round(options.minutes * 60)
    if seconds < 2 * options.every:
        parser.error("--minutes must cover at least two --every periods")
    work = Path(tempfile.mkdtemp(prefix="z4j-bench-huey-memory-"))
    folder = work / "tracemalloc"
    plan = SoakPlan(seconds=seconds, events_per_s=options.events_per_s, emitters=1,
                    schedules=options.fires_per_s, sample_every=options.every,
                    connect_timeout=300)  # fmt: skip
    print(
        f"huey memory: {seconds} s, {options.fires_per_s} fires/s into a Huey consumer under "
        f"tracemalloc (dumps every {options.every:g} s in {folder}); load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    path = os.pathsep.join(filter(None, [str(MEMTRACE), os.environ.get("PYTHONPATH")]))
    with environ(
        PYTHONPATH=path,
        Z4J_TEST_TRACEMALLOC_PROGRAM=PROGRAM,
        Z4J_TEST_TRACEMALLOC_DIR=str(folder),
        Z4J_TEST_TRACEMALLOC_EVERY=str(options.every),
        Z4J_TEST_TRACEMALLOC_FRAMES=str(options.frames),
    ):
        found = run_soak(work, plan)
    totals = found["totals"]
    print(
        f"fires: {totals['fires_expected']:,} expected, {totals['fires']:,} run, twice "
        f"{totals['doubled']}, missing {totals['missing']}; load average {os.getloadavg()[0]:.2f}"
    )
    analyse(folder, options.warm_up, options.fires_per_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
