"""The console's routes: pages, fragments they poll, the live event stream, and forms.

Every page needs a session (else a redirect to the sign-in page); every POST needs
the session's CSRF token. Forms post plainly and redirect back (303), so the pages
work with the keyboard and without script; htmx only refreshes parts in place.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
import jwt
import markupsafe
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import FormData
from temporalio.service import RPCError

from api.auth import Authenticator, Principal
from api.errors import ApiError, map_rpc_error, pydantic_problems
from api.routers.events import TypeFilter, json_page, resume_point, stream
from api.schemas import StartRunRequest
from console import adapters, graph
from console.forms import FormProblem, input_fields, parse_inputs
from console.series import charts
from console.session import COOKIE, Session, Sessions
from duratask.access import AccessDenied, is_admin
from duratask.schedules.service import ScheduleError
from duratask.store.definitions import NotFound
from workflows.models import Priority, RunState, RunStatus

HERE = Path(__file__).parent
STATUSES = [s.value for s in RunStatus]
TRIGGERS = ["api", "cli", "schedule", "retry", "subtask", "tool"]
PRIORITIES = [p.value for p in Priority]
PAGE_SIZE = 50

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value is escaped: a model answering <script> shows text
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["tojson_attr"] = lambda v: json.dumps(v, default=str)
# readable JSON for text (a held tool call's arguments); autoescape makes it safe
env.filters["pretty_json"] = lambda v: json.dumps(v, default=str, indent=1, ensure_ascii=False)


class SignInRequired(Exception):
    pass


router = APIRouter(prefix="/ui", include_in_schema=False)


# ---------------------------------------------------------------- plumbing
def sessions_of(request: Request) -> Sessions:
    s: Sessions = request.app.state.console_sessions
    return s


def session_of(request: Request) -> Session:
    s = sessions_of(request).read(request.cookies.get(COOKIE))
    if s is None:
        raise SignInRequired()
    return s


def problem(e: Exception) -> tuple[int, str, list[dict[str, Any]]]:
    if isinstance(e, ApiError):
        return e.status, str(e.detail), list(e.extra.get("problems") or [])
    if isinstance(e, NotFound):
        return 404, str(e), []
    if isinstance(e, AccessDenied):
        return e.status, e.message, []
    if isinstance(e, ScheduleError):  # as api/errors.py maps it
        return {"not_found": 404, "conflict": 409, "forbidden": 403}.get(e.kind, 422), e.message, []
    if isinstance(e, ValidationError):
        probs = pydantic_problems(e)
        return 422, "; ".join(f"{p.get('field')}: {p.get('message')}" for p in probs), probs
    if isinstance(e, FormProblem):
        return 422, str(e), e.problems
    if isinstance(e, RPCError):
        err = map_rpc_error(e)
        return err.status, str(err.detail), []
    raise e


HANDLED = (
    ApiError,
    NotFound,
    AccessDenied,
    ScheduleError,
    ValidationError,
    FormProblem,
    RPCError,
)


async def nav_count(request: Request, who: Principal) -> int | None:
    """How many approvals wait for the caller (the navigation's badge)."""
    if not who.has("tasks:approve"):
        return None
    try:
        page = await adapters.pending_approvals(request, who)
    except HANDLED:
        return None
    return len(page.items)


async def page(
    request: Request, session: Session, template: str, code: int = 200, **ctx: Any
) -> HTMLResponse:
    html = env.get_template(template).render(
        request=request,
        who=session.principal,
        csrf=session.csrf,
        approvals_count=await nav_count(request, session.principal),
        **ctx,
    )
    return HTMLResponse(html, status_code=code)


def fragment(template: str, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(env.get_template(template).render(**ctx))


async def error_page(request: Request, session: Session, e: Exception) -> HTMLResponse:
    status, detail, problems = problem(e)
    back = request.headers.get("referer") or "/ui"
    return await page(
        request,
        session,
        "error.html",
        status,
        status=status,
        detail=detail,
        problems=problems,
        back=back,
    )


def same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


async def form_of(request: Request, session: Session) -> FormData:
    form = await request.form()
    token = form.get("csrf")
    if not same_origin(request) or not session.csrf_ok(token if isinstance(token, str) else None):
        raise ApiError(403, "the form's CSRF token is missing or wrong: reload the page and retry")
    return form


def field(form: FormData, name: str, default: str = "") -> str:
    v = form.get(name)
    return v.strip() if isinstance(v, str) else default


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def run_url(run_id: str) -> str:
    return "/ui/runs/" + quote(run_id, safe="/")


async def action(request: Request, work: Callable[[Session, FormData], Awaitable[str]]) -> Response:
    """A state-changing form: CSRF checked, the work done, then back to a page (303)."""
    session = session_of(request)
    try:
        form = await form_of(request, session)
        return see_other(await work(session, form))
    except HANDLED as e:
        return await error_page(request, session, e)


# ---------------------------------------------------------------- sign-in
@router.get("/login")
async def login_form(request: Request, next: str = "/ui", error: str | None = None) -> Response:
    auth: Authenticator = request.app.state.auth
    html = env.get_template("login.html").render(
        request=request, next=safe_next(next), error=error, open=auth.open
    )
    return HTMLResponse(html, status_code=401 if error else 200)


def safe_next(target: str) -> str:
    return target if target.startswith("/ui") and "//" not in target else "/ui"


def signed_in(
    request: Request, principal: Principal, target: str, not_after: float | None
) -> Response:
    value, session = sessions_of(request).issue(principal, not_after)
    resp = see_other(safe_next(target))
    resp.set_cookie(
        COOKIE,
        value,
        max_age=max(1, int(session.expires_at - time.time())),
        httponly=True,
        samesite="strict",
        secure=sessions_of(request).secure,
        path="/ui",
    )
    return resp


@router.post("/login")
async def login(request: Request) -> Response:
    if not same_origin(request):
        raise ApiError(403, "sign-in from another site is refused")
    form = await request.form()
    token, target = field(form, "token"), field(form, "next", "/ui")
    auth: Authenticator = request.app.state.auth
    if auth.open:
        principal = auth.authenticate(None)
    elif not token:
        return see_other("/ui/login?" + urlencode({"error": "enter an API key or a JWT"}))
    else:
        try:
            principal = auth.authenticate(f"Bearer {token}")
        except ApiError as e:
            return see_other("/ui/login?" + urlencode({"error": str(e.detail), "next": target}))
    not_after = None
    if token.count(".") == 2:  # a JWT: the session ends when the token does
        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
            not_after = float(exp) if exp else None
        except jwt.PyJWTError:
            not_after = None
    return signed_in(request, principal, target, not_after)


@router.get("/login/link")
async def login_link(request: Request, token: str = "") -> Response:
    principal = sessions_of(request).redeem_link(token)
    if principal is None:
        return see_other(
            "/ui/login?" + urlencode({"error": "this sign-in link is used or expired"})
        )
    return signed_in(request, principal, "/ui", None)


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = session_of(request)
    try:
        await form_of(request, session)
    except ApiError as e:
        return await error_page(request, session, e)
    resp = see_other("/ui/login")
    resp.delete_cookie(COOKIE, path="/ui")
    return resp


# ---------------------------------------------------------------- runs list
def run_filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    keys = ("status", "definition_id", "owner", "trigger", "parent", "since")
    return {k: (q.get(k) or None) for k in keys}


SINCE = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def parse_since(since: str | None) -> datetime | None:
    """`since`: one of SINCE's windows, or an ISO 8601 time."""
    if not since:
        return None
    if since in SINCE:
        return datetime.now(UTC) - timedelta(seconds=SINCE[since])
    try:
        return datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(f"since must be one of {', '.join(SINCE)} or an ISO 8601 time") from None


@router.get("")
async def runs_list(
    request: Request, token: str | None = None, rows: bool = False, size: int = PAGE_SIZE
) -> Response:
    session = session_of(request)
    filters = run_filters(request)
    since = filters.pop("since", None)
    try:
        after = parse_since(since)
        items, next_token = await adapters.list_runs(
            request, session.principal, filters, min(max(size, 1), 500), token, after
        )
    except ValueError as e:  # a page token or a time this page did not give out
        return await error_page(request, session, FormProblem(str(e), []))
    except HANDLED as e:
        return await error_page(request, session, e)
    if since:
        filters["since"] = since
    keep: dict[str, Any] = {k: v for k, v in filters.items() if v}
    if size != PAGE_SIZE:
        keep["size"] = size
    next_url = "/ui?" + urlencode({**keep, "token": next_token}) if next_token else None
    poll_url = "/ui?" + urlencode({**keep, **({"token": token} if token else {}), "rows": 1})
    ctx: dict[str, Any] = dict(items=items, next_url=next_url, poll_url=poll_url, run_url=run_url)
    if rows:
        return fragment("_run_rows.html", **ctx)
    return await page(
        request,
        session,
        "runs.html",
        filters=filters,
        statuses=STATUSES,
        triggers=TRIGGERS,
        first_page=token is None,
        **ctx,
    )


# ---------------------------------------------------------------- one run
async def run_context(request: Request, who: Principal, run_id: str) -> dict[str, Any]:
    run = await adapters.get_run(request, who, run_id)
    try:
        stored = await adapters.definition(request, who, run.definition_id, run.definition_version)
        definition = stored.definition
    except HANDLED:
        definition = None
    nodes = graph.build(definition, run)
    pending = run.pending_approvals[-1] if run.pending_approvals else None
    # keep refreshing after the end while children are still finishing (a cancel cascades)
    live = not run.status.terminal or any(not c.status.terminal for c in run.children)
    return dict(
        run=run,
        may_change=await adapters.may_change(request, who, run),
        nodes=nodes,
        run_url=run_url,
        pending=pending,
        live=live,
        terminal=run.status.terminal,
        priorities=PRIORITIES,
    )


@router.get("/runs/{run_id:path}")
async def run_page(request: Request, run_id: str) -> Response:
    session = session_of(request)
    try:
        ctx = await run_context(request, session.principal, run_id)
        thread = await adapters.comments(request, session.principal, run_id)
        people = await adapters.people(request, ctx["run"])
    except HANDLED as e:
        return await error_page(request, session, e)
    compare = request.query_params.get("compare")
    pending = ctx["pending"]
    may_decide = bool(pending) and adapters.may_decide(session.principal, pending)
    people = sorted({*people, session.principal.identity, *adapters.known_identities(request)})
    return await page(
        request,
        session,
        "run.html",
        thread=thread,
        people=people,
        compare=compare,
        may_decide=may_decide,
        **ctx,
    )


@router.get("/run/live")
async def run_live(request: Request, id: str) -> Response:
    """The parts of a run page that change (header, graph, plan, steps), for polling."""
    session = session_of(request)
    try:
        ctx = await run_context(request, session.principal, id)
    except HANDLED as e:
        status, detail, _ = problem(e)
        return HTMLResponse(f"<p role='alert'>{markupsafe.escape(detail)}</p>", status)
    live = fragment("_run_live.html", who=session.principal, csrf=session.csrf, **ctx)
    if not ctx["terminal"]:
        return live
    # the run has ended: swap the action forms too (retry and rating replace cancel)
    actions = env.get_template("_run_actions.html").render(
        who=session.principal, csrf=session.csrf, oob=True, **ctx
    )
    return HTMLResponse(bytes(live.body).decode() + actions)


@router.get("/run/events")
async def run_events(request: Request, id: str, after: int | None = None) -> Response:
    """The run's events: SSE (resumes after `Last-Event-ID` or `?after=`), or with
    `?poll=1` a JSON page, the fallback when a stream cannot be held open."""
    session = session_of(request)
    try:
        adapters.require_read(session.principal)
        runs = await adapters.runs_of(request, session.principal)
        await runs.describe(id)
        start, start_relay = resume_point(after, request.headers.get("last-event-id"))
        s = adapters.settings_of(request)
        if request.query_params.get("poll"):
            page_ = await json_page(runs, id, start, TypeFilter([]), 500, s.events_query_timeout_s)
            return Response(json.dumps(page_, default=str), media_type="application/json")
        hub = await adapters.event_hub(request)
    except HANDLED as e:
        status, detail, _ = problem(e)
        return Response(json.dumps({"detail": detail}), status, media_type="application/json")
    return StreamingResponse(
        stream(hub, id, start, TypeFilter([]), s.events_keepalive_s, start_relay),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/run/cancel")
async def run_cancel(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        await adapters.cancel_run(request, s.principal, field(f, "run_id"), field(f, "reason"))
        return run_url(field(f, "run_id"))

    return await action(request, work)


@router.post("/run/retry")
async def run_retry(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        raw = field(f, "input")
        try:
            new_input = json.loads(raw) if raw else None
        except json.JSONDecodeError as e:
            raise FormProblem(f"input is not JSON: {e}", [{"field": "input", "message": str(e)}])
        if new_input is not None and not isinstance(new_input, dict):
            raise FormProblem("input must be a JSON object", [{"field": "input"}])
        state = await adapters.retry_run(request, s.principal, field(f, "run_id"), new_input)
        return run_url(state.run_id)

    return await action(request, work)


@router.post("/run/priority")
async def run_priority(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        try:
            prio = Priority(field(f, "priority"))
        except ValueError:
            raise FormProblem(f"unknown priority {field(f, 'priority')!r}", []) from None
        await adapters.set_priority(request, s.principal, field(f, "run_id"), prio)
        return run_url(field(f, "run_id"))

    return await action(request, work)


@router.post("/run/message")
async def run_message(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        mode, text = field(f, "mode", "steer"), field(f, "message")
        if mode not in ("steer", "collect", "followup"):
            raise FormProblem(f"unknown mode {mode!r}", [{"field": "mode"}])
        if not text:
            raise FormProblem("the message is empty", [{"field": "message"}])
        await adapters.send_message(request, s.principal, field(f, "run_id"), mode, text)
        return run_url(field(f, "run_id"))

    return await action(request, work)


@router.post("/run/comment")
async def run_comment(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        run_id = field(f, "run_id")
        await adapters.add_comment(
            request,
            s.principal,
            run_id,
            field(f, "kind", "comment"),
            field(f, "body"),
            field(f, "to") or None,
        )
        return run_url(run_id) + "#thread"

    return await action(request, work)


@router.post("/run/rate")
async def run_rate(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        run_id = field(f, "run_id")
        await adapters.rate(request, s.principal, run_id, field(f, "score"), field(f, "comment"))
        return run_url(run_id)

    return await action(request, work)


@router.get("/compare")
async def compare(request: Request, a: str, b: str) -> Response:
    session = session_of(request)
    try:
        adapters.require_read(session.principal)
        svc = await adapters.insights(request, session.principal)
        result = await svc.compare(a, b)
    except HANDLED as e:
        return await error_page(request, session, e)
    return await page(request, session, "compare.html", cmp=result, a=a, b=b, run_url=run_url)


# ---------------------------------------------------------------- approvals
@router.get("/approvals")
async def approvals(request: Request) -> Response:
    session = session_of(request)
    try:
        pending = await adapters.pending_approvals(request, session.principal)
    except HANDLED as e:
        return await error_page(request, session, e)
    # visibility lags a decision: each run's own state says whether it still waits
    runs = await asyncio.gather(*(fresh_run(request, session.principal, a.run_id)
                                  for a in pending.items))  # fmt: skip
    items, context, now, owners = [], {}, {}, {}
    for a, run in zip(pending.items, runs, strict=True):
        if run is None or not run.pending_approvals:
            continue
        items.append(a)
        owners[a.run_id] = (run.owner, run.team)
        context[a.run_id] = earlier_outputs(run)
        now[a.run_id] = run.pending_approvals[-1]
    return await page(
        request,
        session,
        "approvals.html",
        items=items,
        left=time_left,
        context=context,
        pending=now,
        owners=owners,
        run_url=run_url,
        may_decide=lambda run_id: adapters.may_decide(session.principal, now[run_id]),
    )


def clip(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
    return text if len(text) <= limit else text[:limit] + " [...]"


async def fresh_run(request: Request, who: Principal, run_id: str) -> RunState | None:
    try:
        return await adapters.get_run(request, who, run_id)
    except HANDLED:
        return None


def earlier_outputs(run: RunState) -> list[tuple[str, str]]:
    """The outputs of the run's finished steps: the context an approver decides on."""
    return [
        (s.label or s.id, clip(s.output))
        for s in run.steps
        if s.status.value == "completed" and s.output is not None
    ]


def time_left(deadline: Any) -> str:
    if isinstance(deadline, str):
        deadline = datetime.fromisoformat(deadline)
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    secs = int((deadline - datetime.now(UTC)).total_seconds())
    if secs <= 0:
        return "time is up"
    h, rem = divmod(secs, 3600)
    return f"{h} h {rem // 60} min left" if h else f"{rem // 60} min {rem % 60} s left"


@router.get("/approvals/count")
async def approvals_count(request: Request) -> Response:
    """The navigation's badge, refreshed in place."""
    session = session_of(request)
    count = await nav_count(request, session.principal)
    if count is None:
        return HTMLResponse("")
    return fragment("_count.html", approvals_count=count)


@router.post("/approvals/decide")
async def approvals_decide(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        decision = field(f, "decision")
        if decision not in ("approve", "reject"):
            raise FormProblem("decision must be approve or reject", [{"field": "decision"}])
        await adapters.decide(
            request, s.principal, field(f, "run_id"), decision, field(f, "comment") or None
        )
        return field(f, "back") if field(f, "back").startswith("/ui") else "/ui/approvals"

    return await action(request, work)


# ---------------------------------------------------------------- definitions
@router.get("/definitions")
async def definitions(request: Request) -> Response:
    session = session_of(request)
    try:
        items = await adapters.definitions(request, session.principal)
    except HANDLED as e:
        return await error_page(request, session, e)
    return await page(request, session, "definitions.html", items=items)


@router.get("/definitions/{definition_id}")
async def definition(request: Request, definition_id: str, version: int | None = None) -> Response:
    session = session_of(request)
    try:
        stored = await adapters.definition(request, session.principal, definition_id, version)
        versions = await adapters.versions(request, session.principal, definition_id)
    except HANDLED as e:
        return await error_page(request, session, e)
    return await page(
        request,
        session,
        "definition.html",
        stored=stored,
        versions=versions,
        fields=input_fields(stored.definition),
        priorities=PRIORITIES,
        yaml_lines=adapters.definition_yaml(stored.definition),
    )


@router.post("/definitions/{definition_id}/start")
async def definition_start(request: Request, definition_id: str) -> Response:
    async def work(s: Session, f: FormData) -> str:
        adapters.require_write(s.principal)  # as POST /v1/runs: the scope before the lookup
        stored = await adapters.definition(request, s.principal, definition_id)
        body = StartRunRequest(
            definition_id=definition_id,
            version=stored.version,
            input=parse_inputs(stored.definition, f),
            priority=Priority(field(f, "priority", "normal") or "normal"),
            owner=field(f, "owner") or None,
            team=field(f, "team") or None,
        )
        state = await adapters.start_run(request, s.principal, body)
        return run_url(state.run_id)

    return await action(request, work)


@router.post("/definitions/check")
async def definition_check(request: Request) -> Response:
    """Validate pasted YAML: problems shown on their lines (nothing is saved)."""
    session = session_of(request)
    try:
        form = await form_of(request, session)
    except HANDLED as e:
        return await error_page(request, session, e)
    text = field(form, "yaml")
    lines = adapters.check_yaml(text)
    return await page(
        request,
        session,
        "check.html",
        lines=lines,
        text=text,
        ok=not any(line.problems for line in lines),
    )


# ---------------------------------------------------------------- schedules
@router.get("/schedules")
async def schedules(request: Request) -> Response:
    session = session_of(request)
    try:
        items, enabled = await adapters.schedules(request, session.principal)
    except HANDLED as e:
        return await error_page(request, session, e)
    return await page(
        request,
        session,
        "schedules.html",
        items=items,
        enabled=enabled,
        may_switch=is_admin(session.principal),  # the switch needs tasks:admin, as on the API
    )


@router.post("/schedules/{schedule_id}/{verb}")
async def schedule_verb(request: Request, schedule_id: str, verb: str) -> Response:
    async def work(s: Session, f: FormData) -> str:
        if verb not in ("pause", "unpause", "trigger"):
            raise ApiError(404, f"no schedule action '{verb}'")
        await adapters.schedule_action(request, s.principal, schedule_id, verb)
        return "/ui/schedules"

    return await action(request, work)


@router.post("/scheduling")
async def scheduling(request: Request) -> Response:
    async def work(s: Session, f: FormData) -> str:
        await adapters.set_scheduling(request, s.principal, field(f, "enabled") == "true")
        return "/ui/schedules"

    return await action(request, work)


# ---------------------------------------------------------------- insights
@router.get("/insights")
async def insights(
    request: Request,
    definition_id: str | None = None,
    owner: str | None = None,
    window: str = "7d",
) -> Response:
    session = session_of(request)
    try:
        stats, series = await adapters.stats(
            request, session.principal, definition_id or None, window, owner or None
        )
        health = await adapters.regressions(request, session.principal)
    except HANDLED as e:
        return await error_page(request, session, e)
    return await page(
        request,
        session,
        "insights.html",
        stats=stats,
        charts=charts(series),
        health=health,
        window=window,
        definition_id=definition_id or "",
        owner=owner or "",
    )


# ---------------------------------------------------------------- mounting
def mount(app: FastAPI) -> None:
    """Serve the console under /ui on `app` (the gateway calls this once)."""
    app.state.console_sessions = Sessions(app.state.settings)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(SignInRequired)
    async def _signin(request: Request, _: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
        if request.method != "GET":
            return Response("sign in first", status_code=401)
        return see_other("/ui/login?" + urlencode({"next": target}))
