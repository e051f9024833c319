"""`/v1/definitions`: save (versioned), read, list, validate, delete.

Bodies are JSON, or YAML with `Content-Type: application/yaml`. Every problem in a
definition is reported at once (422), each naming its step and what is wrong. A caller
sees only their own, their teams' (and, with `tasks:admin`, all) definitions
(api/definitions_service.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import ValidationError

from api import approval_guard
from api.bodies import check_definition_limits, off_loop, parse_document
from api.definitions_service import DefinitionService
from api.deps import DefinitionsDep, Reader, SettingsDep, Writer
from api.errors import (
    COMMON,
    ApiError,
    describe_problems,
    pydantic_problems,
    responses,
    unprocessable,
)
from api.mcp_check import mcp_problems
from api.openapi import DEFINITION_BODY
from api.schemas import MAX_INT
from duratask.access import may_see
from duratask.store.definitions import NotFound, StoredVersion
from workflows.definition import TaskDefinition
from workflows.validation import validate

router = APIRouter(
    prefix="/v1/definitions", tags=["definitions"], responses=responses(*COMMON, 404, 409)
)


async def parse_body(request: Request) -> dict[str, Any]:
    """The body as a mapping, within the limits of api/bodies.py; parsed off the loop."""
    raw = await request.body()
    if not raw.strip():
        raise unprocessable("empty body: send a task definition as JSON or YAML")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    settings = request.app.state.settings
    data = await off_loop(parse_document, raw, content_type, settings)
    if not isinstance(data, dict):
        raise unprocessable("a definition must be a mapping (an object) at the top level")
    check_definition_limits(data, settings)
    return data


def _model(data: dict[str, Any]) -> TaskDefinition:
    try:
        return TaskDefinition.model_validate(data)
    except ValidationError as e:
        problems = pydantic_problems(e)
        raise unprocessable(describe_problems(problems), problems=problems) from None


async def check_definition(
    request: Request, defs: DefinitionService, data: dict[str, Any]
) -> TaskDefinition:
    """The definition, validated; sub-task references resolve only to definitions the
    caller may see (one they may not see is an unknown task, so its content never
    reaches a run they start). Parsing and validation run off the event loop."""
    definition = await off_loop(_model, data)
    others = await _referenced(defs, definition)
    tools = request.app.state.tool_names
    found = await off_loop(validate, definition, tools, lambda d: others.get(d))
    found += await mcp_problems(request.app.state.settings, definition)  # docs/mcp.md
    if found:
        listed = [p.as_dict() for p in found]
        summary = f"{len(found)} problem(s): " + "; ".join(str(p) for p in found)
        raise unprocessable(summary, problems=listed)
    return definition


async def _referenced(defs: DefinitionService, root: TaskDefinition) -> dict[str, TaskDefinition]:
    """Every stored definition reachable from `root` through sub-task references."""
    found: dict[str, TaskDefinition] = {}
    todo = list(root.referenced_tasks())
    while todo:
        ref = todo.pop()
        if ref in found or ref == root.id:
            continue
        d = await defs.find(ref)
        if d is not None:
            found[ref] = d
            todo.extend(d.referenced_tasks())
    return found


async def _latest(defs: DefinitionService, definition_id: str) -> TaskDefinition | None:
    """The latest stored version, even of a deleted definition (deleting and re-creating
    must not be a way around the approval guard). None when there is none, or when the
    caller may not see the live definition (publishing then answers 404, and the guard
    must not tell what a hidden definition contains)."""
    live = await defs.store.find_row(definition_id)
    if live is not None and not may_see(defs.principal, *live):
        return None
    try:
        versions = await defs.store.versions(definition_id)
    except NotFound:
        return None
    return versions[-1].definition if versions else None


def _view(v: StoredVersion) -> dict[str, Any]:
    return v.as_dict()


@router.put(
    "/{definition_id}",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=DEFINITION_BODY,
    responses={200: {"description": "Unchanged: the current version"}},
)
async def put_definition(
    definition_id: str,
    request: Request,
    response: Response,
    defs: DefinitionsDep,
    settings: SettingsDep,
    who: Writer,
    owner: str | None = Query(None, description="at creation; another identity needs tasks:admin"),
    team: str | None = Query(None, description="at creation: one of the caller's groups"),
) -> dict[str, Any]:
    """Create or update a definition; a changed body becomes a new version (201), an
    unchanged one returns the current version (200). A new definition is owned by the
    caller and shared with `team` if given; only those who may see a definition publish
    new versions of it."""
    data = await parse_body(request)
    data.setdefault("id", definition_id)
    if data["id"] != definition_id:
        raise unprocessable(
            f"the body's id '{data['id']}' does not match the URL's '{definition_id}'"
        )
    definition = await check_definition(request, defs, data)
    approval_guard.check(
        who, await _latest(defs, definition_id), definition, settings.approval_min_timeout
    )
    stored, created = await defs.put(definition, owner, team)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _view(stored)


@router.post("/validate", openapi_extra=DEFINITION_BODY)
async def validate_definition(request: Request, defs: DefinitionsDep, _: Reader) -> dict[str, Any]:
    data = await parse_body(request)
    definition = await check_definition(request, defs, data)
    return {"valid": True, "id": definition.id, "problems": []}


@router.get("")
async def list_definitions(
    defs: DefinitionsDep,
    _: Reader,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    items, total = await defs.list_latest(limit, offset)
    return {"items": [_view(v) for v in items], "total": total}


@router.get("/{definition_id}")
async def get_definition(definition_id: str, defs: DefinitionsDep, _: Reader) -> dict[str, Any]:
    return _view(await defs.get(definition_id))


@router.get("/{definition_id}/versions")
async def list_versions(definition_id: str, defs: DefinitionsDep, _: Reader) -> dict[str, Any]:
    versions = await defs.versions(definition_id)
    return {"items": [_view(v) for v in versions], "total": len(versions)}


@router.get("/{definition_id}/versions/{version}")
async def get_version(
    definition_id: str,
    defs: DefinitionsDep,
    _: Reader,
    version: int = Path(ge=1, le=MAX_INT, description="Version numbers start at 1"),
) -> dict[str, Any]:
    return _view(await defs.get(definition_id, version))


@router.post(
    "/{definition_id}/versions/{version}/promote",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "that version already is the latest content"}},
)
async def promote_version(
    definition_id: str,
    version: int,
    request: Request,
    response: Response,
    defs: DefinitionsDep,
    _: Writer,
) -> dict[str, Any]:
    """Make an old version the latest: its content becomes a new version (201), so new
    runs (and schedules that follow the latest) use it; history stays append-only. If
    it already is the latest content, that version is returned (200)."""
    if version < 1:
        raise ApiError(422, "version numbers start at 1")
    old = await defs.get(definition_id, version)
    data = old.definition.model_dump(mode="json", by_alias=True, exclude_unset=True)
    definition = await check_definition(request, defs, data)  # still valid today?
    stored, created = await defs.put(definition)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _view(stored)


@router.delete("/{definition_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_definition(definition_id: str, defs: DefinitionsDep, _: Writer) -> Response:
    """Delete a definition; runs already started keep their pinned copy."""
    await defs.delete(definition_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
