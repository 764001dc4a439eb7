"""`manage.py enqueue_add A B`: enqueue shop.tasks.add from a short-lived process."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from shop.tasks import enqueue_add


class Command(BaseCommand):
    help = "enqueue shop.tasks.add"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("a", type=int)
        parser.add_argument("b", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(enqueue_add(options["a"], options["b"]))
