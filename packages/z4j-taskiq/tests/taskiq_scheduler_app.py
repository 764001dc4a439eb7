"""A `taskiq scheduler` module for the process tests: the conformance broker's label schedules
and a ListRedisScheduleSource (prefix from TASKIQ_SCHEDULE_PREFIX), observed by z4j."""

from __future__ import annotations

import os

from taskiq import TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_conformance_app import broker
from taskiq_redis import ListRedisScheduleSource

import z4j_taskiq

redis_url = os.environ["TASKIQ_CONFORMANCE_BROKER"].partition(":")[2]
stored = ListRedisScheduleSource(redis_url, prefix=os.environ["TASKIQ_SCHEDULE_PREFIX"])
scheduler = TaskiqScheduler(broker, sources=[LabelScheduleSource(broker), stored])
z4j_taskiq.observe(scheduler)
