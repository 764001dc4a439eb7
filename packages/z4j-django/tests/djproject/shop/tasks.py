"""The shop's one task, `add`, written for the engine settings.ENGINE names, and how the
project enqueues it (what a view or a script would do)."""

from django.conf import settings

ENGINE = settings.ENGINE

if ENGINE == "huey":
    from huey.contrib.djhuey import task

    @task()
    def add(a: int, b: int) -> int:
        return a + b

    def enqueue_add(a: int, b: int) -> str:
        return str(add(a, b).id)

elif ENGINE == "celery":
    from celery import shared_task

    @shared_task(name="shop.tasks.add")
    def add(a: int, b: int) -> int:
        return a + b

    def enqueue_add(a: int, b: int) -> str:
        return str(add.delay(a, b).id)

elif ENGINE == "dramatiq":
    import dramatiq

    @dramatiq.actor(actor_name="shop.tasks.add")
    def add(a: int, b: int) -> int:
        return a + b

    def enqueue_add(a: int, b: int) -> str:
        return str(add.send(a, b).message_id)

else:

    def add(a: int, b: int) -> int:
        return a + b

    def enqueue_add(a: int, b: int) -> str:
        import django_rq

        return str(django_rq.get_queue("default").enqueue(add, a, b).id)
