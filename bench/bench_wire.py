"""Wire protocol throughput: encode + sign + verify + decode of event batches.

Drives a real AgentSession -> BrainSession pair (handshake done, window wide enough) with
realistic events: a uuid task id, a dotted task name, a timestamp, a runtime, about 100 bytes of
redacted args. Prints events per second for batches of 1, 100 and 1000 events, on one core.
Measured, never asserted: run ``python bench/bench_wire.py`` (``--quick`` for reduced counts).
"""

from __future__ import annotations

import argparse
import time
import uuid

from z4j_core.wire import (
    PROTOCOL_VERSION,
    Ack,
    AgentSession,
    BrainSession,
    EngineInfo,
    Event,
    EventBatch,
    Hello,
    LifecycleKind,
    Limits,
    token_hash,
)

KINDS = (LifecycleKind.RECEIVED, LifecycleKind.STARTED, LifecycleKind.SUCCEEDED)


def make_events(first_seq: int, count: int) -> list[Event]:
    return [
        Event(
            seq=first_seq + i,
            kind=KINDS[i % 3],
            at=1_750_000_000.0 + i * 0.001,
            engine="celery",
            task_id=str(uuid.uuid4()),
            task_name="billing.invoices.tasks.send_invoice_reminder",
            queue="default",
            worker="celery@worker-7.prod.internal",
            args="('cus_8fj2Kd9s', 42, 'EUR')",
            kwargs="{'attempt': 1, 'notify': True, 'api_key': '[redacted]', 'locale': 'de_DE'}",
            runtime=0.0123 if KINDS[i % 3] is LifecycleKind.SUCCEEDED else None,
            retries=0,
        )
        for i in range(count)
    ]


def connected_pair() -> tuple[AgentSession, BrainSession]:
    token = "z4j_bench-token"
    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        agent_instance=str(uuid.uuid4()),
        app="billing",
        host="worker-7",
        pid=4242,
        agent_version="2.0.0.dev0",
        engines=[EngineInfo(name="celery", version="5.4.0")],
    )
    agent = AgentSession(token, hello)
    brain = BrainSession(token_hash(token), Limits(window=256))
    brain.receive(agent.start(0.0), 0.0)
    agent.receive(brain.accept(0.0), 0.0)
    return agent, brain


def run(batch_size: int, total_events: int) -> tuple[float, int]:
    """Events per second and bytes per event, for batches of ``batch_size``."""
    agent, brain = connected_pair()
    batches = max(1, total_events // batch_size)
    # Build the events up front: the bench measures the protocol, not Event construction.
    prepared = [
        EventBatch(first_seq=b * batch_size, events=make_events(b * batch_size, batch_size))
        for b in range(batches)
    ]
    wire_bytes = 0
    started = time.perf_counter()
    for batch in prepared:
        data = agent.send(batch, 1.0)
        wire_bytes += len(data)
        (received,) = brain.receive(data, 1.0)
        assert isinstance(received, EventBatch) and len(received.events) == batch_size
        agent.receive(brain.send(Ack(up_to_seq=received.last_seq), 1.0), 1.0)
    elapsed = time.perf_counter() - started
    events = batches * batch_size
    return events / elapsed, wire_bytes // events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced counts (seconds, for CI)")
    args = parser.parse_args()
    total = 20_000 if args.quick else 300_000
    print(f"wire: encode + sign + verify + decode (+ ack), {total} events per size, one core")
    for batch_size in (1, 100, 1000):
        count = total // 10 if batch_size == 1 else total
        best = max(run(batch_size, count) for _ in range(3))
        rate, per_event = best
        print(f"  batch {batch_size:>5}: {rate:>12,.0f} events/s  ({per_event} bytes/event)")


if __name__ == "__main__":
    main()
