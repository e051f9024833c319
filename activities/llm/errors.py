"""Turning SDK failures into `ProviderError`s, shared by the openai and anthropic providers.

Both SDKs raise `APIStatusError` (with the HTTP response) and `APIConnectionError`;
the mapping is the same: the provider's own error code and message, HTTP status for
retryability, and Retry-After (seconds, milliseconds or an HTTP date) for the delay.
The request (which carries the key in its headers) is never part of the message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from activities.llm.base import ProviderError


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def _body_fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from an error body: {"error": {...}} or the inner dict."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            message = inner.get("message")
            return (str(code) if code else None, str(message) if message else None)
        if isinstance(inner, str):
            return None, inner
    if isinstance(body, str) and body:
        return None, body[:500]
    return None, None


def from_status_error(status: int, body: Any, headers: Mapping[str, str] | None) -> ProviderError:
    code, message = _body_fields(body)
    return ProviderError(
        message or f"HTTP {status}",
        status=status,
        code=code or f"HTTP_{status}",
        retry_after=retry_after(headers),
    )


def _cause(exc: BaseException) -> str:
    """The innermost cause of a connection failure, e.g. `ConnectError: [Errno 111] ...`."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen and len(seen) < 8:
        seen.append(e)
        e = e.__cause__ or e.__context__
    for inner in reversed(seen):
        text = str(inner).strip()
        if text and text not in ("Connection error.", "Request timed out."):
            return f"{type(inner).__name__}: {text[:300]}"
    return type(seen[-1]).__name__


def connection_error(provider: str, exc: BaseException) -> ProviderError:
    """`provider` names where the call went (an endpoint's label: its name and URL)."""
    kind = "timed out" if "timeout" in type(exc).__name__.lower() else "connection failed"
    return ProviderError(f"{provider} {kind}: {_cause(exc)}", code="CONNECTION_ERROR")
