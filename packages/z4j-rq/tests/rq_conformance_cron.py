"""`rq cron rq_conformance_cron.py`: the native cron and interval jobs the suite observes."""

from rq import cron

from rq_conformance_app import succeed

cron.register(succeed, "default", args=("cron-office-hours",), cron="*/15 9-17 * * 1-5")
cron.register(succeed, "default", args=("cron-monthly",), cron="30 3 1 * *", name="monthly")
cron.register(succeed, "default", args=("cron-interval",), interval=3600, name="hourly")
