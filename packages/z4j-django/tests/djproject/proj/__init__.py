"""The test project. With Celery, its app is imported here, as Celery's Django guide says."""

import os

if os.environ.get("SHOP_ENGINE") == "celery":
    from proj.celery import app as celery_app

    __all__ = ["celery_app"]
