"""`GET /v1/audit`: who did what, and when (duratask/store/audit.py).

Admins read every entry; everyone else the entries about their own and their teams'
runs, definitions and schedules, and their own acts. Newest first, paged by a cursor.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.deps import Reader
from api.errors import COMMON, responses, unprocessable
from duratask.store.audit import MAX_PAGE, AuditEntry, AuditStore

router = APIRouter(tags=["audit"], responses=responses(*COMMON))


def get_audit(request: Request) -> AuditStore:
    state = request.app.state
    store: AuditStore | None = getattr(state, "audit_store", None)
    if store is None:
        store = state.audit_store = AuditStore(state.engine)
    return store


Audit = Annotated[AuditStore, Depends(get_audit)]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_page_token: str | None = None


@router.get("/v1/audit")
async def list_audit(
    audit: Audit,
    who: Reader,
    kind: Literal["run", "definition", "schedule", "scheduling"] | None = None,
    resource_id: str | None = Query(None, max_length=512, description="one run, definition..."),
    actor: str | None = Query(None, max_length=255, description="only this identity's acts"),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    page_token: str | None = None,
) -> AuditPage:
    """Audit entries you may see, newest first."""
    before = None
    if page_token:
        if not page_token.isdigit() or len(page_token) > 18:
            raise unprocessable(f"page_token {page_token!r} is not a token this endpoint gave out")
        before = int(page_token)
    items, nxt = await audit.list(who, limit, before, kind, resource_id, actor)
    return AuditPage(items=items, next_page_token=str(nxt) if nxt is not None else None)
