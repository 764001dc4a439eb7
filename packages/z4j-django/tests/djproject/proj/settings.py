"""Settings of the test project. The tests choose the engine (SHOP_ENGINE: huey, rq, celery or
dramatiq), its Redis database (SHOP_REDIS_URL) and the whole Z4J setting (SHOP_Z4J, JSON)."""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "proj.urls"
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

ENGINE = os.environ.get("SHOP_ENGINE", "huey")
REDIS_URL = os.environ.get("SHOP_REDIS_URL", "redis://127.0.0.1:6379/0")
ENGINE_APPS = {
    "huey": ["huey.contrib.djhuey"],
    "rq": ["django_rq"],
    "celery": [],
    "dramatiq": ["django_dramatiq"],
}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    *ENGINE_APPS.get(ENGINE, []),
    "shop",
    "z4j_django",
]
if os.environ.get("SHOP_APPS"):
    INSTALLED_APPS = json.loads(os.environ["SHOP_APPS"])

HUEY = {
    "huey_class": "huey.RedisHuey",
    "name": "shop",
    "url": REDIS_URL,
    "immediate": False,
    "consumer": {"workers": 2, "worker_type": os.environ.get("SHOP_HUEY_WORKERS", "process")},
}
RQ_QUEUES = {"default": {"URL": REDIS_URL}}
if os.environ.get("SHOP_RQ_WORKER_CLASS"):
    RQ = {"WORKER_CLASS": os.environ["SHOP_RQ_WORKER_CLASS"]}
CELERY_BROKER_URL = REDIS_URL
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker",
    "OPTIONS": {"url": REDIS_URL},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}
CELERY_TASK_DEFAULT_QUEUE = "shop"

Z4J = json.loads(os.environ.get("SHOP_Z4J", "{}"))
