"""Approval proofs and the approval guard, without a server: what is signed, what a
tampered decision looks like, and which definition changes weaken a gate."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from api.approval_guard import weakenings
from cli import devstack
from workflows import proofs
from workflows.definition import TaskDefinition
from workflows.models import ApprovalDecision

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def keys() -> object:
    before = proofs.installed_keys()
    proofs.install_keys([b"new-key", b"old-key"])
    yield
    proofs.install_keys(before)


def signed(key: bytes = b"new-key", **kw: object) -> ApprovalDecision:
    plain = ApprovalDecision.model_validate({"decision": "approve", "approver": "ann", **kw})
    return proofs.sign(key, "run-1", plain, step_id="", nonce="n1", issued_at=NOW)


def check(d: ApprovalDecision, **kw: object) -> str | None:
    args: dict[str, object] = {"run_id": "run-1", "step_id": "review",
                               "requested_at": NOW, "now": NOW} | kw  # fmt: skip
    return proofs.check(d, **args)  # type: ignore[arg-type]


def test_a_signed_decision_verifies_with_the_current_and_previous_keys(keys: object) -> None:
    assert check(signed()) is None
    assert check(signed(key=b"old-key")) is None  # rotation: old signatures still verify
    assert "does not match" in str(check(signed(key=b"someone-elses")))


@pytest.mark.parametrize(
    "field,value",
    [("approver", "mallory"), ("decision", "reject"), ("groups", ["admins"]),
     ("comment", "changed")],
)  # fmt: skip
def test_every_signed_field_is_covered(keys: object, field: str, value: object) -> None:
    assert "does not match" in str(check(signed().model_copy(update={field: value})))


def test_a_proof_is_bound_to_its_run_step_time_and_nonce(keys: object) -> None:
    d = signed()
    assert "does not match" in str(check(d, run_id="run-2"))
    assert "expired" in str(check(d, now=NOW + timedelta(hours=1)))
    assert "before this approval" in str(check(d, requested_at=NOW + timedelta(hours=1)))
    assert "already used" in str(check(d, seen_nonces=["n1"]))
    other = proofs.sign(b"new-key", "run-1", d, step_id="deploy", nonce="n2", issued_at=NOW)
    assert "step 'deploy'" in str(check(other))
    assert "no proof" in str(check(ApprovalDecision(decision="approve", approver="ann")))


def test_no_key_installed_refuses_every_proof() -> None:
    before = proofs.installed_keys()
    proofs.install_keys([])
    try:
        assert "no approval key" in str(check(signed()))
    finally:
        proofs.install_keys(before)


def gate(**step: object) -> TaskDefinition:
    review = {"id": "review", "action": "approval", "approvers": ["ann", "group:ops"],
              "min_approvals": 1, **step}  # fmt: skip
    return TaskDefinition.model_validate({"id": "d", "steps": [review]})


def test_weakenings_found_and_strengthenings_not() -> None:
    base = gate(timeout="24h")
    assert weakenings(base, gate(timeout="48h"), timedelta(hours=1)) == []
    assert weakenings(None, base, None) == []
    reasons = [w.reason for w in weakenings(base, gate(on_timeout="approve"), None)]
    assert reasons == ["on_timeout becomes 'approve'"]
    found = weakenings(base, gate(timeout="0s"), timedelta(minutes=5))
    assert len(found) == 1 and "floor" in found[0].reason
    nested = TaskDefinition.model_validate({"id": "d", "steps": [{
        "id": "par", "action": "parallel",
        "branches": [{"steps": [{"id": "ok", "action": "approval", "approvers": ["ann"]}]}],
    }]})  # fmt: skip
    emptied = TaskDefinition.model_validate({"id": "d", "steps": [{
        "id": "par", "action": "parallel",
        "branches": [{"steps": [{"id": "ok", "action": "notify", "message": "m"}]}],
    }]})  # fmt: skip
    found = weakenings(nested, emptied, None)
    assert [(w.step_id, w.approvers) for w in found] == [("par[0].ok", ("ann",))]


def test_dev_approval_key_is_created_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devstack, "STATE_DIR", tmp_path / ".duratask")
    key = devstack.dev_approval_key()
    path = tmp_path / ".duratask" / "approval-key"
    assert len(key) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert devstack.dev_approval_key() == key  # stable across restarts


def test_redact_masks_configured_secrets_keys_and_bearer_tokens() -> None:
    from activities.llm.errors import redact, secret_values
    from duratask.settings import OpenAISettings, Settings

    s = Settings(_env_file=None, openai=OpenAISettings(api_key=SecretStr("plain-k3y-no-prefix")))  # type: ignore[call-arg]
    text = ("bad key plain-k3y-no-prefix; also sk-ant-api03-abcdef, header "
            "'Authorization: Bearer eyJhbGciOi.x.y' and api_key=\"hunter22\"")  # fmt: skip
    out = redact(text, secret_values(s))
    for leaked in ("plain-k3y-no-prefix", "sk-ant-api03-abcdef", "eyJhbGciOi", "hunter22"):
        assert leaked not in out
    assert out.count("[redacted]") == 4
    assert redact("max_tokens: too large") == "max_tokens: too large"


async def test_decide_needs_the_scope_and_a_key_before_it_reaches_the_run() -> None:
    from typing import cast

    from temporalio.client import Client

    from api.auth import Principal
    from duratask.approvals import decide
    from duratask.settings import Settings

    no_key = Settings(_env_file=None)  # type: ignore[call-arg]
    unused = cast(Client, None)  # neither answer needs Temporal
    reader = Principal("ann", frozenset({"tasks:read"}))
    out = await decide(unused, no_key, "run-1", None, reader, "approve")
    assert out.status == 403 and "tasks:approve" in out.detail and not out.counted
    approver = Principal("ann", frozenset({"tasks:approve"}))
    out = await decide(unused, no_key, "run-1", None, approver, "approve")
    assert out.status == 503 and "DURATASK_APPROVAL_KEY" in out.detail


# ---------------------------------------------------------------- approval edits


def test_a_decision_without_an_edit_encodes_as_before_edits_existed() -> None:
    """Old proofs still verify: no edit adds nothing to the signed bytes."""
    args = ("run-1", "review", "approve", "ann", ["b", "a"], "ok", "n1", NOW.isoformat())
    before = (
        '{"approver":"ann","comment":"ok","decision":"approve","groups":["a","b"],'
        '"issued_at":"2026-11-30T12:00:00+00:00","nonce":"n1","run_id":"run-1",'
        '"step_id":"review","v":1}'
    )
    assert proofs.canonical(*args).decode() == before
    assert proofs.canonical(*args, None).decode() == before
    assert b"output_sha256" in proofs.canonical(*args, "edited")


def test_an_edit_is_covered_by_the_proof(keys: object) -> None:
    d = signed(output={"text": "fixed", "n": 1.5})
    assert check(d) is None
    # the same value decoded with another key order still verifies (canonical JSON)
    assert check(d.model_copy(update={"output": {"n": 1.5, "text": "fixed"}})) is None
    for changed in ({"text": "other", "n": 1.5}, "fixed", None):
        assert "does not match" in str(check(d.model_copy(update={"output": changed})))
    # an edit added to a decision signed without one
    assert "does not match" in str(check(signed().model_copy(update={"output": "x"})))
    bad = signed().model_copy(update={"output": float("nan")})
    assert "not plain JSON" in str(check(bad))


def test_a_budget_raise_proof_is_its_own_kind(keys: object) -> None:
    from workflows.models import BudgetRaise

    plain = BudgetRaise(max_tokens=100, by="ann", comment="ok")
    good = proofs.sign_raise(b"new-key", "run-1", plain, nonce="n1", issued_at=NOW)
    assert proofs.check_raise(good, "run-1", NOW) is None
    assert "no proof" in str(proofs.check_raise(plain, "run-1", NOW))
    assert "does not match" in str(proofs.check_raise(good, "run-2", NOW))
    for field, value in (("by", "mallory"), ("max_tokens", 10**6), ("max_cost_usd", 9.0),
                         ("comment", "changed")):  # fmt: skip
        tampered = good.model_copy(update={field: value})
        assert "does not match" in str(proofs.check_raise(tampered, "run-1", NOW)), field
    # scopes are not signed: claiming them changes nothing, lacking them neither
    assert proofs.check_raise(good.model_copy(update={"scopes": []}), "run-1", NOW) is None
    assert "expired" in str(proofs.check_raise(good, "run-1", NOW + timedelta(hours=1)))
    assert "already used" in str(proofs.check_raise(good, "run-1", NOW, ["n1"]))
    # an approval's proof does not pass for a raise
    approval = signed()
    assert approval.proof is not None
    forged = plain.model_copy(update={"proof": approval.proof})
    assert "does not match" in str(proofs.check_raise(forged, "run-1", NOW))


def test_edit_targets_and_their_checks() -> None:
    from workflows.approvals import edit_problems
    from workflows.validation import validate

    d = TaskDefinition.model_validate({"id": "d", "steps": [
        {"id": "ask", "action": "input", "schema": {"type": "object",
         "properties": {"n": {"type": "integer"}}}},
        {"id": "draft", "action": "llm_call", "prompt": "p"},
        {"id": "route", "action": "conditional", "condition": "true", "then": "review"},
        {"id": "review", "action": "approval", "approvers": ["ann"]},
        {"id": "again", "action": "approval", "approvers": ["ann"]},
        {"id": "named", "action": "approval", "approvers": ["ann"], "edits": "ask"},
        {"id": "off", "action": "approval", "approvers": ["ann"], "edits": False},
    ]})  # fmt: skip
    targets = [s.edit_target(d.steps) for s in d.steps if s.action == "approval"]  # type: ignore[union-attr]
    assert targets == ["draft", None, "ask", None]  # over the conditional; none after an approval
    assert validate(d) == []
    assert edit_problems("text", d.step("draft")) == []
    assert edit_problems({"a": 1}, d.step("draft"))[0]["field"] == "output"
    assert [p["field"] for p in edit_problems({"n": "x"}, d.step("ask"))] == ["output.n"]
    assert edit_problems({"n": "x"}, d.step("route")) == []  # no schema: any JSON
    assert "at most" in edit_problems("x" * 70_000, None)[0]["message"]
    deep: object = "x"
    for _ in range(5000):  # deeper than Python's recursion limit: refused, not a crash
        deep = [deep]
    assert "deeper than 64" in edit_problems(deep, None)[0]["message"]
    assert edit_problems({"a": [[[1]]]}, None) == []
    bad = TaskDefinition.model_validate({"id": "d", "steps": [
        {"id": "route", "action": "conditional", "condition": "true", "then": "a"},
        {"id": "a", "action": "approval", "approvers": ["ann"], "edits": "route"},
        {"id": "b", "action": "approval", "approvers": ["ann"], "edits": "nope"},
        {"id": "c", "action": "approval", "approvers": ["ann"], "edits": "c"},
    ]})  # fmt: skip
    found = {(p.step_id, p.field): p.message for p in validate(bad)}
    assert "conditional step" in found[("a", "edits")]
    assert "unknown step 'nope'" in found[("b", "edits")]
    assert "approval step" in found[("c", "edits")]


def test_allowing_edits_is_a_weakening() -> None:
    assert weakenings(gate(edits=False), gate(), None)[0].reason.startswith("edits become")
    assert weakenings(gate(edits=False), gate(edits=False), None) == []
    assert weakenings(gate(), gate(edits=False), None) == []  # stricter
