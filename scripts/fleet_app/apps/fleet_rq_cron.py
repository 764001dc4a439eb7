"""`rq cron fleet_rq_cron.py`: RQ's own cron scheduler with one native job (observed by z4j)."""

from fleet_rq import nightly_report
from rq import cron

cron.register(nightly_report, "default", cron="0 3 * * *")
