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

Token deltas (`llm.delta`, `llm.retry`) are not in the Workflow Stream: the LLM activity
writes them to the store's live relay (`duratask.store.deltas`), and a feed with clients
reads the relay's new rows every `events_delta_poll_ms`, which costs the run no history.
They enter the ring as *transient* events: each carries the offset of the durable event
before it and has no SSE id of its own, so resuming by offset is unchanged. Before a
durable event enters the ring the relay is read once more, so a call's deltas always
come before its `llm.completed`. A new feed reads every item the relay still keeps and
places each before the first durable event written after it (by time, and always
before the event that closes its model call), so a watcher that joins late still sees
the text of the calls it missed.

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

from pydantic import Field
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamClient

from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.deltas import DeltaRelay
from workflows.events import (
    TERMINAL,
    TOPIC,
    TRANSIENT,
    EventType,
)
from workflows.models import RunState, StreamEvent

log = get_logger(__name__)

POLL = "__temporal_workflow_stream_poll"  # the stream's poll query (same name as the update)

StateLoader = Callable[[str], Any]  # run_id -> awaitable RunState
CLOSES_CALL = frozenset(
    {EventType.LLM_COMPLETED, EventType.STEP_COMPLETED, EventType.STEP_FAILED, *TERMINAL}
)
Key = tuple[int, int]  # (offset, 0): a durable event; (offset before it, relay row id): transient


class LiveEvent(StreamEvent):
    """A transient event from the relay; its SSE id is `<offset before it>.<relay_id>`."""

    relay_id: int = Field(exclude=True)


def resume_key(last_event_id: str) -> tuple[int, int]:
    """`Last-Event-ID` as (offset, relay row id): `12` or, after a token delta, `12.345`."""
    offset, _, relay = last_event_id.strip().partition(".")
    return int(offset), int(relay) if relay else 0


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
        self.floor: Key = (start_after, 1)  # every event at/after floor is held in the ring
        self.next_offset = start_after + 1
        self.ring: list[StreamEvent] = []
        self._offsets: list[Key] = []
        self._relay_after = 0  # the last relay row read (a new feed reads what is kept)
        self._pending: list[LiveEvent] = []  # relay items read, not yet placed in the ring
        self._durable_at = 0.0  # when the last durable event arrived (monotonic)
        self._relay_lock = asyncio.Lock()
        self.transient = 0
        self.done = False
        self.error: BaseException | None = None
        self.fallback: list[StreamEvent] | None = None
        self.clients = 0
        self._parked: dict[int, Key] = {}  # readers waiting for news -> their cursor
        self._readers = 0
        self.received = 0
        self.started_at = time.time()
        self._changed = asyncio.Event()
        self._idle_timer: asyncio.TimerHandle | None = None
        self.task = asyncio.create_task(self._pump(), name=f"feed:{run_id}")
        self.relay_task: asyncio.Task[None] | None = None  # started for a running run only

    # ------------------------------------------------------------ the one subscription
    async def _pump(self) -> None:
        settings = self.hub.settings
        stream = WorkflowStreamClient.create(self.hub.client, self.run_id)
        cooldown = timedelta(milliseconds=settings.events_poll_cooldown_ms)
        try:
            if await is_closed(self.hub.client, self.run_id):
                await self._drain_closed()  # queries only: bounded when no worker answers
                return
            if self.hub.relay is not None:  # live-only events exist while the run runs
                name = f"relay:{self.run_id}"
                self.relay_task = asyncio.create_task(self._relay_pump(), name=name)
            async for item in stream.subscribe(
                [TOPIC], from_offset=self.next_offset, poll_cooldown=cooldown
            ):
                event = event_from_item(item.offset, item.data)
                await self._drain_relay()
                self._release(before=event)  # the deltas written before it come first
                self._append(event)
                self._durable_at = time.monotonic()
                if event.type in TERMINAL:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._fall_back(e)
        finally:
            self.done = True
            if self.relay_task is not None:
                self.relay_task.cancel()
            self._wake()
            self.hub._ended(self)

    async def _relay_pump(self) -> None:
        interval = self.hub.settings.events_delta_poll_ms / 1000
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self.done:
            due = max(due + interval, loop.time())  # a fixed beat: the read's time is in it
            await asyncio.sleep(due - loop.time())
            await self._drain_relay()
            if time.monotonic() - self._durable_at >= 2 * interval:
                self._release()  # the durable stream is quiet, not catching up: all in order

    def _release(self, before: StreamEvent | None = None) -> None:
        """Move fetched relay items into the ring: all, or those that precede `before`.

        A relay item precedes a durable event written after it, and every event that
        closes its step's model call (the activity relays its text before it answers).
        """
        if not self._pending:
            return
        ready: list[LiveEvent] = []
        keep: list[LiveEvent] = []
        if before is None:
            ready = self._pending
        else:
            closes = before.type in CLOSES_CALL
            for e in self._pending:
                early = e.time <= before.time or (closes and e.step_id == before.step_id)
                (ready if early else keep).append(e)
        self._pending = keep
        for e in ready:
            self._append_transient(e.model_copy(update={"offset": self.next_offset - 1}))

    async def _drain_relay(self) -> None:
        relay = self.hub.relay
        if relay is None or self.done:
            return
        async with self._relay_lock:
            try:
                rows = await relay.after(self.run_id, self._relay_after)
            except Exception as e:  # best effort: the durable events still flow
                log.debug("token relay read failed", run_id=self.run_id, error=str(e))
                return
            for row_id, item in rows:
                self._relay_after = row_id
                if item.get("type") in TRANSIENT:
                    self._pending.append(
                        LiveEvent.model_validate({**item, "offset": -1, "relay_id": row_id})
                    )

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
        self.next_offset = event.offset + 1
        self._add(event, (event.offset, 0))

    def _append_transient(self, event: LiveEvent) -> None:
        self.transient += 1
        key = (event.offset, event.relay_id)
        if self._offsets and key <= self._offsets[-1]:  # out of time order: keep the ring sorted
            return
        self._add(event, key)

    def _add(self, event: StreamEvent, key: Key) -> None:
        self.ring.append(event)
        self._offsets.append(key)
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
                self.floor = keep_from  # everything at/after it is still held
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
    async def follow(self, after: int, after_relay: int = 0) -> AsyncIterator[StreamEvent]:
        """Every event after `after`, in order, then stop after the terminal event.

        A reader that has caught up once is "live". While it waits for news it is parked
        and the ring keeps everything after its cursor; while its consumer is busy, the
        ring moves on without it, and if its cursor falls off the ring it is dropped.
        """
        cursor: Key = (after, after_relay + 1)  # transient events after `after`, then after+1
        live = False
        max_lag = self.hub.settings.events_max_lag
        self._readers += 1
        reader = self._readers
        while True:
            if self.fallback is not None:
                for e in self.fallback:
                    if e.offset >= (cursor[0] + 1 if cursor[1] else cursor[0]):
                        yield e
                return
            if cursor < self.floor:  # older than the ring: read it from the stream itself
                if live:
                    raise FellBehind(f"client fell more than {max_lag} events behind")
                first = cursor[0] + 1 if cursor[1] else cursor[0]  # the next durable offset
                events, _ = await query_events(
                    self.hub.client,
                    self.run_id,
                    first - 1,
                    self.hub.settings.events_query_timeout_s,
                )
                events = [e for e in events if first <= e.offset and (e.offset, 0) < self.floor]
                for e in events:
                    yield e
                    cursor = (e.offset, 1)
                    if e.type in TERMINAL:
                        return
                if not events:
                    cursor = self.floor
                continue
            changed = self._changed
            i = bisect.bisect_left(self._offsets, cursor)
            batch = self.ring[i:]
            keys = self._offsets[i:]
            if batch:
                for e, key in zip(batch, keys, strict=True):
                    yield e
                    cursor = (key[0], key[1] + 1)
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
            "floor": self.floor[0],
            "transient": self.transient,
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

    def __init__(
        self,
        client: Client,
        settings: Settings,
        load_state: StateLoader,
        relay: DeltaRelay | None = None,
    ) -> None:
        self.client = client
        self.relay = relay
        self.settings = settings
        self.load_state = load_state
        self.feeds: dict[str, RunFeed] = {}
        self.counters = HubStats()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, run_id: str, after: int, after_relay: int = 0
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Join (or start) the run's feed; yields the client's event iterator."""
        feed = self.feeds.get(run_id)
        if feed is None or feed.error is not None:
            feed = RunFeed(self, run_id, after)
            self.feeds[run_id] = feed
            self.counters.subscriptions_started += 1
            log.debug("run stream subscription started", run_id=run_id, after=after)
        feed.attach()
        self.counters.clients_served += 1
        events = feed.follow(after, after_relay)
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
        tasks = [t for f in self.feeds.values() for t in (f.task, f.relay_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.feeds.clear()
