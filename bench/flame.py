"""Flame graphs of a bench's worker: py-spy attached to a process the bench started.

`attach(pid, svg)` starts two `py-spy record`s on that process and its children (non-blocking,
so the worker is not paused while it is sampled): one writes the SVG, the other the same
samples as collapsed stacks beside it (`.txt`), since the SVG leaves out frames narrower than
0.1%. Both exit when the worker exits. `python bench/flame.py TXT[.gz] [N] [--under TEXT]` prints
the functions with the most samples, self and inclusive (once per stack), as a share of the
samples whose stack contains TEXT (all by default). py-spy comes from `$PY_SPY`, else the PATH
(`python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy`). Measures nothing itself.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SAMPLE_RATE = 250  # per second; py-spy's default is 100


def py_spy() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not found:
        raise SystemExit("--flame needs py-spy: set PY_SPY or put py-spy on the PATH")
    return found


def attach(pid: int, svg: Path) -> list[subprocess.Popen[bytes]]:
    svg.parent.mkdir(parents=True, exist_ok=True)
    recorders = []
    for out, form in ((svg, "flamegraph"), (svg.with_suffix(".txt"), "raw")):
        command = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                   "--rate", str(SAMPLE_RATE), "--output", str(out), "--format", form]  # fmt: skip
        recorders.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return recorders


def finish(recorders: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    for recorder in recorders:
        try:
            recorder.wait(timeout)
        except subprocess.TimeoutExpired:
            recorder.terminate()
            recorder.wait()


def _function(frame: str) -> str:
    """`name (path:line)` without the line: one entry per function."""
    return re.sub(r":\d+\)$", ")", frame)


def top(
    stacks: Path, count: int = 40, under: str = ""
) -> tuple[int, list[tuple[str, float, float]]]:
    """(samples kept, [(function, self share, inclusive share)]) for the `count` functions with
    the most inclusive samples, among the stacks that contain `under`."""
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    kept = 0
    text = gzip.decompress(stacks.read_bytes()).decode() if stacks.suffix == ".gz" else None
    for line in (text if text is not None else stacks.read_text()).splitlines():
        stack, _, samples_text = line.rpartition(" ")
        if not stack or under not in stack:
            continue
        samples = int(samples_text)
        kept += samples
        functions = [_function(frame) for frame in stack.split(";")]
        own[functions[-1]] += samples
        for name in set(functions):
            inclusive[name] += samples
    ranked = sorted(inclusive, key=lambda name: -inclusive[name])[:count]
    return kept, [(name, own[name] / kept, inclusive[name] / kept) for name in ranked]


def main(argv: list[str]) -> None:
    under = ""
    if "--under" in argv:
        index = argv.index("--under")
        under = argv[index + 1]
        del argv[index : index + 2]
    path, limit = Path(argv[0]), int(argv[1]) if len(argv) > 1 else 40
    kept, rows = top(path, limit, under)
    print(f"{kept} samples{f' under {under!r}' if under else ''}; self%, inclusive%, function")
    for name, own, total in rows:
        print(f"{own * 100:6.1f} {total * 100:6.1f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
