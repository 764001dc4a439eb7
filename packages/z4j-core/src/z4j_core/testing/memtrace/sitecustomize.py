"""Traces the Python allocations of one program and dumps a tracemalloc snapshot every so often
(the memory profile of a long soak: bench/soak_huey_memory.py).

Put this folder first on PYTHONPATH of a child process. Only a process with
Z4J_TEST_TRACEMALLOC_PROGRAM among its command's words (a path's last part counts:
`huey.bin.huey_consumer` for `python -m huey.bin.huey_consumer`) traces, so the brain and the
other processes of a soak that inherit the variables run untouched. Snapshots go to
Z4J_TEST_TRACEMALLOC_DIR as snapshot-<seconds since start>.pickle, every
Z4J_TEST_TRACEMALLOC_EVERY seconds (default 60); each is read back with
`tracemalloc.Snapshot.load`. Also written beside it: rss-<seconds>.txt, the resident memory
then, so traced and untraced (C) growth can be told apart.
"""

import os
import sys
import threading
import time
import tracemalloc


def _dump_every(folder: str, every: float) -> None:
    began = time.monotonic()
    while True:
        time.sleep(every)
        seconds = round(time.monotonic() - began)
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(os.path.join(folder, f"snapshot-{seconds:06d}.pickle"))
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        traced, _ = tracemalloc.get_traced_memory()
        with open(os.path.join(folder, f"rss-{seconds:06d}.txt"), "w") as out:
            out.write(f"{rss} {traced}\n")


_program = os.environ.get("Z4J_TEST_TRACEMALLOC_PROGRAM")
_folder = os.environ.get("Z4J_TEST_TRACEMALLOC_DIR")
_argv = getattr(sys, "orig_argv", sys.argv)  # `-m module` is only `-m` in sys.argv yet
if _program and _folder and any(arg.split("/")[-1] == _program for arg in _argv):
    tracemalloc.start(int(os.environ.get("Z4J_TEST_TRACEMALLOC_FRAMES", "12")))
    os.makedirs(_folder, exist_ok=True)
    _every = float(os.environ.get("Z4J_TEST_TRACEMALLOC_EVERY", "60"))
    threading.Thread(target=_dump_every, args=(_folder, _every), daemon=True).start()
