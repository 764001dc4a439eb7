"""`manage.py z4j_attached`: print what z4j_django attached to in this process, as JSON."""

import json
from typing import Any

from django.core.management.base import BaseCommand

from z4j_django.apps import Z4JConfig


class Command(BaseCommand):
    help = "print the engines z4j attached to"

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(sorted(Z4JConfig.attached)))
