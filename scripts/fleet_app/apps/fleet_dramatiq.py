"""The fleet's Dramatiq broker and actors: `dramatiq fleet_dramatiq` runs them. The periodiq
schedule is observed by the agent (the fleet starts no periodiq scheduler)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from fleet_runs import record as record_run
from fleet_runs import redis_url
from periodiq import PeriodiqMiddleware, cron

import z4j_dramatiq

broker = RedisBroker(url=redis_url())
broker.add_middleware(CurrentMessage())
broker.add_middleware(PeriodiqMiddleware())
z4j_dramatiq.instrument(broker)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="fleet_dramatiq.record", queue_name="fleet-dramatiq")
def record(schedule: str) -> None:
    message = CurrentMessage.get_current_message()
    record_run("dramatiq", message.message_id if message is not None else "?")


@dramatiq.actor(actor_name="fleet_dramatiq.nightly_report", queue_name="fleet-dramatiq",
                periodic=cron("0 3 * * *"))  # fmt: skip
def nightly_report() -> None:
    pass
