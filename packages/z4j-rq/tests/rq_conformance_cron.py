"""`rq cron rq_conformance_cron.py`: the native cron and interval jobs the suite observes."""

from rq import cron
from rq_conformance_app import hourly, monthly, office_hours

cron.register(office_hours, "default", cron="*/15 9-17 * * 1-5")
cron.register(monthly, "default", cron="30 3 1 * *")
cron.register(hourly, "default", interval=3600)
