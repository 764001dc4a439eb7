"""The brain's resident memory under repeated rounds of hostile input: a leak grows with every
round, a high-water mark (allocator, page cache) does not.

Each family runs ROUNDS rounds against one real brain process; the brain's RSS is printed after
each. Prints figures; asserts nothing. Run: python bench/bench_hostile_memory.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.hostile import open_session, sign_payload, wait_closed, ws_connect
from z4j_core.testing.stats import rss_kib
from z4j_core.wire import Event, EventBatch, LifecycleKind, Ping
from z4j_core.wire.codec import encode_frame
from z4j_core.wire.limits import MAX_FRAME_BYTES


def families(brain: BrainProcess, token: str) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    async def garbage_hellos() -> None:
        for _ in range(1500):
            ws = await ws_connect(brain.url, token)
            await ws.send(os.urandom(100))
            await wait_closed(ws)

    async def signed_garbage() -> None:
        for _ in range(1500):
            ws, session = await open_session(brain.url, token, "garbage")
            await ws.send(sign_payload(session, b"\xc1"))
            await wait_closed(ws)

    async def near_limit_frames() -> None:
        size = MAX_FRAME_BYTES - 4096  # a 4 MiB string inside a ping: refused as malformed
        head = encode_frame(Ping(id=1))[:-1] + b"\xdb" + size.to_bytes(4, "big")
        for _ in range(40):
            ws, session = await open_session(brain.url, token, "big")
            await ws.send(sign_payload(session, head + b"x" * size))
            await wait_closed(ws)

    async def storm() -> None:
        async def one() -> None:
            ws = await ws_connect(brain.url, token)
            await ws.send(random.randbytes(300))
            await wait_closed(ws)

        await asyncio.gather(*(one() for _ in range(800)))

    async def stored_huge_events() -> None:
        for i in range(20):
            ws, session = await open_session(brain.url, token, f"huge-{i}")
            event = Event(seq=0, kind=LifecycleKind.STARTED, at=0.0, engine="e",
                          task_id=f"huge-{i}", task_name="h" * (3 * 2**20))  # fmt: skip
            await ws.send(session.send(EventBatch(first_seq=0, events=[event]), time.monotonic()))
            await ws.recv()
            await ws.close()

    return [
        ("1500 garbage hellos", garbage_hellos),
        ("1500 signed undecodable frames", signed_garbage),
        ("40 frames of 4 MiB", near_limit_frames),
        ("800 concurrent garbage hellos", storm),
        ("20 stored events with a 3 MiB field", stored_huge_events),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        brain = BrainProcess(Path(workdir) / "brain")
        token = brain.create_token("bench")
        brain.start()
        try:
            assert brain.process is not None
            pid = brain.process.pid
            print(f"load average: {os.getloadavg()}; brain RSS at start: {rss_kib(pid)} KiB")
            for name, family in families(brain, token):
                sizes = []
                for _ in range(args.rounds):
                    asyncio.run(family())
                    sizes.append(rss_kib(pid))
                print(f"  {name:38s} RSS after each round (KiB): {sizes}")
        finally:
            brain.stop()


if __name__ == "__main__":
    main()
