"""The access rule (duratask/access.py): who sees what, who may own what, and the
visibility filter Temporal applies to run lists."""

from __future__ import annotations

import pytest

from api.auth import Principal
from duratask.access import (
    SYSTEM,
    AccessDenied,
    may_see,
    resolve_owner,
    visibility_clause,
    with_visibility,
)

ANN = Principal("ann", frozenset({"tasks:read", "tasks:write"}), frozenset({"blue"}))
BOB = Principal("bob", frozenset({"tasks:read", "tasks:write"}))
ROOT = Principal("root", frozenset({"tasks:read", "tasks:admin"}))


def test_owner_team_and_admin_see_the_rest_do_not() -> None:
    assert may_see(ANN, "ann", None)
    assert may_see(ANN, "carl", "blue")  # a team's resource
    assert not may_see(BOB, "ann", "blue")
    assert not may_see(BOB, None, None)  # ownerless (older than owners): admins only
    assert may_see(ROOT, "ann", None) and may_see(ROOT, None, None)
    assert may_see(SYSTEM, "anyone", None)
    assert not may_see(BOB, "Bob", None)  # identities compare exactly, like visibility does


def test_owner_is_the_caller_unless_an_admin_names_another() -> None:
    assert resolve_owner(ANN, None, None) == ("ann", None)
    assert resolve_owner(ANN, "ann", "blue") == ("ann", "blue")
    assert resolve_owner(ROOT, "bob", "red") == ("bob", "red")
    with pytest.raises(AccessDenied, match="tasks:admin") as e:
        resolve_owner(ANN, "bob", None)
    assert e.value.status == 403
    with pytest.raises(AccessDenied, match=r"not a member of team 'red'.*blue"):
        resolve_owner(ANN, None, "red")


def test_visibility_clause_is_quoted_and_absent_for_admins() -> None:
    assert visibility_clause(ROOT) is None
    assert with_visibility("WorkflowType = 'X'", ROOT) == "WorkflowType = 'X'"
    assert visibility_clause(BOB) == "(DurataskOwner = 'bob')"
    evil = Principal("o'neil", frozenset(), frozenset({"b'lue", "a"}))
    assert visibility_clause(evil) == (
        "(DurataskOwner = 'o\\'neil' OR DurataskTeam IN ('a', 'b\\'lue'))"
    )
    assert with_visibility("A = 1", ANN).startswith("A = 1 AND (DurataskOwner = 'ann'")


def test_child_runs_owned_by_someone_else_need_admin() -> None:
    """A `sub_task` step's `owner` would start a run in another's name."""
    from duratask.access import check_child_owners
    from tests.helpers import definition, run_input

    child = definition([{"id": "a", "action": "llm_call", "prompt": "x"}], id="child")
    parent = definition(
        [{"id": "p", "action": "parallel", "branches": [{"steps": [
            {"id": "s", "action": "sub_task", "task": "child", "owner": "bob"}]}]}],
        id="parent",
    )  # fmt: skip
    bundle = run_input(parent, others=[child]).bundle
    assert bundle is not None
    with pytest.raises(AccessDenied, match=r"owned by bob.*tasks:admin"):
        check_child_owners(ANN, bundle, "ann")
    check_child_owners(BOB, bundle, "bob")  # his own name: fine
    check_child_owners(ROOT, bundle, "ann")
