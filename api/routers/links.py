"""`/v1/links/{token}`: the decision page of a delivered approval or input request.

The signed link is the credential (duratask/links.py): no bearer token is needed, and
the page acts as the link's recipient only, through the same paths as the gateway's
own routes: `duratask.approvals.decide` for an approval (so the run checks the proof,
the approvers list and distinct votes, and records the vote), the input Update for an
`input` step (the run validates the value). A caller who also sends a bearer token
must be the recipient. GET only shows the request; the POST from its form decides,
once: the link's id is claimed in the store before the decision and kept once the
run counted it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api import link_page
from api.auth import Authenticator, Principal
from api.deps import get_temporal
from api.errors import COMMON, TEMPORAL, ApiError, pydantic_problems, responses
from api.governance_service import GovernanceService
from api.runs_service import RunService
from duratask import approvals, links
from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.links import UsedLinks
from workflows.approvals import normalise
from workflows.models import RunState

log = get_logger(__name__)

ERRORS = {
    403: "the link is not valid (changed, forged), or it belongs to someone else",
    404: "links are off on this gateway (no link key)",
    409: "the request no longer waits (decided, timed out, the run ended), or the run "
    "refused the decision",
    410: "the link has expired or was already used",
    422: "the decision or value is invalid (`problems` names each field)",
    503: "Temporal or every worker is unavailable",
}
router = APIRouter(
    tags=["approvals"],
    responses={
        **responses(*COMMON, *TEMPORAL),
        **{c: {**responses(c)[c], "description": d} for c, d in ERRORS.items()},
    },
)
Token = Annotated[str, Path(max_length=links.MAX_TOKEN_CHARS, description="the signed link")]


class LinkRequest(BaseModel):
    """What a link asks of its recipient (the page's content, as JSON)."""

    kind: Literal["approval", "input"]
    run_id: str
    definition_id: str | None = None
    step_id: str
    recipient: str
    expires_at: str
    prompt: str | None = None
    approvers: list[str] = Field(default_factory=list)
    approvals: int = 0
    min_approvals: int = 1
    deadline: str | None = None
    input_schema: dict[str, Any] | None = Field(default=None, alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class LinkAction(BaseModel):
    """A decision (`approve`/`reject`, optional comment) or, for an input step, `value`."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"] | None = None
    comment: str | None = Field(default=None, max_length=4000)
    value: Any = None


class LinkOutcome(BaseModel):
    """The run counted the decision, or took the value."""

    kind: Literal["approval", "input"]
    run_id: str
    step_id: str
    recipient: str
    decision: str | None = None
    approvals: int | None = None
    min_approvals: int | None = None
    done: bool | None = None
    value: Any = None


FORM = "application/x-www-form-urlencoded"
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LinkAction.model_json_schema()},
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "decision": {"type": "string", "enum": ["approve", "reject"]},
                        "comment": {"type": "string", "maxLength": 4000},
                        "value": {"type": "string", "description": "the value as JSON"},
                    },
                    "additionalProperties": {"type": "string"},
                }
            },
        },
    }
}
HTML_200 = {"text/html": {"schema": {"type": "string"}}}


# ---------------------------------------------------------------- the link's holder
def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _open(request: Request, token: str, authorization: str | None) -> links.Link:
    """The link, if genuine and unexpired, used by its recipient (or an anonymous holder)."""
    try:
        link = links.read(_settings(request), token)
    except links.LinkError as e:
        raise ApiError(e.status, e.detail) from None
    auth: Authenticator = request.app.state.auth
    if authorization and not auth.open:
        if auth.settings.jwt_jwks_url:  # may fetch the key set: off the event loop
            caller = await run_in_threadpool(auth.authenticate, authorization)
        else:
            caller = auth.authenticate(authorization)
        if normalise(caller.identity) != normalise(link.recipient):
            raise ApiError(
                403, f"this link was sent to someone else: '{caller.identity}' cannot use it"
            )
    return link


def _as(link: links.Link, *scopes: str) -> Principal:
    return Principal(link.recipient, frozenset(scopes), frozenset(link.groups))


async def _used(request: Request, link: links.Link) -> UsedLinks:
    store = UsedLinks(request.app.state.engine)
    if await store.used(link.id):
        raise ApiError(410, "this link was already used: each link decides once")
    return store


async def _waiting(request: Request, link: links.Link, who: Principal) -> tuple[RunState, Any]:
    """The run's state and the request the link is for, if it still waits."""
    runs = RunService(await get_temporal(request), request.app.state.store, _settings(request),
                      who)  # fmt: skip
    gone = ApiError(
        409,
        f"step '{link.step_id}' of run '{link.run_id}' no longer waits for this request: "
        "it was decided, timed out, or the run ended",
    )
    try:
        state = await runs.get(link.run_id)
    except ApiError as e:
        if e.status == 404:  # a decided step's approvers no longer see the run
            raise gone from None
        raise
    if link.kind == "approval":
        found = next((p for p in state.pending_approvals if p.get("step_id") == link.step_id
                      and p.get("requested_at") == link.visit), None)  # fmt: skip
    else:
        p = state.pending_inputs.get(link.step_id)
        found = p if p is not None and p.get("requested_at") == link.visit else None
    if found is None:
        raise gone
    return state, found


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=link_page.HEADERS)


# ---------------------------------------------------------------- routes
@router.get(
    "/v1/links/{token}",
    response_model=LinkRequest,
    responses={200: {"content": HTML_200, "description": "the decision page (JSON on request)"}},
)
async def show_link(
    request: Request, token: Token, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """The decision page of a delivered link: the request and a form to decide (HTML; JSON
    with `Accept: application/json`). Fetching it never decides. No bearer token needed:
    the link is the credential; a caller who sends one must be the link's recipient."""
    link = await _open(request, token, authorization)
    await _used(request, link)
    state, pending = await _waiting(request, link, _as(link, "tasks:read", "tasks:approve"))
    info = LinkRequest(
        kind=link.kind,  # type: ignore[arg-type]
        run_id=link.run_id,
        definition_id=state.definition_id,
        step_id=link.step_id,
        recipient=link.recipient,
        expires_at=link.expires_at.isoformat(timespec="minutes"),
        prompt=pending.get("prompt"),
        approvers=list(pending.get("approvers") or []),
        approvals=sum(1 for v in pending.get("votes") or [] if v.get("decision") == "approve"),
        min_approvals=int(pending.get("min_approvals") or 1),
        deadline=pending.get("deadline"),
        schema=pending.get("schema") if link.kind == "input" else None,
    )
    if _wants_json(request):
        return JSONResponse(info.model_dump(mode="json", by_alias=True), headers=link_page.HEADERS)
    title = "Approval requested" if link.kind == "approval" else "Input requested"
    page = link_page.render(
        title=title, definition=info.definition_id, approvers=", ".join(info.approvers),
        **info.model_dump(exclude={"approvers", "expires_at", "deadline"}),
        expires_at=link_page.when(info.expires_at), deadline=link_page.when(info.deadline),
    )  # fmt: skip
    return _html(page)


@router.post(
    "/v1/links/{token}",
    response_model=LinkOutcome,
    responses={200: {"content": HTML_200, "description": "counted (HTML after a form post)"}},
    openapi_extra=BODY,
)
async def use_link(
    request: Request, token: Token, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Decide through a delivered link, as its recipient: `decision` (and `comment`) for
    an approval, the value for an input step (form fields or `value`). The link works
    once: a second use is 410."""
    link = await _open(request, token, authorization)
    used = await _used(request, link)
    action, form = await _read_body(request)
    who = _as(link, "tasks:read", "tasks:approve" if link.kind == "approval" else "tasks:write")
    _, pending = await _waiting(request, link, who)
    value: Any = None
    if link.kind == "approval":
        if action.decision is None:
            raise ApiError(422, "say 'approve' or 'reject' in `decision`",
                           problems=[{"field": "decision", "message": "required"}])  # fmt: skip
    else:
        value = action.value
        if form is not None:
            value, problems = link_page.value_from_form(pending.get("schema") or {}, form)
            if problems:
                raise ApiError(422, "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                               problems=problems)  # fmt: skip
    if not await used.claim(link):
        raise ApiError(410, "this link was already used: each link decides once")
    try:
        outcome = await _decide(request, link, who, action, value)
    except BaseException:
        await used.release(link.id)  # not counted: the same link may try again
        raise
    log.info("link used", run_id=link.run_id, step_id=link.step_id, kind=link.kind,
             by=link.recipient)  # fmt: skip
    if form is None:
        return JSONResponse(outcome.model_dump(mode="json"), headers=link_page.HEADERS)
    if link.kind == "approval":
        done = (f"Your decision ({outcome.decision}) was counted: {outcome.approvals} of "
                f"{outcome.min_approvals} approvals.")  # fmt: skip
    else:
        done = "Your input was accepted. The run goes on with it."
    return _html(link_page.render(title="Thank you", done=done, kind=link.kind))


async def _read_body(request: Request) -> tuple[LinkAction, dict[str, str] | None]:
    """The posted action, and the raw form fields when it came from the page's form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == FORM or kind == "multipart/form-data":
        try:
            raw = await request.form()
        except Exception as e:  # a malformed multipart body
            raise ApiError(422, f"the form could not be read: {e}") from None
        form: dict[str, str] = {}
        for k, v in raw.items():
            if not isinstance(v, str) or len(v) > link_page.MAX_FIELD_CHARS or len(k) > 200:
                raise ApiError(422, f"form field '{k[:200]}' is too long or not text",
                               problems=[{"field": k[:200], "message": "invalid"}])  # fmt: skip
            form[k] = v
        known = {k: form[k] for k in ("decision", "comment") if form.get(k)}
        try:
            return LinkAction.model_validate(known), form
        except ValidationError as e:
            problems = pydantic_problems(e)
            raise ApiError(422, problems[0]["message"], problems=problems) from None
    if kind != "application/json":
        raise ApiError(422, "send the decision as JSON or as the page's form")
    try:
        body = json.loads(await request.body())
        return LinkAction.model_validate(body), None
    except ValueError as e:
        if isinstance(e, ValidationError):
            problems = pydantic_problems(e)
            raise ApiError(422, "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                           problems=problems) from None  # fmt: skip
        raise ApiError(422, f"the body is not valid JSON: {e}") from None


async def _decide(
    request: Request, link: links.Link, who: Principal, action: LinkAction, value: Any
) -> LinkOutcome:
    settings = _settings(request)
    client = await get_temporal(request)
    if link.kind == "approval":
        assert action.decision is not None
        out = await approvals.decide(
            client, settings, link.run_id, link.step_id, who, action.decision, action.comment
        )
        if not out.counted:
            raise ApiError(out.status, out.detail)
        return LinkOutcome(
            kind="approval", run_id=link.run_id, step_id=link.step_id, recipient=link.recipient,
            decision=out.decision, approvals=out.approvals, min_approvals=out.min_approvals,
            done=out.done,
        )  # fmt: skip
    gov = GovernanceService(RunService(client, request.app.state.store, settings, who))
    accepted = await gov.submit_input(link.run_id, link.step_id, value)
    return LinkOutcome(kind="input", run_id=link.run_id, step_id=link.step_id,
                       recipient=link.recipient, value=accepted)  # fmt: skip
