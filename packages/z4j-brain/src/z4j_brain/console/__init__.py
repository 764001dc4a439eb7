"""The web console: the brain's own pages at ``/``, on the API's port (the API stays under
``/api/v1``, agents under ``/v1/agent``).

Owns the console's routes, its static files (our own CSS and JavaScript, served from the
package: no CDN, works offline) and the security headers every console response carries (a
strict Content-Security-Policy: no inline script or style, nothing from elsewhere, no framing).
Pages are server-rendered from autoescaping templates (``views``); every read and change goes
through the API's own operations (``calls``). Must never render a value that came from a task,
an agent or a schedule unescaped.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from z4j_brain.console import views

#: Served on every console response.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
#: Paths that are not the console's (the API, the agents' WebSocket, health, metrics).
NOT_CONSOLE: Final = ("/api/", "/v1/", "/health", "/metrics", "/openapi")
#: Where ``z4j brain serve`` says the console is, after the brain's URL.
CONSOLE_PATH: Final = "/"


def routes() -> list[Any]:
    v = views
    return [
        Route("/", v.overview, methods=["GET"]),
        Route("/login", v.login_page, methods=["GET"]),
        Route("/login", v.login, methods=["POST"]),
        Route("/logout", v.logout, methods=["POST"]),
        Route("/tasks", v.tasks, methods=["GET"]),
        Route("/tasks/rows", v.task_rows, methods=["GET"]),
        Route("/tasks/retry", v.task_retry, methods=["POST"]),
        Route("/tasks/cancel", v.task_cancel, methods=["POST"]),
        Route("/tasks/bulk", v.tasks_bulk, methods=["POST"]),
        Route("/bulk/{bulk_id}", v.bulk_page, methods=["GET"]),
        Route("/bulk/{bulk_id}/counts", v.bulk_counts, methods=["GET"]),
        # A task id may hold `/` (an agent chooses it): the id is the rest of the path.
        Route("/task/{engine}/{task_id:path}/timeline", v.task_timeline, methods=["GET"]),
        Route("/task/{engine}/{task_id:path}", v.task_detail, methods=["GET"]),
        Route("/schedules", v.schedules, methods=["GET"]),
        Route("/schedules/new", v.schedule_new, methods=["GET"]),
        Route("/schedules/new", v.schedule_create, methods=["POST"]),
        Route("/schedules/preview", v.schedule_preview, methods=["GET"]),
        Route("/schedule/{ref}", v.schedule_detail, methods=["GET"]),
        Route("/schedule/{ref}/edit", v.schedule_edit, methods=["GET"]),
        Route("/schedule/{ref}/edit", v.schedule_save, methods=["POST"]),
        Route("/schedule/{ref}/pause", v.schedule_pause, methods=["POST"]),
        Route("/schedule/{ref}/resume", v.schedule_resume, methods=["POST"]),
        Route("/schedule/{ref}/trigger", v.schedule_trigger, methods=["POST"]),
        Route("/schedule/{ref}/backfill", v.schedule_backfill, methods=["POST"]),
        Route("/schedule/{ref}/delete", v.schedule_delete, methods=["POST"]),
        Route("/observed/adopt", v.adopt_page, methods=["GET"]),
        Route("/observed/adopt", v.adopt_post, methods=["POST"]),
        Route("/audit", v.audit, methods=["GET"]),
        Route("/queues", v.queues, methods=["GET"]),
        Route("/queues/purge", v.queue_purge, methods=["POST"]),
        Route("/agents", v.agents, methods=["GET"]),
        Route("/live", v.live, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(views.HERE / "static")), name="static"),
    ]


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP response outside ``NOT_CONSOLE``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(NOT_CONSOLE):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
