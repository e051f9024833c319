"""The provider interface and the error every provider maps its failures to.

`ProviderError.retryable` follows HTTP semantics: 408, 409, 429, 5xx and connection
errors are worth retrying (honouring Retry-After); other 4xx are the caller's fault
and fail the step at once with the provider's code and message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from workflows.models import LlmRequest, LlmResponse

RETRYABLE_STATUS = {408, 409, 429}

DeltaSink = Callable[[str], Awaitable[None] | None]


class ProviderError(Exception):
    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or (f"HTTP_{status}" if status else "PROVIDER_ERROR")
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS or self.status >= 500


class Provider(Protocol):
    name: str

    async def complete(
        self,
        req: LlmRequest,
        tools: list[dict[str, Any]],
        on_delta: DeltaSink | None = None,
    ) -> LlmResponse:
        """One model call; `tools` are JSON schemas. Streams text through `on_delta`."""
        ...
