"""Attaching the agent to each engine a Django project uses, through that engine's adapter.

Owns where each engine's object is in a Django project and what the adapter needs there:
- Celery: the project's app (`settings.Z4J['celery_app']`, else the current app its
  `celery.py` made); `z4j_celery.instrument` starts the link after a `celery worker`'s pool fork.
- django-rq: every queue in `RQ_QUEUES`, and `z4j_rq.Worker` as `manage.py rqworker`'s worker
  class unless `RQ['WORKER_CLASS']` names one (the worker then runs the agent, never a work
  horse).
- django-dramatiq: the broker its app set up (when Django made the app configs, before any
  `ready()`); each worker process that `rundramatiq` starts runs this after its fork.
- Huey (djhuey): `huey.contrib.djhuey.HUEY`; under `manage.py run_huey` the link starts once
  the consumer has started its workers.
Each engine is imported only when it is attached. A failure is logged and counted, never raised:
the project starts whatever z4j does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module
from typing import Any, Final

log = logging.getLogger("z4j.django")

#: The worker class `manage.py rqworker` uses unless the project names its own.
RQ_WORKER_CLASS: Final = "z4j_rq.Worker"


def find_celery_app(path: str | None) -> Any:
    """The project's Celery app: the object at dotted ``path``, else the current app, else the
    one app created (Celery's own fallback app never counts); None when there is none."""
    if path:
        module, _, name = path.rpartition(".")
        return getattr(import_module(module), name)
    from celery import _state

    def fallback(app: Any) -> bool:
        # Celery makes its own app ('default', not current) when asked for one before any.
        return app.main == "default" and not app.set_as_current

    current = getattr(_state._tls, "current_app", None)
    if current is not None and not fallback(current):
        return current
    made = [app for app in list(_state._apps) if not fallback(app)]
    return made[0] if len(made) == 1 else None


def _celery(options: dict[str, Any], celery_app: str | None) -> list[Any]:
    import z4j_celery

    app = find_celery_app(celery_app)
    if app is None:
        raise LookupError(
            "no Celery app found: import it in your project's __init__.py (the Celery and "
            "Django convention) or set settings.Z4J['celery_app'] = 'proj.celery.app'"
        )
    return [z4j_celery.instrument(app, **options)]


def _rq(options: dict[str, Any], celery_app: str | None) -> list[Any]:
    import django_rq
    from django.conf import settings

    import z4j_rq

    rq_settings = dict(getattr(settings, "RQ", {}) or {})
    if "WORKER_CLASS" not in rq_settings:
        # `manage.py rqworker` reads this when it runs, after every app's ready().
        settings.RQ = {**rq_settings, "WORKER_CLASS": RQ_WORKER_CLASS}
    names = list(getattr(settings, "RQ_QUEUES", {}) or {"default": {}})
    return [z4j_rq.instrument(django_rq.get_queue(name), **options) for name in names]


def _dramatiq(options: dict[str, Any], celery_app: str | None) -> list[Any]:
    import dramatiq

    import z4j_dramatiq

    return [z4j_dramatiq.instrument(dramatiq.get_broker(), **options)]


def _huey(options: dict[str, Any], celery_app: str | None) -> list[Any]:
    from huey.contrib.djhuey import HUEY

    import z4j_huey

    return [z4j_huey.instrument(HUEY, **options)]


ATTACH: Final[dict[str, Callable[[dict[str, Any], str | None], list[Any]]]] = {
    "celery": _celery,
    "rq": _rq,
    "dramatiq": _dramatiq,
    "huey": _huey,
}


def attach(engine: str, options: dict[str, Any], celery_app: str | None = None) -> list[Any]:
    """Attach the agent to ``engine``'s objects in this project; returns them (empty when it
    failed: the failure is logged, never raised)."""
    try:
        return ATTACH[engine](options, celery_app)
    except Exception:
        log.exception("z4j could not attach to %s; its tasks are not reported", engine)
        return []
