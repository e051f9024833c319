"""Definitions as one caller sees them: the store, narrowed by the access rule.

A definition is owned by whoever saved its first version (another owner needs
`tasks:admin`) and optionally shared with a team. Its owner, its team and admins see
it, start runs of it, and (with `tasks:write`) publish new versions or delete it;
for everyone else it does not exist (404). Saves and deletes are audited.
"""

from __future__ import annotations

from duratask.access import AccessDenied, Caller, may_see, resolve_owner
from duratask.store.audit import AuditStore
from duratask.store.definitions import DefinitionStore, NotFound, StoredVersion
from workflows.definition import TaskDefinition


class DefinitionService:
    def __init__(self, store: DefinitionStore, principal: Caller) -> None:
        self.store = store
        self.principal = principal
        self.audit = AuditStore(store.engine)

    def _check(self, v: StoredVersion) -> StoredVersion:
        if not may_see(self.principal, v.owner, v.team):
            raise NotFound(f"definition '{v.definition.id}' not found")
        return v

    async def get(self, definition_id: str, version: int | None = None) -> StoredVersion:
        return self._check(await self.store.get(definition_id, version))

    async def find(self, definition_id: str) -> TaskDefinition | None:
        try:
            return (await self.get(definition_id)).definition
        except NotFound:
            return None

    async def list_latest(self, limit: int, offset: int) -> tuple[list[StoredVersion], int]:
        return await self.store.list_latest(limit, offset, visible_to=self.principal)

    async def versions(self, definition_id: str) -> list[StoredVersion]:
        versions = await self.store.versions(definition_id)  # a deleted one's too
        for v in versions[:1]:
            self._check(v)
        return versions

    async def put(
        self, definition: TaskDefinition, owner: str | None = None, team: str | None = None
    ) -> tuple[StoredVersion, bool]:
        """Create (owned by the caller, or `owner` for an admin) or publish a new version
        of a definition the caller may see. Owner and team are set at creation only."""
        current = await self.store.find_row(definition.id)
        if current is not None and not may_see(self.principal, *current):
            raise NotFound(
                f"definition '{definition.id}' not found among those you may see "
                "(its id is taken: choose another)"
            )
        if current is None or owner is not None or team is not None:
            owner, team = resolve_owner(self.principal, owner, team)
        if current is not None and (owner, team) not in ((None, None), current):
            raise AccessDenied(
                f"definition '{definition.id}' exists: its owner and team are kept "
                f"({current[0]}, {current[1] or 'no team'}); delete it to re-create it",
                status=409,
            )
        stored, created = await self.store.put(
            definition, created_by=self.principal.identity, owner=owner, team=team
        )
        if created:
            await self.audit.record(
                self.principal.identity, "definition.put", "definition", definition.id,
                stored.owner, stored.team, version=stored.version,
            )  # fmt: skip
        return stored, created

    async def delete(self, definition_id: str) -> None:
        v = await self.get(definition_id)
        await self.store.delete(definition_id)
        await self.audit.record(
            self.principal.identity, "definition.delete", "definition", definition_id,
            v.owner, v.team, version=v.version,
        )  # fmt: skip
