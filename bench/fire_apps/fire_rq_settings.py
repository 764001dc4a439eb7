"""`rq worker -c fire_rq_settings`: preloads the task module, as a deployment would."""

import fire_rq  # noqa: F401 -- preloaded in the worker process
from fire_sink import REDIS_URL  # noqa: F401 -- RQ reads REDIS_URL from its settings module
