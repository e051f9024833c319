"""Request limits every route shares, applied before routing: ASGI middleware.

The body-size limit counts the bytes as they stream in, so a chunked body without a
`Content-Length` is bounded too (a declared length over the limit is refused at once,
before a byte is read). A NUL byte in the path or the query string is refused here:
it would otherwise reach Temporal's visibility query or the database as part of a
filter and fail there as an outage.

(Starlette's `RequestBodyLimitMiddleware`, behind FastAPI's `max_body_size`, answers
some cases with a plain-text "Content Too Large" that neither has the gateway's error
body nor names the limit, so the gateway keeps this one.)
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the streamed body passes the limit; an HTTPException
    so FastAPI's body parsing lets it through to the 413 handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_limit_detail(limit))


def body_limit_detail(limit: int) -> str:
    return f"the request body is larger than the limit of {limit:,} bytes"


class RequestLimits:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _nul_problem(scope)
        if problem is not None:
            await _answer(send, 422, problem)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _answer(send, 400, "invalid Content-Length header")
                    return
                if declared > limit:
                    await _answer(send, 413, body_limit_detail(limit))
                    return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _nul_problem(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "the path contains a NUL byte"
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in unquote(name) or "\x00" in value or "\x00" in name:
                return f"query parameter '{name.replace(chr(0), '')}' contains a NUL byte"
        return "the query string contains a NUL byte"
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
