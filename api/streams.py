"""Fan-out of runs' event streams to the gateway's SSE clients.

Every poll of a Workflow Stream is a Workflow Update, written to the run's history, so
a hundred browser tabs polling one run on their own would multiply its history growth
a hundredfold. The hub keeps ONE subscription per run per gateway process (a `RunFeed`)
and fans its events out to every client of that run.

A feed appends what it receives to a bounded, offset-ordered ring and wakes its clients;
each client reads the ring at its own pace from its own cursor, so a slow client never
holds up the subscription or a fast client, and costs no memory of its own. A client
whose cursor trails the live edge by more than `events_max_lag` events is disconnected
(`FellBehind`); it reconnects with `Last-Event-ID` and catches up. Offsets older than
the ring (a late joiner asking for the start of a long run) are read with the stream's
poll *query*, which answers at once and writes nothing to history.

A feed ends after the run's terminal event, or when its last client has been gone for
`events_idle_linger_s`. When a closed run's stream cannot be read (no worker to answer
the query, or a run started before streams existed), the events kept in its final
`RunState` are served instead, numbered by their position.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamClient

from duratask.logging import get_logger
from duratask.settings import Settings
from workflows.events import TERMINAL, TOPIC
from workflows.models import RunState, StreamEvent

log = get_logger(__name__)

POLL = "__temporal_workflow_stream_poll"  # the stream's poll query (same name as the update)

StateLoader = Callable[[str], Any]  # run_id -> awaitable RunState


class FellBehind(Exception):
    """A client trailed the live edge by more than the allowed lag."""


def event_from_item(offset: int, data: dict[str, Any]) -> StreamEvent:
    return StreamEvent.model_validate({**data, "offset": offset})


def events_from_state(state: RunState) -> list[StreamEvent]:
    """The fallback for a closed run whose stream cannot be read: its retained events."""
    return [
        StreamEvent(
            offset=i,
            type=e.type,
            time=e.time,
            run_id=state.run_id,
            step_id=e.step_id,
            message=e.message,
            data=e.data,
        )
        for i, e in enumerate(state.events)
    ]


async def query_events(
    client: Client, run_id: str, after: int, timeout: float = 5.0
) -> tuple[list[StreamEvent], bool]:
    """Retained events after `after` via the poll query: immediate, no history written.

    Returns the events and whether more are ready (the answer is capped near 1 MB).
    A query needs a worker; `timeout` bounds the wait when none is there.
    """
    handle = client.get_workflow_handle(run_id)
    result: PollResult = await handle.query(
        POLL,
        PollInput(topics=[TOPIC], from_offset=after + 1),
        result_type=PollResult,
        rpc_timeout=timedelta(seconds=timeout),
    )
    converter = client.data_converter.payload_converter
    events = []
    for item in result.items:
        payload = Payload()
        payload.ParseFromString(base64.b64decode(item.data))
        events.append(event_from_item(item.offset, converter.from_payload(payload)))
    return events, result.more_ready


async def is_closed(client: Client, run_id: str) -> bool:
    desc = await client.get_workflow_handle(run_id).describe()
    return desc.status not in (None, WorkflowExecutionStatus.RUNNING)


class RunFeed:
    """One shared subscription to one run's stream, and the ring its clients read."""

    def __init__(self, hub: StreamHub, run_id: str, start_after: int) -> None:
        self.hub = hub
        self.run_id = run_id
        self.floor = start_after + 1  # every event at/after floor and before next_offset is held
        self.next_offset = start_after + 1
        self.ring: list[StreamEvent] = []
        self._offsets: list[int] = []
        self.done = False
        self.error: BaseException | None = None
        self.fallback: list[StreamEvent] | None = None
        self.clients = 0
        self._parked: dict[int, int] = {}  # readers waiting for news -> their cursor
        self._readers = 0
        self.received = 0
        self.started_at = time.time()
        self._changed = asyncio.Event()
        self._idle_timer: asyncio.TimerHandle | None = None
        self.task = asyncio.create_task(self._pump(), name=f"feed:{run_id}")

    # ------------------------------------------------------------ the one subscription
    async def _pump(self) -> None:
        settings = self.hub.settings
        stream = WorkflowStreamClient.create(self.hub.client, self.run_id)
        cooldown = timedelta(milliseconds=settings.events_poll_cooldown_ms)
        try:
            if await is_closed(self.hub.client, self.run_id):
                await self._drain_closed()  # queries only: bounded when no worker answers
                return
            async for item in stream.subscribe(
                [TOPIC], from_offset=self.next_offset, poll_cooldown=cooldown
            ):
                event = event_from_item(item.offset, item.data)
                self._append(event)
                if event.type in TERMINAL:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._fall_back(e)
        finally:
            self.done = True
            self._wake()
            self.hub._ended(self)

    async def _drain_closed(self) -> None:
        timeout = self.hub.settings.events_query_timeout_s
        while True:
            events, more = await query_events(
                self.hub.client, self.run_id, self.next_offset - 1, timeout
            )
            for event in events:
                self._append(event)
            if not more or not events:
                return

    def _append(self, event: StreamEvent) -> None:
        self.ring.append(event)
        self._offsets.append(event.offset)
        self.next_offset = event.offset + 1
        self.received += 1
        cap = self.hub.settings.events_max_lag
        if len(self.ring) > cap + cap // 2:  # trim in chunks, not on every event
            keep_from = self._offsets[len(self.ring) - cap]
            if self._parked:  # never past a reader that is only waiting for its turn
                keep_from = min(keep_from, *self._parked.values())
            drop = bisect.bisect_left(self._offsets, keep_from)
            if drop:
                del self.ring[:drop]
                del self._offsets[:drop]
                self.floor = self._offsets[0]
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _fall_back(self, error: BaseException) -> None:
        try:
            closed = await is_closed(self.hub.client, self.run_id)
            if closed:
                state = await self.hub.load_state(self.run_id)
                self.fallback = events_from_state(state)
                log.info("stream unreadable; serving the run's retained events",
                         run_id=self.run_id, error=str(error))  # fmt: skip
                return
        except Exception as e:
            log.warning("stream fallback failed", run_id=self.run_id, error=str(e))
        log.warning("run stream subscription failed", run_id=self.run_id, error=str(error))
        self.error = error

    # ------------------------------------------------------------ one client
    async def follow(self, after: int) -> AsyncIterator[StreamEvent]:
        """Every event after `after`, in order, then stop after the terminal event.

        A reader that has caught up once is "live". While it waits for news it is parked
        and the ring keeps everything after its cursor; while its consumer is busy, the
        ring moves on without it, and if its cursor falls off the ring it is dropped.
        """
        cursor = after + 1
        live = False
        max_lag = self.hub.settings.events_max_lag
        self._readers += 1
        reader = self._readers
        while True:
            if self.fallback is not None:
                for e in self.fallback:
                    if e.offset >= cursor:
                        yield e
                return
            if cursor < self.floor:  # older than the ring: read it from the stream itself
                if live:
                    raise FellBehind(f"client fell more than {max_lag} events behind")
                events, _ = await query_events(
                    self.hub.client,
                    self.run_id,
                    cursor - 1,
                    self.hub.settings.events_query_timeout_s,
                )
                events = [e for e in events if cursor <= e.offset < self.floor]
                for e in events:
                    yield e
                    cursor = e.offset + 1
                    if e.type in TERMINAL:
                        return
                if not events:
                    cursor = self.floor
                continue
            changed = self._changed
            i = bisect.bisect_left(self._offsets, cursor)
            batch = self.ring[i:]
            if batch:
                for e in batch:
                    yield e
                    cursor = e.offset + 1
                    if e.type in TERMINAL:
                        return
                continue
            live = True
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            self._parked[reader] = cursor
            try:
                await changed.wait()
            finally:
                self._parked.pop(reader, None)

    # ------------------------------------------------------------ clients coming and going
    def attach(self) -> None:
        self.clients += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def detach(self) -> None:
        self.clients -= 1
        if self.clients > 0:
            return
        if self.done:
            self.hub._ended(self)
            return
        linger = self.hub.settings.events_idle_linger_s
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(linger, self._idle_close)

    def _idle_close(self) -> None:
        if self.clients == 0 and not self.task.done():
            log.debug("closing idle run stream subscription", run_id=self.run_id)
            self.task.cancel()

    def stats(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "clients": self.clients,
            "received": self.received,
            "next_offset": self.next_offset,
            "floor": self.floor,
            "done": self.done,
            "age_s": round(time.time() - self.started_at, 1),
        }


@dataclass
class HubStats:
    subscriptions_started: int = 0
    clients_served: int = 0
    clients_dropped_behind: int = 0


class StreamHub:
    """The gateway process's feeds, one per run with at least one client."""

    def __init__(self, client: Client, settings: Settings, load_state: StateLoader) -> None:
        self.client = client
        self.settings = settings
        self.load_state = load_state
        self.feeds: dict[str, RunFeed] = {}
        self.counters = HubStats()

    @contextlib.asynccontextmanager
    async def subscribe(self, run_id: str, after: int) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Join (or start) the run's feed; yields the client's event iterator."""
        feed = self.feeds.get(run_id)
        if feed is None or feed.error is not None:
            feed = RunFeed(self, run_id, after)
            self.feeds[run_id] = feed
            self.counters.subscriptions_started += 1
            log.debug("run stream subscription started", run_id=run_id, after=after)
        feed.attach()
        self.counters.clients_served += 1
        events = feed.follow(after)
        try:
            yield events
        except FellBehind:
            self.counters.clients_dropped_behind += 1
            raise
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            feed.detach()

    def _ended(self, feed: RunFeed) -> None:
        if self.feeds.get(feed.run_id) is feed and feed.clients == 0:
            del self.feeds[feed.run_id]

    def stats(self) -> dict[str, Any]:
        return {
            "subscriptions_started": self.counters.subscriptions_started,
            "active_subscriptions": sum(1 for f in self.feeds.values() if not f.done),
            "clients_served": self.counters.clients_served,
            "clients_dropped_behind": self.counters.clients_dropped_behind,
            "feeds": [f.stats() for f in self.feeds.values()],
        }

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            feed.task.cancel()
        await asyncio.gather(*(f.task for f in self.feeds.values()), return_exceptions=True)
        self.feeds.clear()
