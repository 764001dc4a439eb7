"""The whole test command in lanes: `noxfile.LANES`' session lists run side by side, each lane its
own `nox` process with its own test-run id (so its own Redis database, Postgres databases and
broker queues: the services were already shared safely between concurrent runs), its output
printed as it comes with the lane's name before each line and kept in `.nox-reports/lane-N.log`.

Most of the suite waits on real workers, brokers and brains rather than computing, so two lanes
on two CPUs take about half the time of one. `./scripts/test` runs this when given no arguments;
`Z4J_TEST_LANES=1 ./scripts/test` runs the sessions one after another instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / ".nox-reports"


def lanes() -> list[list[str]]:
    """`noxfile.LANES`, checked to hold every session of the default list exactly once."""
    sys.path.insert(0, str(ROOT))  # this script's own run of the noxfile, not a library path
    import noxfile

    planned = [name for lane in noxfile.LANES for name in lane]
    listed = list(noxfile.nox.options.sessions)
    if sorted(planned) != sorted(listed) or len(set(planned)) != len(planned):
        missing = sorted(set(listed) - set(planned))
        extra = sorted(set(planned) - set(listed))
        raise SystemExit(
            f"noxfile.LANES must hold each default session once: missing {missing}, "
            f"not a default session {extra}"
        )
    return [list(lane) for lane in noxfile.LANES]


def relay(lane: int, process: subprocess.Popen[str], log: Path) -> None:
    assert process.stdout is not None
    with log.open("w") as kept:
        for line in process.stdout:
            kept.write(line)
            sys.stdout.write(f"[lane {lane}] {line}")
            sys.stdout.flush()


def main() -> int:
    nox = Path(sys.executable).parent / "nox"
    REPORTS.mkdir(exist_ok=True)
    run = uuid.uuid4().hex[:10]
    running = []
    for number, sessions in enumerate(lanes(), start=1):
        print(f"lane {number}: {' '.join(sessions)}", flush=True)
        env = {**os.environ, "Z4J_TEST_RUN_ID": f"{run}l{number}"}
        process = subprocess.Popen(
            [str(nox), "-s", *sessions],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        thread = threading.Thread(
            target=relay, args=(number, process, REPORTS / f"lane-{number}.log"), daemon=True
        )
        thread.start()
        running.append((number, process, thread))
    failed = []
    for number, process, thread in running:
        process.wait()
        thread.join()
        if process.returncode != 0:
            failed.append(number)
    for number, process, _ in running:
        print(f"lane {number}: nox exited {process.returncode}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
