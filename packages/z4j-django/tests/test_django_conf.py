"""`settings.Z4J` read in one place, and which processes attach (pure: no Django project)."""

from __future__ import annotations

from typing import Any

import pytest

from z4j_django.conf import SettingsError, engines_in_use, read, should_attach


@pytest.mark.parametrize(
    ("argv", "env", "attaches"),
    [
        (["gunicorn", "proj.wsgi"], {}, True),
        (["/usr/bin/celery", "-A", "proj", "worker"], {}, True),
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # its serving child
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "check", "--deploy"], {}, False),
        (["/srv/app/manage.py", "test"], {}, False),
        (["manage.py", "run_huey"], {}, True),
        (["manage.py", "rqworker", "default"], {}, True),
        (["manage.py", "rundramatiq"], {}, False),  # execs `dramatiq`, whose workers attach
        (["manage.py", "shell"], {}, True),
        (["manage.py", "my_enqueuing_command"], {}, True),
        (["django-admin", "collectstatic"], {}, False),
        ([], {}, True),
    ],
)
def test_which_processes_attach(argv: list[str], env: dict[str, str], attaches: bool) -> None:
    assert should_attach(argv, env) is attaches


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([], "must be a dict"),
        ({"tokn": "x"}, "unknown key 'tokn' (did you mean 'token'?)"),
        ({"engines": ["celry"]}, "unknown engine 'celry' (did you mean 'celery'?)"),
        ({"engines": "rq"}, "must be 'auto' or a list"),
        ({"celery_app": 3}, "dotted path"),
    ],
)
def test_bad_settings_are_named(raw: Any, fragment: str) -> None:
    with pytest.raises(SettingsError, match=None) as raised:
        read(raw)
    assert fragment in str(raised.value)


def test_engines_named_or_found_from_installed_apps() -> None:
    assert engines_in_use(read({"engines": ["rq", "huey"]}), []) == ("rq", "huey")
    found = engines_in_use(read({}), ["django_rq", "huey.contrib.djhuey", "z4j_django"])
    assert found == ("rq", "huey")
    assert read(None).agent == {}
    assert read({"token": "t", "labels": {"a": "b"}}).agent == {"token": "t", "labels": {"a": "b"}}
