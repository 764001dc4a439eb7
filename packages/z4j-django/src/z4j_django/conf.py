"""`settings.Z4J`: read and checked in one place, for the app's `ready()` and the system checks.

Owns the keys `Z4J` takes (every agent option, `engines`, `celery_app`), which engines a project
uses (named, or found from INSTALLED_APPS), and which processes attach (not runserver's reloader
parent, not management commands that never enqueue). Reads the settings and the command line it
is given; imports no engine.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from z4j_core.agent.config import ENV_BRAIN_URL, ENV_TOKEN, AgentConfig, ConfigError

#: The setting's name.
SETTING: Final = "Z4J"
#: The engines z4j_django attaches to, each with the Django app that wires it into a project
#: (None: Celery, configured by the project's own `celery.py`) and the adapter module.
ENGINES: Final = {
    "celery": (None, "z4j_celery"),
    "rq": ("django_rq", "z4j_rq"),
    "dramatiq": ("django_dramatiq", "z4j_dramatiq"),
    "huey": ("huey.contrib.djhuey", "z4j_huey"),
}
#: Keys of `Z4J` that are not agent options.
OWN_KEYS: Final = ("engines", "celery_app")
AGENT_KEYS: Final = tuple(f.name for f in fields(AgentConfig))
#: Management commands that never enqueue work: the agent stays detached in them (no link, no
#: agent listed in the brain for a `migrate`).
QUIET_COMMANDS: Final = frozenset(
    {
        "check", "makemigrations", "migrate", "showmigrations", "sqlmigrate", "squashmigrations",
        "collectstatic", "compilemessages", "makemessages", "createcachetable", "createsuperuser",
        "changepassword", "dbshell", "diffsettings", "inspectdb", "optimizemigration",
        "sendtestemail", "startapp", "startproject", "test", "testserver", "help", "version",
        "flush", "dumpdata", "loaddata", "clearsessions", "findstatic", "remove_stale_contenttypes",
        # Replaces itself with the `dramatiq` command, whose worker processes attach.
        "rundramatiq",
    }
)  # fmt: skip
#: runserver's autoreloader runs the server in a child with this variable set to "true".
AUTORELOAD_ENV: Final = "RUN_MAIN"


@dataclass(frozen=True)
class Settings:
    """`settings.Z4J`, split: agent options (passed to every adapter) and our own keys."""

    agent: dict[str, Any]
    engines: tuple[str, ...] | None  # None: found from INSTALLED_APPS
    celery_app: str | None


class SettingsError(ValueError):
    """`settings.Z4J` is wrong; the message says what and how to fix it."""


def suggestion(word: str, candidates: Sequence[str]) -> str:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


def read(raw: object) -> Settings:
    """``settings.Z4J`` as ``Settings``; SettingsError names the first wrong key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SettingsError(f"settings.{SETTING} must be a dict, not {type(raw).__name__}")
    known = (*AGENT_KEYS, *OWN_KEYS)
    for key in raw:
        if key not in known:
            raise SettingsError(
                f"settings.{SETTING} has an unknown key {key!r}{suggestion(str(key), known)}; "
                f"it takes {', '.join(known)}"
            )
    engines = raw.get("engines", "auto")
    chosen: tuple[str, ...] | None
    if engines == "auto" or engines is None:
        chosen = None
    elif isinstance(engines, (list, tuple)) and all(isinstance(e, str) for e in engines):
        for name in engines:
            if name not in ENGINES:
                raise SettingsError(
                    f"settings.{SETTING}['engines'] names an unknown engine {name!r}"
                    f"{suggestion(name, list(ENGINES))}; z4j_django knows "
                    f"{', '.join(ENGINES)} (or say 'auto')"
                )
        chosen = tuple(engines)
    else:
        raise SettingsError(
            f"settings.{SETTING}['engines'] must be 'auto' or a list of engine names "
            f"({', '.join(ENGINES)}), not {engines!r}"
        )
    celery_app = raw.get("celery_app")
    if celery_app is not None and not isinstance(celery_app, str):
        raise SettingsError(
            f"settings.{SETTING}['celery_app'] must be a dotted path like 'proj.celery.app'"
        )
    agent = {k: v for k, v in raw.items() if k in AGENT_KEYS}
    return Settings(agent=agent, engines=chosen, celery_app=celery_app)


def agent_config(settings: Settings, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The agent's configuration from ``settings`` then ``Z4J_*`` variables; SettingsError
    when it is invalid or lacks the brain's URL or a token (unless the agent is disabled)."""
    env = os.environ if environ is None else environ
    try:
        config = AgentConfig.load(env, **settings.agent)
    except ConfigError as exc:
        raise SettingsError(f"settings.{SETTING}: {exc}") from None
    if config.disabled:
        return config
    if not settings.agent.get("brain_url") and not env.get(ENV_BRAIN_URL):
        raise SettingsError(
            f"no brain URL: set settings.{SETTING}['brain_url'] (e.g. 'wss://brain.example.com') "
            f"or {ENV_BRAIN_URL}"
        )
    if not config.token:
        raise SettingsError(
            f"no agent token: set settings.{SETTING}['token'] or {ENV_TOKEN} "
            "(create one with z4j tokens create NAME)"
        )
    return config


def engines_in_use(settings: Settings, installed_apps: Sequence[str]) -> tuple[str, ...]:
    """The engines to attach to: those named, else every engine whose Django app is installed,
    and Celery when a Celery app is named or exists."""
    if settings.engines is not None:
        return settings.engines
    found = [
        name
        for name, (django_app, _) in ENGINES.items()
        if django_app is not None and django_app in installed_apps
    ]
    if settings.celery_app is not None or _celery_app_exists():
        found.insert(0, "celery")
    return tuple(found)


def _celery_app_exists() -> bool:
    import sys

    if "celery" not in sys.modules:
        return False  # the project's celery.py was not imported: it has no Celery app
    from z4j_django.engines import find_celery_app

    return find_celery_app(None) is not None


def should_attach(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process attaches the agent: not in runserver's reloader parent (which only
    watches files; its child serves), not in management commands that never enqueue."""
    env = os.environ if environ is None else environ
    program = os.path.basename(argv[0]) if argv else ""
    if program not in ("manage.py", "django-admin", "django-admin.py") and not (
        program == "__main__.py" and "django" in (argv[0] if argv else "")
    ):
        return True  # a web server (gunicorn, uwsgi, ...), a worker, a script
    command = argv[1] if len(argv) > 1 else "help"
    if command in QUIET_COMMANDS:
        return False
    if command == "runserver":
        reloads = "--noreload" not in argv
        return not reloads or env.get(AUTORELOAD_ENV) == "true"
    return True
