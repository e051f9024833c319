"""Definitions in the store: put (versioned), get, list, delete, and bundling.

A save whose content equals the latest version creates nothing new; any change
makes version n+1, immutable from then on. `bundle()` resolves a definition and
every definition it reaches through sub-tasks into the pinned `DefinitionBundle`
a run starts with, so a later edit or delete never changes a running run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.access import Caller, is_admin
from duratask.store.tables import DefinitionRow, DefinitionVersionRow
from workflows.definition import ParallelStep, Step, SubTaskStep, TaskDefinition
from workflows.models import BundledDefinition, DefinitionBundle


@dataclass
class StoredVersion:
    definition: TaskDefinition
    version: int
    created_at: datetime
    created_by: str | None
    latest_version: int
    owner: str | None = None
    team: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.definition.id,
            "version": self.version,
            "latest_version": self.latest_version,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "owner": self.owner,
            "team": self.team,
            "definition": self.definition.model_dump(mode="json", by_alias=True, exclude_none=True),
        }


class NotFound(LookupError):
    pass


def content_hash(definition: TaskDefinition) -> str:
    body = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class DefinitionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def put(
        self,
        definition: TaskDefinition,
        created_by: str | None = None,
        owner: str | None = None,
        team: str | None = None,
    ) -> tuple[StoredVersion, bool]:
        """Save; returns the version and whether it is new. `owner` and `team` are set
        when the definition is created (or re-created after a delete), kept otherwise."""
        digest = content_hash(definition)
        now = datetime.now(UTC)
        body = json.dumps(definition.model_dump(mode="json", by_alias=True, exclude_none=True))
        async with self.sessions.begin() as s:
            row = await s.get(DefinitionRow, definition.id, with_for_update=True)
            if row is not None and row.deleted_at is None:
                latest = await s.get(DefinitionVersionRow, (definition.id, row.latest_version))
                if latest is not None and latest.content_hash == digest:
                    return self._stored(latest, row.latest_version, row), False
            if row is None:
                row = DefinitionRow(id=definition.id, latest_version=0, created_at=now,
                                    updated_at=now)  # fmt: skip
                s.add(row)
            if row.deleted_at is not None or row.latest_version == 0:
                row.owner, row.team = owner or created_by, team
            version = row.latest_version + 1
            row.latest_version = version
            row.updated_at = now
            row.deleted_at = None
            vrow = DefinitionVersionRow(
                definition_id=definition.id,
                version=version,
                body=body,
                content_hash=digest,
                created_at=now,
                created_by=created_by,
            )
            s.add(vrow)
        return self._stored(vrow, version, row), True

    async def get(self, definition_id: str, version: int | None = None) -> StoredVersion:
        async with self.sessions() as s:
            row = await s.get(DefinitionRow, definition_id)
            if row is None or (row.deleted_at is not None and version is None):
                raise NotFound(f"definition '{definition_id}' not found")
            vrow = await s.get(DefinitionVersionRow, (definition_id, version or row.latest_version))
            if vrow is None:
                raise NotFound(f"definition '{definition_id}' has no version {version}")
            return self._stored(vrow, row.latest_version, row)

    async def find_row(self, definition_id: str) -> tuple[str | None, str | None] | None:
        """The owner and team of a live definition; None if there is none."""
        async with self.sessions() as s:
            row = await s.get(DefinitionRow, definition_id)
            if row is None or row.deleted_at is not None:
                return None
            return row.owner, row.team

    async def find(self, definition_id: str) -> TaskDefinition | None:
        try:
            return (await self.get(definition_id)).definition
        except NotFound:
            return None

    async def list_latest(
        self, limit: int = 100, offset: int = 0, visible_to: Caller | None = None
    ) -> tuple[list[StoredVersion], int]:
        """The latest version of each live definition (of those `visible_to` may see)."""
        async with self.sessions() as s:
            live: Any = DefinitionRow.deleted_at.is_(None)
            if visible_to is not None and not is_admin(visible_to):
                mine = [DefinitionRow.owner == visible_to.identity]
                if visible_to.groups:
                    mine.append(DefinitionRow.team.in_(sorted(visible_to.groups)))
                live = live & or_(*mine)
            total = (await s.execute(select(func.count()).where(live))).scalar_one()
            rows = (
                await s.execute(
                    select(DefinitionRow, DefinitionVersionRow)
                    .join(
                        DefinitionVersionRow,
                        (DefinitionVersionRow.definition_id == DefinitionRow.id)
                        & (DefinitionVersionRow.version == DefinitionRow.latest_version),
                    )
                    .where(live)
                    .order_by(DefinitionRow.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
            return [self._stored(v, d.latest_version, d) for d, v in rows], total

    async def versions(self, definition_id: str) -> list[StoredVersion]:
        async with self.sessions() as s:
            row = await s.get(DefinitionRow, definition_id)
            if row is None:
                raise NotFound(f"definition '{definition_id}' not found")
            rows = (
                await s.execute(
                    select(DefinitionVersionRow)
                    .where(DefinitionVersionRow.definition_id == definition_id)
                    .order_by(DefinitionVersionRow.version)
                )
            ).scalars()
            return [self._stored(v, row.latest_version, row) for v in rows]

    async def delete(self, definition_id: str) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(DefinitionRow, definition_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"definition '{definition_id}' not found")
            row.deleted_at = datetime.now(UTC)

    async def bundle(
        self, definition_id: str, version: int | None = None, root: StoredVersion | None = None
    ) -> DefinitionBundle:
        """The definition pinned with every sub-task it references; `root` is its stored
        version when the caller has read it already (one read less per run start)."""
        root = root or await self.get(definition_id, version)
        others: dict[str, BundledDefinition] = {}
        todo = _references(root.definition.steps)
        while todo:
            ref_id, ref_version = todo.pop()
            if ref_id in others or ref_id == definition_id:
                continue
            ref = await self.get(ref_id, ref_version)
            others[ref_id] = BundledDefinition(definition=ref.definition, version=ref.version)
            todo.extend(_references(ref.definition.steps))
        return DefinitionBundle(
            root=BundledDefinition(definition=root.definition, version=root.version),
            others=others,
        )

    def _stored(
        self, vrow: DefinitionVersionRow, latest: int, row: DefinitionRow | None = None
    ) -> StoredVersion:
        return StoredVersion(
            owner=row.owner if row is not None else None,
            team=row.team if row is not None else None,
            definition=TaskDefinition.model_validate_json(vrow.body),
            version=vrow.version,
            created_at=_utc(vrow.created_at),
            created_by=vrow.created_by,
            latest_version=latest,
        )


def _references(steps: list[Step]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for s in steps:
        if isinstance(s, SubTaskStep):
            out.append((s.task, s.version))
        elif isinstance(s, ParallelStep):
            for b in s.branches:
                if b.task:
                    out.append((b.task, b.version))
                if b.steps:
                    out.extend(_references(b.steps))
    return out
