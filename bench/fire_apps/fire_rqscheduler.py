"""rq-scheduler for the classic-scheduler comparison: `python fire_rqscheduler.py URL INTERVAL`
runs what `rqscheduler --url URL --interval INTERVAL` runs (`Scheduler(...).run()`), with one
addition that changes nothing in how it schedules: `enqueue_jobs` reads the due jobs with their
scheduled times and appends, after each job is on its queue, "<job id> <scheduled>
<enqueued>" to FIRE_RQS_LOG.
"""

from __future__ import annotations

import calendar
import os
import sys
import time
from typing import Any

from redis import Redis
from rq_scheduler import Scheduler

LOG = os.environ.get("FIRE_RQS_LOG", "")


class RecordingScheduler(Scheduler):  # type: ignore[misc]
    def enqueue_jobs(self) -> list[Any]:
        due = self.get_jobs_to_queue(with_times=True)
        with open(LOG, "a") as log:
            for job, scheduled in due:
                self.enqueue_job(job)
                at = calendar.timegm(scheduled.utctimetuple()) + scheduled.microsecond / 1e6
                log.write(f"{job.id} {at:.6f} {time.time():.6f}\n")
        return [job for job, _ in due]


if __name__ == "__main__":
    url, interval = sys.argv[1], float(sys.argv[2])
    RecordingScheduler(connection=Redis.from_url(url), interval=interval).run()
