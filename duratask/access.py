"""Who may see and change which runs, definitions and schedules: the one rule.

Every run, definition and schedule has an owner (the identity that created it) and
optionally a team (one of that identity's groups). A caller sees and acts on what they
own and what belongs to one of their teams; a caller with `tasks:admin` sees all. The
gateway's services (RunService, DefinitionService, ScheduleService) apply this rule,
so every front end built on them (HTTP, console, MCP) inherits it; what a caller may
not see is reported as "not found", never as "forbidden", so existence does not leak.

Identities and team names are compared exactly (as the identity provider spells
them), because Temporal's visibility filters on the `DurataskOwner` / `DurataskTeam`
keywords compare exactly too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from workflows import contracts
from workflows.definition import ParallelStep, Step, SubTaskStep
from workflows.models import DefinitionBundle

ADMIN_SCOPE = "tasks:admin"


class Caller(Protocol):
    """The part of an authenticated principal the access rule reads."""

    @property
    def identity(self) -> str: ...

    @property
    def groups(self) -> frozenset[str]: ...

    def has(self, scope: str) -> bool: ...


@dataclass(frozen=True)
class TrustedCaller:
    """A caller inside the system (the worker's scheduling tools, migrations): sees all.

    Only code that enforces its own rule (e.g. the scheduling tools, which act for the
    run's owner) may use it; front ends always pass the authenticated principal."""

    identity: str = "system"
    groups: frozenset[str] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        return True


SYSTEM = TrustedCaller()


class AccessDenied(Exception):
    """A caller may see a resource but not do what it asked (403), or named an owner or
    team it may not use. `status` is the HTTP status a front end should answer with."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def is_admin(caller: Caller) -> bool:
    return caller.has(ADMIN_SCOPE)


def may_see(caller: Caller, owner: str | None, team: str | None) -> bool:
    """The rule: admin, or the owner, or a member of the team."""
    if is_admin(caller):
        return True
    if owner is not None and owner == caller.identity:
        return True
    return team is not None and team in caller.groups


def resolve_owner(caller: Caller, owner: str | None, team: str | None) -> tuple[str, str | None]:
    """The owner and team a new resource gets: the caller, unless an admin names another
    owner; a team only if the caller is in it (admins may name any team)."""
    owner = (owner or "").strip() or caller.identity
    team = (team or "").strip() or None
    if owner != caller.identity and not is_admin(caller):
        raise AccessDenied(
            f"'{caller.identity}' may not act for owner '{owner}': creating something "
            f"owned by someone else needs the '{ADMIN_SCOPE}' scope"
        )
    if team is not None and team not in caller.groups and not is_admin(caller):
        mine = ", ".join(sorted(caller.groups)) or "none"
        raise AccessDenied(
            f"'{caller.identity}' is not a member of team '{team}' (their groups: {mine})"
        )
    return owner, team


def quote(value: str) -> str:
    """A string literal for a Temporal visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_clause(caller: Caller) -> str | None:
    """The visibility-query condition selecting the runs `caller` may see (None: all)."""
    if is_admin(caller):
        return None
    either = [f"{contracts.SA_OWNER.name} = {quote(caller.identity)}"]
    if caller.groups:
        teams = ", ".join(quote(g) for g in sorted(caller.groups))
        either.append(f"{contracts.SA_TEAM.name} IN ({teams})")
    return "(" + " OR ".join(either) + ")"


def with_visibility(query: str, caller: Caller) -> str:
    """`query` narrowed to what `caller` may see."""
    clause = visibility_clause(caller)
    if clause is None:
        return query
    return f"{query} AND {clause}" if query.strip() else clause


def child_owners(bundle: DefinitionBundle) -> set[str]:
    """The owners `sub_task` steps in `bundle` name for their child runs."""
    found: set[str] = set()

    def walk(steps: list[Step]) -> None:
        for step in steps:
            if isinstance(step, SubTaskStep) and step.owner:
                found.add(step.owner)
            elif isinstance(step, ParallelStep):
                for branch in step.branches:
                    walk(branch.steps or [])

    for d in [bundle.root, *bundle.others.values()]:
        walk(d.definition.steps)
    return found


def check_child_owners(caller: Caller, bundle: DefinitionBundle, owner: str) -> None:
    """A run may give its child runs another owner (`sub_task` step `owner:`) only when
    whoever starts it could start runs in that owner's name (`tasks:admin`)."""
    others = sorted(child_owners(bundle) - {owner})
    if others and not is_admin(caller):
        raise AccessDenied(
            f"definition '{bundle.root.definition.id}' starts child runs owned by "
            f"{', '.join(others)}: starting it as '{owner}' needs the '{ADMIN_SCOPE}' scope"
        )
