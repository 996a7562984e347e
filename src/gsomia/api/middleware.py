"""Plain ASGI middleware for the exchange: the request body limit and the exercise stamp.

Plain ASGI (not ``BaseHTTPMiddleware``) so streamed responses (server-sent events) pass
through untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gsomia.api.problems import problem
from gsomia.services.exchange.clock import ExerciseInfo

EXERCISE_HEADER = "Gsomia-Exercise"


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, judged from ``Content-Length`` before
    reading and by counting while reading (chunked uploads). The body is buffered up to the
    limit, then handed on; nothing is parsed or stored from an oversized request."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "payload-too-large", f"the request body is larger than the limit of {self.max_bytes} bytes"
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app will see the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ExerciseStamp:
    """Stamp every response with ``Gsomia-Exercise: clock=…; whatif=…`` in exercise mode."""

    def __init__(self, app: ASGIApp, *, info: Callable[[], ExerciseInfo | None]) -> None:
        self.app = app
        self.info = info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                info = self.info()
                if info is not None:
                    MutableHeaders(scope=message)[EXERCISE_HEADER] = info.header()
            await send(message)

        await self.app(scope, receive, stamped)
