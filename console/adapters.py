"""The console's only doorway into the service layer: one small function per action.

Each calls exactly the code the API route calls, with the signed-in principal, so the
same scopes, ownership and validation apply and the same `ApiError`s come back. When a
service changes shape (a `principal` argument for ownership, a single approvals
`decide(...)`), only these functions need to follow.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import yaml
from fastapi import Request, Response
from temporalio.client import Client

from api.auth import Principal, require_scope
from api.definitions_service import DefinitionService
from api.deps import get_temporal
from api.errors import ApiError
from api.insights.deps import insights_service
from api.insights.records import run_query, scan
from api.insights.service import InsightsService, window_start
from api.insights.stats import RunStats
from api.routers import approvals as approvals_api
from api.routers import collab as collab_api
from api.routers.collab import get_collab, with_collab
from api.routers.events import get_hub
from api.runs_service import RunService
from api.schemas import RunSummary, RunView, StartRunRequest
from console.series import Bucket, buckets
from duratask.access import ADMIN_SCOPE, may_see, with_visibility
from duratask.schedules.models import ScheduleView
from duratask.schedules.service import ScheduleService
from duratask.settings import Settings
from duratask.store.collab import Comment
from duratask.store.definitions import DefinitionStore, StoredVersion
from workflows.models import Intervention, Priority, RunState

READ, WRITE, APPROVE = "tasks:read", "tasks:write", "tasks:approve"


def settings_of(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


def store_of(request: Request) -> DefinitionStore:
    s: DefinitionStore = request.app.state.store
    return s


async def client_of(request: Request) -> Client:
    return await get_temporal(request)


def definitions_of(request: Request, who: Principal) -> DefinitionService:
    """The definitions `who` may see: the access rule applies as on the API."""
    return DefinitionService(store_of(request), who)


async def runs_of(request: Request, who: Principal) -> RunService:
    """The run service acting as `who`: ownership applies as on the API."""
    return RunService(await client_of(request), store_of(request), settings_of(request), who)


async def schedules_of(request: Request, who: Principal) -> ScheduleService:
    return ScheduleService(await client_of(request), store_of(request), settings_of(request), who)


# ---------------------------------------------------------------- runs
async def list_runs(
    request: Request,
    who: Principal,
    filters: dict[str, str | None],
    size: int,
    token: str | None,
    started_after: datetime | None = None,
) -> tuple[list[RunSummary], str | None]:
    require_scope(who, READ)
    runs = await runs_of(request, who)
    return await runs.search(
        filters.get("definition_id"),
        filters.get("status"),
        filters.get("owner"),
        filters.get("trigger"),
        filters.get("parent"),
        size,
        token,
        started_after,
    )


async def get_run(request: Request, who: Principal, run_id: str) -> RunView:
    require_scope(who, READ)
    runs = await runs_of(request, who)
    return await with_collab(await runs.get_with_children(run_id), get_collab(request))


async def start_run(request: Request, who: Principal, body: StartRunRequest) -> RunState:
    require_scope(who, WRITE)
    state, _ = await (await runs_of(request, who)).start(body, who.identity)
    return state


async def cancel_run(request: Request, who: Principal, run_id: str, reason: str) -> None:
    require_scope(who, WRITE)
    await (await runs_of(request, who)).cancel(run_id, reason, who.identity)


async def retry_run(
    request: Request, who: Principal, run_id: str, new_input: dict[str, Any] | None
) -> RunState:
    require_scope(who, WRITE)
    return await (await runs_of(request, who)).retry(run_id, new_input, who.identity)


async def set_priority(request: Request, who: Principal, run_id: str, priority: Priority) -> None:
    require_scope(who, WRITE)
    await (await runs_of(request, who)).set_priority(run_id, priority)


async def send_message(request: Request, who: Principal, run_id: str, mode: str, text: str) -> None:
    require_scope(who, WRITE)
    msg = Intervention(mode=mode, message=text, sender=who.identity)  # type: ignore[arg-type]
    await (await runs_of(request, who)).message(run_id, msg)


async def event_hub(request: Request) -> Any:
    return get_hub(request, await client_of(request), store_of(request))


# ---------------------------------------------------------------- thread
async def comments(request: Request, who: Principal, run_id: str) -> collab_api.CommentPage:
    return await collab_api.list_comments(
        run_id, await runs_of(request, who), get_collab(request), who, None, 200, None
    )


async def add_comment(
    request: Request, who: Principal, run_id: str, kind: str, body: str, to: str | None
) -> Comment:
    require_scope(who, WRITE)
    data: dict[str, Any] = {"body": body, "kind": kind}
    if kind == "handoff":
        data["to"] = to
    req = collab_api.CommentRequest.model_validate(data)
    return await collab_api.add_comment(
        run_id, req, await runs_of(request, who), get_collab(request), who, settings_of(request)
    )


async def rate(request: Request, who: Principal, run_id: str, score: str, comment: str) -> None:
    require_scope(who, WRITE)
    req = collab_api.RatingRequest.model_validate({"score": score, "comment": comment or None})
    await collab_api.rate_run(
        run_id, req, Response(), await runs_of(request, who), get_collab(request), who
    )


async def people(request: Request, run: RunState) -> list[str]:
    """Who an @mention may suggest: the run's owner and creator, and the thread's authors."""
    names = {run.owner or ""}
    page = await get_collab(request).comments(run.run_id, 200, None, None)
    for c in page[0]:
        names.add(c.author)
        if c.to:
            names.add(c.to)
    return sorted(n for n in names if n)


# ---------------------------------------------------------------- approvals
async def pending_approvals(request: Request, who: Principal) -> approvals_api.ApprovalPage:
    return await approvals_api.list_approvals(await runs_of(request, who), who, "me", 100, None)


async def decide(
    request: Request,
    who: Principal,
    run_id: str,
    decision: str,
    comment: str | None,
    output: Any = None,
) -> None:
    """Approve or reject as `who` (403 for anyone not on the step's approvers list);
    `output`: an edit of the gated step's output (None: none)."""
    require_scope(who, APPROVE)
    body = approvals_api.DecisionRequest.model_validate(
        {"decision": decision, "comment": comment or None, "output": output}
    )
    await approvals_api.decide(run_id, body, await runs_of(request, who), who)


# ---------------------------------------------------------------- definitions
async def definitions(request: Request, who: Principal) -> list[StoredVersion]:
    require_scope(who, READ)
    items, _ = await definitions_of(request, who).list_latest(500, 0)
    return items


async def definition(
    request: Request, who: Principal, definition_id: str, version: int | None = None
) -> StoredVersion:
    require_scope(who, READ)
    return await definitions_of(request, who).get(definition_id, version)


async def versions(request: Request, who: Principal, definition_id: str) -> list[StoredVersion]:
    require_scope(who, READ)
    return await definitions_of(request, who).versions(definition_id)


# ---------------------------------------------------------------- schedules
async def schedules(request: Request, who: Principal) -> tuple[list[ScheduleView], bool]:
    require_scope(who, READ)
    svc = await schedules_of(request, who)
    return await svc.list(), await svc.enabled()


async def schedule_action(request: Request, who: Principal, sid: str, action: str) -> None:
    require_scope(who, WRITE)
    svc = await schedules_of(request, who)
    if action == "pause":
        await svc.pause(sid, f"paused from the console by {who.identity}")
    elif action == "unpause":
        await svc.unpause(sid, f"unpaused from the console by {who.identity}")
    elif action == "trigger":
        await svc.trigger(sid, "allow_all")
    else:
        raise ValueError(action)


async def set_scheduling(request: Request, who: Principal, enabled: bool) -> None:
    """The global switch: `tasks:admin`, checked first as `PUT /v1/scheduling` does."""
    require_scope(who, ADMIN_SCOPE)
    await (await schedules_of(request, who)).set_enabled(enabled)


# ---------------------------------------------------------------- insights
async def insights(request: Request, who: Principal) -> InsightsService:
    return insights_service(
        request, await client_of(request), store_of(request), settings_of(request), who
    )


async def stats(
    request: Request,
    who: Principal,
    definition_id: str | None,
    window: str | None,
    owner: str | None = None,
) -> tuple[RunStats, list[Bucket]]:
    """The window's stats, and the same runs bucketed over time for the charts."""
    require_scope(who, READ)
    s = settings_of(request)
    start = window_start(None, window, s.insights_default_window)
    svc = await insights(request, who)
    # the charts read the same runs as the stats: only those `who` may see
    query = with_visibility(run_query(owner=owner, definition_id=definition_id, since=start), who)
    summary, (records, _) = await asyncio.gather(
        svc.stats(owner, definition_id, start, s.insights_max_runs),
        scan(svc.client, query, s.insights_max_runs),
    )
    return summary, buckets(records, start, datetime.now(UTC))


def require_read(who: Principal) -> None:
    require_scope(who, READ)


def require_write(who: Principal) -> None:
    require_scope(who, WRITE)


async def may_change(request: Request, who: Principal, run: RunView) -> bool:
    """Whether the run's action forms are shown: `tasks:write` and the run is the caller's,
    their team's, or (for a child) under a root they may change; an approver who may only
    see the run gets none (the service answers 403 to them)."""
    if not who.has(WRITE):
        return False
    if may_see(who, run.owner, run.team):
        return True
    try:
        await (await runs_of(request, who)).may_act(run.run_id)
    except ApiError:
        return False
    return True


def definition_yaml(definition: Any) -> list[Any]:
    """The stored definition as YAML lines, with any problems the checks find now."""
    from console.yamlcheck import check

    data = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return check(text)


def check_yaml(text: str) -> list[Any]:
    from console.yamlcheck import check

    return check(text)


async def regressions(request: Request, who: Principal) -> Any:
    require_scope(who, READ)
    return await (await insights(request, who)).regressions(50)


def may_decide(who: Principal, pending: dict[str, Any]) -> bool:
    """Whether the decision buttons are shown; the approvals code checks again on POST."""
    from workflows.approvals import is_allowed, normalise

    if not who.has(APPROVE) or not is_allowed(
        pending.get("approvers") or [], who.identity, who.groups
    ):
        return False
    me = normalise(who.identity)
    return not any(normalise(v.get("approver", "")) == me for v in pending.get("votes", []))


def known_identities(request: Request) -> list[str]:
    """Identities of the configured API keys (never the keys): @mention suggestions."""
    return [k.identity for k in settings_of(request).api_keys]
