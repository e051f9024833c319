"""`GET /v1/runs/{id}/events`: a run's live events as SSE, or as a JSON page.

SSE is what a browser or `duratask run watch` follows: each event's `id` is its stream
offset, so a dropped connection resumes with `Last-Event-ID` (or `?after=`) with no gap
and no duplicate; a comment every `events_keepalive_s` keeps proxies from closing an
idle stream; the response ends after the run's terminal event. The same URL with
`Accept: application/json` answers at once with the events after `?after=`: the
polling fallback for clients that cannot hold a stream open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import Admin, Reader, RunsDep, SettingsDep, StoreDep, TemporalDep
from api.errors import COMMON, TEMPORAL, ApiError, responses, unprocessable
from api.run_ids import child_route
from api.runs_service import RunService
from api.schemas import MAX_INT
from api.streams import (
    FellBehind,
    LiveEvent,
    StreamHub,
    events_from_state,
    is_closed,
    query_events,
    resume_key,
)
from duratask.access import SYSTEM
from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.deltas import DeltaRelay
from workflows.events import TERMINAL
from workflows.models import StreamEvent

log = get_logger(__name__)

router = APIRouter(tags=["events"], responses=responses(*COMMON, 404, 409, *TEMPORAL))

MAX_PAGE = 5000


def get_hub(request: Request, client: TemporalDep, store: StoreDep) -> StreamHub:
    """The process's hub, created with the first stream (Temporal may connect late)."""
    state = request.app.state
    hub: StreamHub | None = getattr(state, "stream_hub", None)
    if hub is None:
        settings: Settings = state.settings
        # shared by every client of every run: it reads a run's state only after the
        # route checked that the caller may see that run
        runs = RunService(client, store, settings, SYSTEM)
        relay = DeltaRelay(store.engine, settings.stream_delta_ttl_s)
        hub = StreamHub(client, settings, runs.get, relay)
        state.stream_hub = hub
    return hub


Hub = Annotated[StreamHub, Depends(get_hub)]


class TypeFilter:
    """`?types=step.started,llm.*`: exact names, or a prefix ending in `*`."""

    def __init__(self, raw: list[str]) -> None:
        names = [t.strip() for part in raw for t in part.split(",") if t.strip()]
        self.exact = {n for n in names if not n.endswith("*")}
        self.prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
        self.all = not names

    def __call__(self, event: StreamEvent) -> bool:
        return self.all or event.type in self.exact or event.type.startswith(self.prefixes)


def resume_point(after: int | None, last_event_id: str | None) -> tuple[int, int]:
    """Where to resume: `Last-Event-ID` (a reconnect) wins over `?after=`.

    (offset, relay row id): the durable offset, and the last token delta seen after it.
    """
    if last_event_id is not None and last_event_id.strip():
        try:
            offset, relay = resume_key(last_event_id)
        except ValueError:
            offset, relay = MAX_INT + 1, 0
        if not -1 <= offset <= MAX_INT or not 0 <= relay <= 2**63 - 1:
            raise unprocessable(
                f"Last-Event-ID must be an event id (an offset such as `12`, or `12.345` "
                f"after a token delta), got {last_event_id[:40]!r}"
            )
        return offset, relay
    return (-1 if after is None else after), 0


# The frames of the latest events: every client of a run gets the same event objects
# from its feed's ring, so one is encoded once, not once per client (by identity; the
# entry holds the event, so its id cannot be reused while cached).
_FRAMES: OrderedDict[int, tuple[StreamEvent, str]] = OrderedDict()
FRAMES_KEPT = 1024


def sse(event: StreamEvent) -> str:
    cached = _FRAMES.get(id(event))
    if cached is not None and cached[0] is event:
        return cached[1]
    body = event.model_dump_json()
    sse_id = f"{event.offset}.{event.relay_id}" if isinstance(event, LiveEvent) else event.offset
    frame = f"id: {sse_id}\nevent: {event.type}\ndata: {body}\n\n"
    _FRAMES[id(event)] = (event, frame)
    if len(_FRAMES) > FRAMES_KEPT:
        _FRAMES.popitem(last=False)
    return frame


def wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    kinds = [a.split(";")[0].strip() for a in accept.split(",")]
    return "application/json" in kinds and "text/event-stream" not in kinds


@router.get(
    "/v1/runs/{run_id}/events",
    responses={200: {"content": {"text/event-stream": {}, "application/json": {}}}},
)
async def run_events(
    run_id: str,
    request: Request,
    runs: RunsDep,
    settings: SettingsDep,
    _: Reader,
    after: int | None = Query(None, ge=-1, le=MAX_INT, description="Resume after this offset"),
    types: list[str] = Query([], description="Only these types (comma-separated; `llm.*`)"),
    limit: int = Query(500, ge=1, le=MAX_PAGE, description="JSON page size"),
    accept: str | None = Header(None),
    last_event_id: str | None = Header(None),
) -> Any:
    """The run's events: SSE by default; a JSON page with `Accept: application/json`."""
    await runs.describe(run_id)  # 404 for an unknown run or one the caller may not see
    start, start_relay = resume_point(after, last_event_id)
    wanted = TypeFilter(types)
    if wants_json(accept):
        return await json_page(runs, run_id, start, wanted, limit, settings.events_query_timeout_s)
    hub = get_hub(request, runs.client, runs.store)
    return StreamingResponse(
        stream(hub, run_id, start, wanted, settings.events_keepalive_s, start_relay),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/v1/streams", tags=["events"])
async def stream_stats(request: Request, _: Admin) -> dict[str, Any]:
    """This gateway's shared run subscriptions and their clients (for operators and tests;
    it names everyone's runs, so it needs `tasks:admin`)."""
    hub: StreamHub | None = getattr(request.app.state, "stream_hub", None)
    if hub is None:
        return {"subscriptions_started": 0, "active_subscriptions": 0, "feeds": []}
    return hub.stats()


async def stream(
    hub: StreamHub,
    run_id: str,
    after: int,
    wanted: TypeFilter,
    keepalive: float,
    after_relay: int = 0,
) -> AsyncIterator[str]:
    async with contextlib.AsyncExitStack() as stack:
        try:
            events = await stack.enter_async_context(hub.subscribe(run_id, after, after_relay))
            pending: asyncio.Task[StreamEvent] | None = None
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events))  # type: ignore[arg-type]
                done, _ = await asyncio.wait({pending}, timeout=keepalive)
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                pending = None
                try:
                    event = done.pop().result()
                except StopAsyncIteration:
                    return
                if wanted(event):
                    yield sse(event)
                if event.type in TERMINAL:
                    return
        except FellBehind as e:
            log.info("SSE client fell behind; dropped", run_id=run_id, error=str(e))
            yield f"event: error\ndata: {json.dumps({'detail': str(e), 'reconnect': True})}\n\n"
        except (RPCError, ApiError, Exception) as e:  # the stream could not be read
            log.warning("run stream failed", run_id=run_id, error=str(e))
            yield f"event: error\ndata: {json.dumps({'detail': f'event stream failed: {e}'})}\n\n"
        finally:
            if pending is not None:  # let it finish cancelling before its iterator closes
                pending.cancel()
                await asyncio.wait({pending})


async def json_page(
    runs: RunService, run_id: str, after: int, wanted: TypeFilter, limit: int, timeout: float
) -> dict[str, Any]:
    client: Client = runs.client
    source = "stream"
    try:
        events, more = await query_events(client, run_id, after, timeout)
    except (RPCError, Exception) as e:
        if not await is_closed(client, run_id):
            raise ApiError(503, f"the run's event stream cannot be read now: {e}") from None
        events = [ev for ev in events_from_state(await runs.get(run_id)) if ev.offset > after]
        more, source = False, "state"
    page = events[:limit]
    more = more or len(events) > limit
    next_after = page[-1].offset if page else after
    done = any(e.type in TERMINAL for e in page) or (
        not page and not more and await is_closed(client, run_id)
    )
    return {
        "run_id": run_id,
        "events": [e.model_dump(mode="json") for e in page if wanted(e)],
        "next_after": next_after,
        "more": more,
        "done": done,
        "source": source,
    }


child_route(router, "/v1/runs/{run_id}/events", run_events, methods=["GET"])
