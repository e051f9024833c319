"""Token streaming: the LLM activity's `on_delta` sink, relaying `llm.delta` batches.

A provider calls the sink once per text fragment. The fragments are coalesced and
written as one `llm.delta` item every `interval` (200 ms by default) to the store's
live relay (`duratask.store.deltas`), which the gateways read while someone watches
the run. Nothing of it enters the run's history: a streamed call costs the history of
the activity alone (scheduled, started, completed), watched or not, however many
tokens it writes. Token deltas are live-only and best effort; the durable record of
the call is `llm.completed` and the step's output, in the run's Workflow Stream.

The call writes through `DeltaRelay.writer()` (on SQLite one connection held for the
call), and its batches leave on a fixed 200 ms beat: a batch's wait is the window,
not the window plus a new connection and the previous write (bench/streams.py).

A retried model call (activity attempt > 1) first relays `llm.retry`, and every
delta carries its `attempt`, so a watcher discards the partial text of the failed try.
Relaying never fails the model call: a relay that cannot be written is logged and
the call answers anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from duratask.logging import get_logger
from duratask.store.deltas import DeltaRelay, RelayWriter
from workflows.events import EventType, wire
from workflows.models import LlmRequest

log = get_logger(__name__)

CLOSE_TIMEOUT_S = 10.0
PRUNE_EVERY_S = 60.0
_last_prune = 0.0


class DeltaPublisher:
    """The `on_delta` sink of one attempt of one model call; `aclose()` flushes it."""

    def __init__(self, req: LlmRequest, attempt: int, interval: float, relay: DeltaRelay) -> None:
        self.req = req
        self.attempt = attempt
        self.interval = interval
        self.relay = relay
        self._opened = False
        self._ticker: asyncio.Task[None] | None = None
        self._pending: list[str] = []
        self._pending_since: datetime | None = None
        self._unsent: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()  # one relay write at a time, never cut midway
        self._conn = contextlib.AsyncExitStack()  # the call's relay connection
        self._writer: RelayWriter | None = None
        self._batches = 0
        self._chars = 0

    async def __call__(self, text: str) -> None:
        if not text:
            return
        if not self._opened:
            self._open()
        if not self._pending:
            self._pending_since = datetime.now(UTC)
        self._pending.append(text)

    def _open(self) -> None:
        self._opened = True
        if self.attempt > 1:
            self._item(
                EventType.LLM_RETRY,
                f"model call retried (attempt {self.attempt}): discard its earlier text",
                {"attempt": self.attempt, "turn": self.req.turn},
            )
        self._ticker = asyncio.create_task(self._tick())
        global _last_prune
        if time.monotonic() - _last_prune > PRUNE_EVERY_S:
            _last_prune = time.monotonic()
            asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        try:
            await self.relay.prune()
        except Exception as e:
            log.debug("token relay prune failed", error=str(e))

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        await self._connect()  # while the first window fills
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due + self.interval, loop.time())  # a fixed beat, not interval + write
            await asyncio.shield(self._flush())

    async def _connect(self) -> None:
        try:
            self._writer = await self._conn.enter_async_context(self.relay.writer())
        except Exception as e:  # each write opens its own connection instead
            log.debug("token relay connection failed", run_id=self.req.run_id, error=str(e))

    async def _disconnect(self) -> None:
        self._writer = None
        try:
            await self._conn.aclose()
        except Exception as e:
            log.debug("token relay connection close failed", error=str(e))

    async def _flush(self) -> None:
        async with self._lock:
            self._move()
            await self._send()

    def _move(self) -> None:
        """Turn the fragments gathered since the last tick into one `llm.delta` item."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._batches += 1
        self._chars += len(text)
        self._item(
            EventType.LLM_DELTA,
            None,
            {"text": text, "attempt": self.attempt, "turn": self.req.turn, "seq": self._batches},
            self._pending_since,
        )

    def _item(
        self, type: str, message: str | None, data: dict[str, Any], at: datetime | None = None
    ) -> None:
        at = at or datetime.now(UTC)
        self._unsent.append(wire(self.req.run_id, type, at, self.req.step_id, message, data))

    async def _send(self) -> None:
        if not self._unsent:
            return
        try:
            await (self._writer or self.relay).append(self.req.run_id, self._unsent)
        except Exception as e:  # kept; tried again with the next batch
            log.debug("token relay write retry", run_id=self.req.run_id, error=str(e))
            if self._writer is not None:  # the next try opens a connection of its own
                await self._disconnect()
            return
        self._unsent = []

    async def aclose(self) -> None:
        """Relay what is left before the call answers (bounded, never raises)."""
        if not self._opened and self.attempt > 1:
            self._open()  # a retry that streamed nothing still tells watchers
        if not self._opened:
            return
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await asyncio.wait_for(self._flush(), CLOSE_TIMEOUT_S)
        except Exception as e:
            log.warning("token relay flush failed", run_id=self.req.run_id, error=str(e))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._disconnect(), CLOSE_TIMEOUT_S)
        log.debug(
            "token stream closed",
            run_id=self.req.run_id,
            step_id=self.req.step_id,
            batches=self._batches,
            chars=self._chars,
        )


def delta_sink_factory(
    interval_ms: int, relay: DeltaRelay
) -> Callable[[LlmRequest, int], DeltaPublisher]:
    """What `LlmActivities(delta_sink_factory=...)` takes: a publisher per call attempt."""

    def make(req: LlmRequest, attempt: int) -> DeltaPublisher:
        return DeltaPublisher(req, attempt, interval_ms / 1000, relay)

    return make
