"""The broker module the conformance suite runs in real `dramatiq` worker processes.

The broker comes from DRAMATIQ_CONFORMANCE_BROKER (a `redis://` or `amqp://` URL) and every
actor uses the queue DRAMATIQ_CONFORMANCE_QUEUE, so runs sharing a RabbitMQ never meet. The
agent is configured from Z4J_* variables, as an app would be.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from periodiq import PeriodiqMiddleware, cron

import z4j_dramatiq
from z4j_core.testing import conformance

APP = "z4j-conformance"
QUEUE = os.environ.get("DRAMATIQ_CONFORMANCE_QUEUE", "z4j-conformance")


def make_broker() -> dramatiq.Broker:
    url = os.environ.get("DRAMATIQ_CONFORMANCE_BROKER", "")
    if url.startswith("redis://"):
        return RedisBroker(url=url)
    if url.startswith("amqp://"):
        return RabbitmqBroker(url=url)
    raise SystemExit(f"DRAMATIQ_CONFORMANCE_BROKER={url!r}: use redis://... or amqp://...")


if os.environ.get(conformance.FAULT_ENV):
    conformance.inject_capture_fault()

broker = make_broker()
broker.add_middleware(PeriodiqMiddleware())
broker.add_middleware(z4j_dramatiq.Z4JMiddleware(app_name=APP))
dramatiq.set_broker(broker)


class ConformanceError(Exception):
    """What the failing actors raise."""


@dramatiq.actor(queue_name=QUEUE)
def succeed(mark: str, *args: object, **kwargs: object) -> None:
    conformance.mark(mark)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def fail() -> None:
    raise ConformanceError("this actor always fails")


@dramatiq.actor(queue_name=QUEUE, max_retries=2, min_backoff=100, max_backoff=300)
def retry() -> None:
    raise ConformanceError("this actor fails on every attempt")


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def flaky(mark: str, **kwargs: object) -> None:
    conformance.flaky(mark, **kwargs)


@dramatiq.actor(queue_name=QUEUE)
def slow(mark: str, seconds: float) -> None:
    conformance.mark(mark)
    time.sleep(seconds)


@dramatiq.actor(queue_name=QUEUE, periodic=cron("*/15 9-17 * * 1-5"))
def office_hours() -> None:
    pass


@dramatiq.actor(queue_name=QUEUE, periodic=cron("30 3 1 * *"))
def monthly() -> None:
    pass
