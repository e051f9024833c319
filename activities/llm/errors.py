"""Turning SDK failures into `ProviderError`s, shared by the openai and anthropic providers.

Both SDKs raise `APIStatusError` (with the HTTP response) and `APIConnectionError`;
the mapping is the same: the provider's own error code and message, HTTP status for
retryability, and Retry-After (seconds, milliseconds or an HTTP date) for the delay.
The request (which carries the key in its headers) is never part of the message,
and the provider's own text goes through `redact` before it can reach history, logs
or the API: a provider's 401 may echo the key it was sent.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from activities.llm.base import ProviderError

MASK = "[redacted]"
# Key-shaped tokens (OpenAI/Anthropic `sk-...`), bearer tokens, and `key=value` forms
_PATTERNS = [
    (re.compile(r"\bsk-[A-Za-z0-9_\-*.]{6,}"), MASK),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), rf"\1 {MASK}"),
    (
        re.compile(r"(?i)\b(api[-_ ]?key|x-api-key|access[-_ ]?token|token|secret|password)"
                   r"(\s*[\"']?\s*[:=]\s*[\"']?)([^\s\"',;}]{6,})"),
        rf"\1\2{MASK}",
    ),
]  # fmt: skip


def secret_values(settings: BaseModel) -> list[str]:
    """Every secret in `settings` (each SecretStr, nested models included)."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                yield from walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for v in value:
                yield from walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from walk(v)

    return [v for v in walk(settings) if len(v) >= 4]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets nor anything shaped like a key or bearer token."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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
