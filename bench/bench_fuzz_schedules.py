"""Schedule fuzzing at full count: the cron fuzz and the whole-schedule fuzz of the core
(packages/z4j-core/tests/scheduling/test_cron_fuzz.py, test_spec_fuzz.py) and the fuzz of a real
brain's schedule API (tests/scheduler/test_sched_fuzz.py, when z4j_brain is installed), with
Z4J_FUZZ_SCALE.

CI runs the same properties at scale 1 (a few hundred examples each); this runs them at
`--scale` (default 20) and prints, per property, the examples hypothesis ran, the slowest
next_after it saw (cron), and the time taken; the core and API fuzz print their slowest call.
Asserts nothing on time; exits non-zero when a property fails.

    .nox/scheduler/bin/python bench/bench_fuzz_schedules.py [--scale N] [--only cron,spec,api]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchjson import Recorder, add_option

ROOT = Path(__file__).resolve().parent.parent
CORE_TESTS = ROOT / "packages" / "z4j-core" / "tests" / "scheduling"
TESTS = {
    "cron": CORE_TESTS / "test_cron_fuzz.py",
    "spec": CORE_TESTS / "test_spec_fuzz.py",
    "api": ROOT / "tests" / "scheduler" / "test_sched_fuzz.py",
}
_PROPERTY = re.compile(r"test_\w+_fuzz\.py::(\w+):")
_SLOWEST_CALL = re.compile(r"^slowest of .*$", re.M)
_PASSING = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")
_SLOWEST = re.compile(r"Highest target score: ([0-9.e+-]+)")
_PHASE = re.compile(r"during \w+ phase \(([0-9.]+) seconds\)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=20, help="Z4J_FUZZ_SCALE (default 20)")
    parser.add_argument("--only", default="cron,spec,api", help="which fuzz files (cron,spec,api)")
    add_option(parser)
    args = parser.parse_args()
    recorder = Recorder("fuzz_schedules", args.json)
    env = dict(os.environ, Z4J_FUZZ_SCALE=str(args.scale))
    src = str(ROOT / "packages" / "z4j-core" / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    chosen = [TESTS[name] for name in args.only.split(",")]
    if TESTS["api"] in chosen and importlib.util.find_spec("z4j_brain") is None:
        print("z4j_brain is not installed here: the API fuzz is left out (use .nox/scheduler)")
        chosen.remove(TESTS["api"])
    command = [
        sys.executable, "-m", "pytest", *map(str, chosen), "-q", "-s", "-p", "no:cacheprovider",
        "--hypothesis-show-statistics", "--timeout=3600",
    ]  # fmt: skip
    files = ", ".join(str(path.relative_to(ROOT)) for path in chosen)
    print(f"schedule fuzz at Z4J_FUZZ_SCALE={args.scale}: {files}")
    t0 = time.perf_counter()
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    stats: dict[str, dict[str, float]] = {}
    current = ""
    for line in run.stdout.splitlines():
        if match := _PROPERTY.search(line):
            current = match.group(1)
            stats[current] = {"examples": 0, "failing": 0, "seconds": 0.0, "slowest": 0.0}
        elif current and (match := _PASSING.search(line)):
            stats[current]["examples"] += int(match.group(1)) + int(match.group(2))
            stats[current]["failing"] += int(match.group(2))
        elif current and (match := _PHASE.search(line)):
            stats[current]["seconds"] += float(match.group(1))
        elif current and (match := _SLOWEST.search(line)):
            stats[current]["slowest"] = float(match.group(1))
    for name, figures in stats.items():
        slowest = ""
        if figures["slowest"]:
            slowest = f"slowest next_after {figures['slowest'] * 1000:7.1f} ms"
        print(
            f"  {name:<58} {int(figures['examples']):>7,} examples"
            f" {figures['seconds']:8.1f} s  {slowest}"
        )
        recorder.add("fuzz_examples", "count", [figures["examples"]], property=name)
        if figures["slowest"]:
            recorder.add("fuzz_slowest_next_after", "s", [figures["slowest"]], property=name)
    for line in _SLOWEST_CALL.findall(run.stdout):
        print(f"  {line[:200]}")
    total = int(sum(f["examples"] for f in stats.values()))
    print(f"  total {total:,} examples in {seconds:.1f} s; pytest exit code {run.returncode}")
    recorder.add("fuzz_time", "s", [seconds], scale=args.scale)
    recorder.write()
    if run.returncode:
        print(run.stdout[-4000:])
        print(run.stderr[-2000:], file=sys.stderr)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
