"""z4j for Django: add ``"z4j_django"`` to INSTALLED_APPS and configure ``Z4J`` in settings.

    INSTALLED_APPS = [
        ...,
        "django_rq",            # or "huey.contrib.djhuey", "django_dramatiq" (before z4j_django)
        "z4j_django",
    ]
    Z4J = {
        "brain_url": "wss://brain.example.com",
        "token": os.environ["Z4J_TOKEN"],
        # "engines": ["celery", "rq"],   # default "auto": every engine the project wires up
    }

When Django has loaded every app, the agent attaches to each engine the project uses (Celery,
django-rq, django-dramatiq, Huey's djhuey) in the processes that run or enqueue tasks, and
`manage.py check` reports a setting that cannot work. See docs/engines/django.md.
"""

from __future__ import annotations
