"""The console's pure parts: session cookies and sign-in links, YAML problems placed on
their lines, and the start form read back into typed inputs."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr
from starlette.datastructures import FormData

from api.auth import Principal
from console.forms import FormProblem, input_fields, parse_inputs
from console.session import Sessions, link_token
from console.yamlcheck import check
from duratask.settings import Settings
from workflows.definition import TaskDefinition

ALICE = Principal("alice", frozenset({"tasks:read", "tasks:write"}), frozenset({"ops"}))


def sessions(secret: str = "s3cret", hours: float = 1.0) -> Sessions:
    settings = Settings(
        console_session_secret=SecretStr(secret),
        console_session_hours=hours,
        _env_file=None,  # type: ignore[call-arg]
    )
    return Sessions(settings)


def test_a_session_cookie_round_trips_and_refuses_tampering() -> None:
    s = sessions()
    value, session = s.issue(ALICE)
    back = s.read(value)
    assert back is not None and back.principal == ALICE and back.csrf == session.csrf
    assert back.csrf_ok(session.csrf) and not back.csrf_ok("nope") and not back.csrf_ok(None)
    assert s.read(value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]) is None
    assert sessions("another").read(value) is None  # signed with another secret
    assert s.read("") is None and s.read("garbage") is None


def test_a_session_never_outlives_its_token() -> None:
    s = sessions()
    value, _ = s.issue(ALICE, not_after=time.time() - 1)  # a JWT that has expired
    assert s.read(value) is None
    value, session = s.issue(ALICE, not_after=time.time() + 60)
    assert s.read(value) is not None and session.expires_at <= time.time() + 60


def test_a_sign_in_link_works_once() -> None:
    s = sessions()
    token = link_token("s3cret", ALICE)
    assert s.redeem_link(token) == ALICE
    assert s.redeem_link(token) is None
    assert s.redeem_link(link_token("other", ALICE)) is None
    assert s.redeem_link("not-a-token") is None


def test_without_a_secret_each_process_has_its_own() -> None:
    a = Sessions(Settings(_env_file=None))  # type: ignore[call-arg]
    b = Sessions(Settings(_env_file=None))  # type: ignore[call-arg]
    value, _ = a.issue(ALICE)
    assert a.read(value) is not None and b.read(value) is None


YAML = """id: demo
steps:
  - id: first
    action: notify
    message: hi
    next: nowhere
  - id: second
    action: llm_call
"""


def test_yaml_problems_are_on_their_lines() -> None:
    lines = check(YAML)
    bad = {line.number: line.problems for line in lines if line.problems}
    assert set(bad) == {7}, bad  # `prompt` missing on the llm_call step (its list item)
    assert "prompt" in bad[7][0]
    fixed = YAML + "    prompt: hello\n"
    bad = {line.number: line.problems for line in check(fixed) if line.problems}
    assert list(bad) == [6, 7]
    assert "unknown step 'nowhere'" in bad[6][0]  # on the `next:` line
    assert "unreachable" in bad[7][0]  # on the step it cuts off


def test_yaml_syntax_error_is_placed() -> None:
    lines = check("id: x\nsteps: [\n  - oops: : :\n")
    assert any(line.problems and "not valid YAML" in line.problems[0] for line in lines)


DEF = TaskDefinition.model_validate(
    {
        "id": "f",
        "inputs": {
            "name": {"required": True},
            "n": {"type": "integer", "default": 2},
            "ok": {"type": "boolean"},
            "tone": {"enum": ["warm", "dry"]},
            "tags": {"type": "array"},
        },
        "steps": [{"id": "s", "action": "notify", "message": "x"}],
    }
)


def test_the_start_form_follows_the_inputs_schema() -> None:
    kinds = {f.name: f.kind for f in input_fields(DEF)}
    assert kinds == {
        "name": "text",
        "n": "number",
        "ok": "checkbox",
        "tone": "select",
        "tags": "json",
    }
    form = FormData(
        [
            ("in.name", "Ada"),
            ("in.n", "5"),
            ("in.ok", "true"),
            ("in.tone", "dry"),
            ("in.tags", '["a", "b"]'),
        ]
    )
    assert parse_inputs(DEF, form) == {
        "name": "Ada",
        "n": 5,
        "ok": True,
        "tone": "dry",
        "tags": ["a", "b"],
    }
    assert parse_inputs(DEF, FormData([("in.name", "Ada")])) == {"name": "Ada", "ok": False}
    with pytest.raises(FormProblem) as e:
        parse_inputs(DEF, FormData([("in.n", "five"), ("in.tags", "[")]))
    assert [p["field"] for p in e.value.problems] == ["input.n", "input.tags"]


def test_runs_are_bucketed_over_time() -> None:
    from datetime import UTC, datetime, timedelta

    from api.insights.records import RunRecord
    from console.series import buckets, charts

    t0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)

    def rec(minutes: int, status: str, ms: int | None = None, tokens: int = 0) -> RunRecord:
        return RunRecord(
            run_id=f"r{minutes}", definition_id="d", owner=None, trigger="api", status=status,
            start_time=t0 + timedelta(minutes=minutes), close_time=None, duration_ms=ms,
            tokens=tokens, cost_usd=0.01,
        )  # fmt: skip

    records = [rec(5, "completed", 100, 10), rec(10, "completed", 300, 20), rec(20, "failed"),
               rec(70, "running"), rec(130, "cancelled")]  # fmt: skip
    out = buckets(records, t0, t0 + timedelta(hours=3))
    assert [b.runs for b in out] == [3, 1, 1, 0]  # hourly for a short window
    assert out[0].success_pct == pytest.approx(200 / 3) and out[0].duration_ms == 200
    assert out[0].tokens == 30 and out[1].success_pct is None and out[2].success_pct == 0
    daily = buckets(records, t0 - timedelta(days=6), t0 + timedelta(hours=3))
    assert len(daily) == 7 and daily[-1].runs == 5  # daily for a week
    titles = [c[0] for c in charts(out)]
    assert titles == ["Runs", "Success rate (%)", "Median duration (ms)", "Tokens", "Cost (USD)"]
