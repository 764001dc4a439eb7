"""`rq worker -c fleet_rq_settings`: preloads the fleet's functions in the worker process."""

import fleet_rq  # noqa: F401 -- preloaded in the worker process
from fleet_runs import redis_url

REDIS_URL = redis_url()
