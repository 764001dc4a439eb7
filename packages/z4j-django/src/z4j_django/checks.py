"""Django system checks for z4j (``manage.py check``, and before ``runserver`` and ``migrate``).

Owns turning a setting that cannot work into a message with an id, what was wrong and what to
do: ``settings.Z4J`` unreadable or naming an unknown key or engine (z4j.E001), no brain URL or
no token or an invalid agent option (z4j.E002), an engine chosen whose adapter or Django app
is missing (z4j.E003), no Celery app to attach to (z4j.E004), an RQ worker class that does not
run the agent (z4j.W002), and no engine found (z4j.W003). Imports an engine only to check it
is there.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks

from z4j_django.conf import ENGINES, SETTING, SettingsError, agent_config, engines_in_use, read

FIX_SETTING = f"Fix settings.{SETTING} (see docs/engines/django.md)."


def check_z4j(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        z4j = read(getattr(settings, SETTING, None))
    except SettingsError as exc:
        return [checks.Error(str(exc), hint=FIX_SETTING, id="z4j.E001")]
    try:
        config = agent_config(z4j)
    except SettingsError as exc:
        return [checks.Error(str(exc), hint=FIX_SETTING, id="z4j.E002")]
    if config.disabled:
        return []
    installed = [app.name for app in apps.get_app_configs()]
    found: list[checks.CheckMessage] = []
    engines = engines_in_use(z4j, installed)
    if not engines:
        found.append(
            checks.Warning(
                "z4j found no task engine in this project: it attaches to Celery, django-rq, "
                "django-dramatiq and Huey (huey.contrib.djhuey)",
                hint=f"Install the engine's Django app, or name it in settings.{SETTING}"
                "['engines'].",
                id="z4j.W003",
            )
        )
    for engine in engines:
        found += _check_engine(engine, z4j.celery_app, installed)
    return found


def _check_engine(
    engine: str, celery_app: str | None, installed: list[str]
) -> list[checks.CheckMessage]:
    django_app, adapter = ENGINES[engine]
    found: list[checks.CheckMessage] = []
    if importlib.util.find_spec(adapter) is None:
        found.append(
            checks.Error(
                f"z4j is set to attach to {engine}, but its adapter {adapter} is not installed",
                hint=f"Install it: pip install 'z4j[{engine}]' (from z4j's own packages).",
                id="z4j.E003",
            )
        )
    if django_app is not None and django_app not in installed:
        found.append(
            checks.Error(
                f"z4j is set to attach to {engine}, but {django_app!r} is not in INSTALLED_APPS",
                hint=f"Add {django_app!r} to INSTALLED_APPS, or remove {engine!r} from "
                f"settings.{SETTING}['engines'].",
                id="z4j.E003",
            )
        )
    if engine == "rq":
        found += _check_rq_worker()
    if engine == "celery":
        found += _check_celery(celery_app)
    return found


def _check_rq_worker() -> list[checks.CheckMessage]:
    configured = (getattr(settings, "RQ", {}) or {}).get("WORKER_CLASS")
    if configured is None:
        return []
    try:
        from rq.utils import import_attribute

        worker = import_attribute(configured) if isinstance(configured, str) else configured
        import z4j_rq.worker

        runs_agent = isinstance(worker, type) and issubclass(
            worker, (z4j_rq.worker.Worker, z4j_rq.worker.SimpleWorker, z4j_rq.worker.SpawnWorker)
        )
    except Exception as exc:
        return [
            checks.Error(
                f"RQ['WORKER_CLASS'] = {configured!r} cannot be imported: {exc}",
                hint="Name an importable class, e.g. 'z4j_rq.Worker'.",
                id="z4j.E003",
            )
        ]
    if runs_agent:
        return []
    return [
        checks.Warning(
            f"RQ['WORKER_CLASS'] = {configured!r} does not run the z4j agent: jobs run by "
            "manage.py rqworker are not reported",
            hint="Use 'z4j_rq.Worker' (or subclass it), or remove WORKER_CLASS and z4j sets it.",
            id="z4j.W002",
        )
    ]


def _check_celery(celery_app: str | None) -> list[checks.CheckMessage]:
    from z4j_django.engines import find_celery_app

    try:
        app = find_celery_app(celery_app)
    except (ImportError, AttributeError, ValueError) as exc:
        return [
            checks.Error(
                f"settings.{SETTING}['celery_app'] = {celery_app!r} cannot be imported: {exc}",
                hint="Give the dotted path of your Celery app, e.g. 'proj.celery.app'.",
                id="z4j.E004",
            )
        ]
    if app is None:
        return [
            checks.Error(
                "z4j is set to attach to celery, but no Celery app was found",
                hint="Import your Celery app in the project's __init__.py, or set "
                f"settings.{SETTING}['celery_app'] = 'proj.celery.app'.",
                id="z4j.E004",
            )
        ]
    return []


checks.register(check_z4j, "z4j")
