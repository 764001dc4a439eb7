"""`rq worker -c rq_conformance_settings`: RQ settings that preload the tasks module."""

import os

import rq_conformance_app  # noqa: F401 -- preloaded in the worker process

REDIS_URL = os.environ["RQ_CONFORMANCE_URL"]
