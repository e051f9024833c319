"""Token streaming: the LLM activity's `on_delta` sink, publishing `llm.delta` batches.

A provider calls the sink once per text fragment. Sending a signal per token would
grow the run's history by several events per token, so fragments are coalesced and
published as one `llm.delta` item every `interval` (200 ms by default) through
`WorkflowStreamClient.from_within_activity`, whose dedup makes a retried flush
exactly-once. The cost is one publish signal per interval, whatever the token rate.
The publisher drives the client's `flush()` from its own ticker rather than using the
client's background flusher: on Python 3.11 cancelling that flusher right after a
forced flush can be swallowed by `asyncio.wait_for`, which hung the call's end.

A retried model call (activity attempt > 1) first publishes `llm.retry`, and every
delta carries its `attempt`, so a watcher discards the partial text of the failed try.
Publishing is best effort: a stream that cannot be reached never fails the model call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.contrib.workflow_streams import TopicHandle, WorkflowStreamClient

from duratask.logging import get_logger
from workflows.events import TOPIC, EventType, wire
from workflows.models import LlmRequest

log = get_logger(__name__)

CLOSE_TIMEOUT_S = 10.0


class DeltaPublisher:
    """The `on_delta` sink of one attempt of one model call; `aclose()` flushes it."""

    def __init__(
        self,
        req: LlmRequest,
        attempt: int,
        interval: float,
        client_factory: Callable[[], WorkflowStreamClient] | None = None,
    ) -> None:
        self.req = req
        self.attempt = attempt
        self.interval = interval
        self._factory = client_factory or (
            lambda: WorkflowStreamClient.from_within_activity(
                batch_interval=timedelta(seconds=interval)
            )
        )
        self._client: WorkflowStreamClient | None = None
        self._topic: TopicHandle[Any] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._pending: list[str] = []
        self._pending_since: datetime | None = None
        self._batches = 0
        self._chars = 0
        self._broken = False

    async def __call__(self, text: str) -> None:
        if not text or self._broken:
            return
        if self._client is None:
            await self._open()
        if not self._pending:
            self._pending_since = datetime.now(UTC)
        self._pending.append(text)

    async def _open(self) -> None:
        try:
            self._client = self._factory()
            self._topic = self._client.topic(TOPIC)
        except Exception as e:  # no stream to publish to: stream nothing, answer anyway
            self._broken = True
            log.warning("token stream unavailable", run_id=self.req.run_id, error=str(e))
            return
        if self.attempt > 1:
            self._publish(
                EventType.LLM_RETRY,
                f"model call retried (attempt {self.attempt}): discard its earlier text",
                {"attempt": self.attempt, "turn": self.req.turn},
            )
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        assert self._client is not None
        while True:
            await asyncio.sleep(self.interval)
            self._move()
            try:
                await self._client.flush()
            except Exception as e:  # kept pending by the client; retried on the next tick
                log.debug("token stream flush retry", run_id=self.req.run_id, error=str(e))

    def _move(self) -> None:
        """Turn the fragments gathered since the last tick into one `llm.delta` item."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._batches += 1
        self._chars += len(text)
        self._publish(
            EventType.LLM_DELTA,
            None,
            {"text": text, "attempt": self.attempt, "turn": self.req.turn, "seq": self._batches},
            self._pending_since,
        )

    def _publish(
        self, type: str, message: str | None, data: dict[str, Any], at: datetime | None = None
    ) -> None:
        assert self._topic is not None
        item = wire(self.req.run_id, type, at or datetime.now(UTC), self.req.step_id, message, data)
        self._topic.publish(item)

    async def aclose(self) -> None:
        """Publish what is left and wait until the workflow has it (bounded, never raises)."""
        if self._client is None and self.attempt > 1 and not self._broken:
            await self._open()  # a retry that streamed nothing still tells watchers
        if self._client is None:
            return
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except (asyncio.CancelledError, Exception):
                pass
        try:
            self._move()
            await asyncio.wait_for(self._client.flush(), CLOSE_TIMEOUT_S)
        except Exception as e:
            log.warning("token stream flush failed", run_id=self.req.run_id, error=str(e))
        finally:
            self._client = None
        log.debug(
            "token stream closed",
            run_id=self.req.run_id,
            step_id=self.req.step_id,
            batches=self._batches,
            chars=self._chars,
        )


def delta_sink_factory(interval_ms: int) -> Callable[[LlmRequest, int], DeltaPublisher]:
    """What `LlmActivities(delta_sink_factory=...)` takes: a publisher per call attempt."""

    def make(req: LlmRequest, attempt: int) -> DeltaPublisher:
        return DeltaPublisher(req, attempt, interval_ms / 1000)

    return make
