"""Hostile-input figures at a larger scale than CI: runs tests/hostile with more generated inputs
and prints what each test printed (inputs per family, close codes and HTTP statuses seen, brain
RSS before and after, rate-limit numbers), plus the machine's load.

Prints figures; asserts nothing about time. Run: python bench/bench_hostile.py [--scale 10]
[-k EXPR]. Needs the packages of the `hostile` nox session (schemathesis, cryptography, huey,
psycopg) and, for the Postgres test, Postgres on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=10.0, help="Z4J_HOSTILE_SCALE (CI: 1)")
    parser.add_argument("-k", dest="select", help="pytest -k expression")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "hostile"), "-q", "-s",
               "-p", "no:cacheprovider", "--timeout", "3600"]  # fmt: skip
    if args.select:
        command += ["-k", args.select]
    env = {**os.environ, "Z4J_HOSTILE_SCALE": str(args.scale)}
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    began = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        # The tests' figures; the brains' own log lines (timestamped) are left out.
        if line.strip(".") and not line[:4].isdigit() and not line.startswith("z4j brain"):
            print(line)
    print(f"scale {args.scale}: {time.monotonic() - began:.0f} s wall clock")
    print(f"load average after: {os.getloadavg()}")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
