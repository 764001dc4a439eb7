"""The demo's application: a SqliteHuey instance with a few tasks, instrumented for z4j.

The consumer imports this module (`huey_consumer demo_tasks.huey`); the agent reads the brain's
URL and token from the Z4J_* variables the demo sets, exactly as a real deployment would.
"""

from __future__ import annotations

import os
import random
import time

from huey import SqliteHuey, crontab

import z4j_huey

huey = z4j_huey.instrument(
    SqliteHuey("demo", filename=os.environ.get("DEMO_HUEY_DB", "demo-huey.sqlite3"))
)


@huey.task()
def add(a: int, b: int) -> int:
    return a + b


@huey.task()
def send_welcome_email(address: str, api_token: str = "") -> str:
    time.sleep(0.3)  # pretend to talk to a mail service
    return f"sent to {address}"


@huey.task()
def charge_card(amount_cents: int) -> None:
    time.sleep(0.1)
    raise RuntimeError(f"card declined for {amount_cents} cents")


@huey.task(retries=2, retry_delay=1)
def flaky_sync() -> str:
    if random.random() < 0.7:
        raise ConnectionError("upstream timed out")
    return "synced"


@huey.periodic_task(crontab(minute="*/5"))
def refresh_report() -> None:
    time.sleep(0.05)
