"""The Django app: attaches the agent in ``ready()``, once every app (and engine) is loaded.

Owns the moment of attaching in each kind of process: web servers and workers attach; the
runserver autoreloader's parent and management commands that never enqueue do not (see
``conf.should_attach``). Never raises into Django: a setting that cannot work is logged here
and reported by the system checks (``checks.py``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings

log = logging.getLogger("z4j.django")


class Z4JConfig(AppConfig):
    name = "z4j_django"
    label = "z4j"
    verbose_name = "z4j"

    #: What ``ready()`` attached to, by engine (for tests and the curious).
    attached: dict[str, list[Any]] = {}

    def ready(self) -> None:
        from z4j_django import checks  # noqa: F401  (registers the system checks)
        from z4j_django.conf import (
            SETTING,
            SettingsError,
            agent_config,
            engines_in_use,
            read,
            should_attach,
        )
        from z4j_django.engines import attach

        if not should_attach(sys.argv):
            return
        try:
            z4j = read(getattr(settings, SETTING, None))
            config = agent_config(z4j)
        except SettingsError as exc:
            log.error("z4j is not attached: %s (see manage.py check)", exc)
            return
        if config.disabled:
            return
        installed = [app.name for app in apps.get_app_configs()]
        for engine in engines_in_use(z4j, installed):
            attached = attach(engine, dict(z4j.agent), z4j.celery_app)
            if attached:
                type(self).attached[engine] = attached
