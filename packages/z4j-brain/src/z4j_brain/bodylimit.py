"""A cap on HTTP request bodies, before any route reads one: a body past ``MAX_REQUEST_BYTES``
(by its ``Content-Length``, or counted as it streams in) is answered 413 and never held whole in
memory, whoever sends it (the login form and the session route are open to anyone)."""

from __future__ import annotations

from typing import Any, Final

#: The largest request body the brain reads. The biggest legitimate one is a `schedules apply`
#: of a large file (thousands of schedules of a few hundred bytes each).
MAX_REQUEST_BYTES: Final = 16 * 1024 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]


class TooLarge(Exception):
    """The body passed the cap while a route was reading it."""


class BodyLimit:
    """ASGI middleware: 413 for an HTTP request whose body passes ``limit`` bytes."""

    def __init__(self, app: Any, limit: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = (
            f"request body over {self.limit} bytes: send less (split a large "
            "`schedules apply` file)\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
