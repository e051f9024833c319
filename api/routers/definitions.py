"""`/v1/definitions`: save (versioned), read, list, validate, delete.

Bodies are JSON, or YAML with `Content-Type: application/yaml`. Every problem in a
definition is reported at once (422), each naming its step and what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import ValidationError

from api import approval_guard
from api.deps import Reader, SettingsDep, StoreDep, Writer
from api.errors import ApiError, describe_problems, pydantic_problems, unprocessable
from duratask.store.definitions import DefinitionStore, NotFound, StoredVersion
from workflows.definition import TaskDefinition
from workflows.validation import validate

router = APIRouter(prefix="/v1/definitions", tags=["definitions"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


async def parse_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise unprocessable("empty body: send a task definition as JSON or YAML")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        data = yaml.safe_load(raw) if content_type in YAML_TYPES else json.loads(raw)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        kind = "YAML" if content_type in YAML_TYPES else "JSON"
        raise unprocessable(f"the body is not valid {kind}: {e}") from None
    if not isinstance(data, dict):
        raise unprocessable("a definition must be a mapping (an object) at the top level")
    return data


async def check_definition(
    request: Request, store: DefinitionStore, data: dict[str, Any]
) -> TaskDefinition:
    try:
        definition = TaskDefinition.model_validate(data)
    except ValidationError as e:
        problems = pydantic_problems(e)
        raise unprocessable(describe_problems(problems), problems=problems) from None
    others = await _referenced(store, definition)
    found = validate(definition, request.app.state.tool_names, lambda d: others.get(d))
    if found:
        listed = [p.as_dict() for p in found]
        summary = f"{len(found)} problem(s): " + "; ".join(str(p) for p in found)
        raise unprocessable(summary, problems=listed)
    return definition


async def _referenced(store: DefinitionStore, root: TaskDefinition) -> dict[str, TaskDefinition]:
    """Every stored definition reachable from `root` through sub-task references."""
    found: dict[str, TaskDefinition] = {}
    todo = list(root.referenced_tasks())
    while todo:
        ref = todo.pop()
        if ref in found or ref == root.id:
            continue
        d = await store.find(ref)
        if d is not None:
            found[ref] = d
            todo.extend(d.referenced_tasks())
    return found


async def _latest(store: DefinitionStore, definition_id: str) -> TaskDefinition | None:
    """The latest stored version, even of a deleted definition (deleting and re-creating
    must not be a way around the approval guard)."""
    try:
        versions = await store.versions(definition_id)
    except NotFound:
        return None
    return versions[-1].definition if versions else None


def _view(v: StoredVersion) -> dict[str, Any]:
    return v.as_dict()


@router.put(
    "/{definition_id}",
    status_code=status.HTTP_201_CREATED,
    responses={403: {"description": "lacks tasks:write, or weakens an approval step"}},
)
async def put_definition(
    definition_id: str,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    who: Writer,
) -> dict[str, Any]:
    """Create or update a definition; a changed body becomes a new version (201), an
    unchanged one returns the current version (200)."""
    data = await parse_body(request)
    data.setdefault("id", definition_id)
    if data["id"] != definition_id:
        raise unprocessable(
            f"the body's id '{data['id']}' does not match the URL's '{definition_id}'"
        )
    definition = await check_definition(request, store, data)
    approval_guard.check(
        who, await _latest(store, definition_id), definition, settings.approval_min_timeout
    )
    stored, created = await store.put(definition, created_by=who.identity)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _view(stored)


@router.post("/validate")
async def validate_definition(request: Request, store: StoreDep, _: Reader) -> dict[str, Any]:
    data = await parse_body(request)
    definition = await check_definition(request, store, data)
    return {"valid": True, "id": definition.id, "problems": []}


@router.get("")
async def list_definitions(
    store: StoreDep,
    _: Reader,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    items, total = await store.list_latest(limit, offset)
    return {"items": [_view(v) for v in items], "total": total}


@router.get("/{definition_id}")
async def get_definition(definition_id: str, store: StoreDep, _: Reader) -> dict[str, Any]:
    return _view(await store.get(definition_id))


@router.get("/{definition_id}/versions")
async def list_versions(definition_id: str, store: StoreDep, _: Reader) -> dict[str, Any]:
    versions = await store.versions(definition_id)
    return {"items": [_view(v) for v in versions], "total": len(versions)}


@router.get("/{definition_id}/versions/{version}")
async def get_version(
    definition_id: str, version: int, store: StoreDep, _: Reader
) -> dict[str, Any]:
    if version < 1:
        raise ApiError(422, "version numbers start at 1")
    return _view(await store.get(definition_id, version))


@router.delete("/{definition_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_definition(definition_id: str, store: StoreDep, _: Writer) -> Response:
    """Delete a definition; runs already started keep their pinned copy."""
    await store.delete(definition_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
