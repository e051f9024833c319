"""Tool policy rules, pure: which rule decides, validation on save and in settings,
what approvers see of the arguments, and which definition changes weaken a rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from api.approval_guard import weakenings
from duratask.run_config import run_config
from duratask.settings import Settings
from workflows.definition import TaskDefinition, ToolPolicy
from workflows.expressions import ExpressionError
from workflows.tool_rules import describe_call, first_match, redact, shown_args
from workflows.validation import validate

NS: dict[str, Any] = {"input": {}, "steps": {}, "run": {"owner": "wes"}}
HOLD = {"tool": "http_request", "action": "approve", "approvers": ["lead"],
        "when": "args.method == 'POST' and not (args.url | startswith('https://in.example/'))"}  # fmt: skip


def rules(*items: dict[str, Any]) -> list[ToolPolicy]:
    return [ToolPolicy.model_validate(i) for i in items]


def defn(*policies: dict[str, Any]) -> TaskDefinition:
    return TaskDefinition.model_validate({
        "id": "t", "tools": ["http_request"], "tool_policies": list(policies),
        "steps": [{"id": "a", "action": "llm_call", "prompt": "hi"}],
    })  # fmt: skip


def test_first_matching_rule_decides_organisation_first() -> None:
    own = rules(HOLD, {"tool": "*", "action": "deny"})
    post_out = {"method": "POST", "url": "https://evil.example/x"}
    post_in = {"method": "POST", "url": "https://in.example/x"}
    found = first_match([], own, "http_request", post_out, NS)
    assert found is not None and found.rule.action == "approve"
    assert found.where == "definition.tool_policies[0]"
    found = first_match([], own, "http_request", post_in, NS)
    assert found is not None and found.where == "definition.tool_policies[1]"  # falls through
    assert first_match([], rules(HOLD), "http_request", post_in, NS) is None  # no rule: allowed
    org = rules({"tool": "http_*", "when": "run.owner == 'wes'", "action": "allow"})
    found = first_match(org, own, "http_request", post_out, NS)
    assert found is not None and found.where == "settings.tool_policies[0]"
    assert first_match(org, [], "notify", {}, NS) is None  # the pattern does not match


def test_a_failing_when_names_its_rule() -> None:
    own = rules({"tool": "http_request", "when": "args.amount > 5", "action": "deny"})
    with pytest.raises(ExpressionError, match=r"definition.tool_policies\[0\].when"):
        first_match([], own, "http_request", {"url": "x"}, NS)
    # `default` reads a missing argument without failing
    own = rules({"tool": "http_request", "when": "default(args.amount, 0) > 5", "action": "deny"})
    assert first_match([], own, "http_request", {"url": "x"}, NS) is None


def test_arguments_shown_to_approvers_are_masked_and_bounded() -> None:
    args = {"url": "https://x/y", "headers": {"Authorization": "Bearer abcdefgh12345678",
            "X-Api-Key": "k"}, "body": {"note": "token sk-abcdefghijklmnopqrstu here",
            "password": "hunter2"}}  # fmt: skip
    shown = redact(args)
    assert shown["headers"] == {"Authorization": "***", "X-Api-Key": "***"}
    assert shown["body"] == {"note": "token *** here", "password": "***"}
    assert "Bearer ***" in redact("auth: Bearer abcdefgh12345678")
    big = shown_args({"text": "x" * 10_000})
    assert list(big) == ["(truncated)"] and len(big["(truncated)"]) < 4100
    assert describe_call("http_request", {"method": "post", "url": "https://a/b"}) == (
        "http_request POST https://a/b"
    )
    assert describe_call("record", {"note": "n", "api_token": "tok-1"}) == (
        'record {"api_token": "***", "note": "n"}'
    )
    url = "https://a/b?q=1&api_key=abc123&sig=zz#top"
    assert redact(url) == "https://a/b?q=1&api_key=***&sig=***#top"


def test_policies_are_validated_on_save_naming_the_field() -> None:
    problems = validate(defn(
        {"tool": "http_request", "when": "args.url ==", "action": "deny"},
        {"tool": "http_request", "when": "secrets.k", "action": "deny"},
        {"tool": "http_request", "action": "approve", "approvers": ["a"], "min_approvals": 2},
        {"tool": "http_request", "when": "args.method == 'GET' and tool == run.owner",
         "action": "allow"},
    ))  # fmt: skip
    fields = {p.field: p.message for p in problems}
    assert set(fields) == {"tool_policies[0].when", "tool_policies[1].when",
                           "tool_policies[2].min_approvals"}  # fmt: skip
    assert "syntax error" in fields["tool_policies[0].when"]
    assert "'secrets'" in fields["tool_policies[1].when"]
    with pytest.raises(ValidationError, match="approvers"):
        defn({"tool": "x", "action": "approve"})
    with pytest.raises(ValidationError):
        defn({"tool": "x", "action": "maybe"})
    with pytest.raises(ValidationError):
        defn({"tool": "x", "action": "approve", "approvers": ["a"], "timeout": "soon"})


def test_organisation_rules_come_from_settings_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DURATASK_TOOL_POLICIES",
        '[{"tool": "http_request", "when": "args.method == \'DELETE\'", "action": "deny"}]',
    )
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert [r.action for r in s.tool_policies] == ["deny"]
    assert run_config(s).tool_policies == s.tool_policies  # pinned into every run
    monkeypatch.setenv("DURATASK_TOOL_POLICIES", '[{"tool": "x", "when": "(", "action": "deny"}]')
    with pytest.raises(ValidationError, match=r"tool_policies\[0\].when"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_weakening_a_policy_needs_its_approvers() -> None:
    base = defn(HOLD)
    assert weakenings(base, defn(HOLD, {"tool": "*", "action": "allow"}), None) == []
    assert weakenings(defn(), defn(HOLD), None) == []
    assert weakenings(defn({"tool": "*", "action": "allow"}), defn(), None) == []
    removed = weakenings(base, defn(), None)
    assert [(w.step_id, w.approvers) for w in removed] == [("tool_policies[0]", ("lead",))]
    before = weakenings(base, defn({"tool": "*", "action": "allow"}, HOLD), None)
    assert len(before) == 1  # an allow put before the gate
    deny = defn({"tool": "*", "action": "deny"})
    assert [w.approvers for w in weakenings(deny, defn(), None)] == [()]  # admins only
    short = weakenings(None, defn({**HOLD, "timeout": "1m"}), timedelta(hours=1))
    assert [w.step_id for w in short] == ["tool_policies[0]"]
