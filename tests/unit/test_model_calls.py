"""The pure parts of a model call: merging, endpoint choice, message shapes, stream assembly."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.llm.anthropic_provider import to_anthropic
from activities.llm.endpoints import configured_model, resolve_target
from activities.llm.errors import connection_error
from activities.llm.openai_provider import ToolCallAssembler, to_openai_messages
from activities.llm.usage import estimate_usage
from duratask.settings import ModelEndpoint, OpenAISettings, Settings
from tests.fakes.openai_server import transcript
from workflows.definition import ModelSpec, TaskDefinition, resolve_model
from workflows.models import ChatMessage, ToolCall


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg, arg-type]


def test_merge_is_field_by_field_and_survives_serialisation() -> None:
    posted = TaskDefinition.model_validate({
        "id": "d", "model": {"endpoint": "local", "name": "smollm2", "temperature": 0.2,
                             "options": {"a": 1}},
        "steps": [{"id": "s", "action": "llm_call", "prompt": "p",
                   "model": {"max_tokens": 50, "options": {"b": 2}}}],
    })  # fmt: skip
    # what the store writes and a run's payload carry: every field written out
    stored = TaskDefinition.model_validate_json(
        json.dumps(posted.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    default = ModelSpec(endpoint="openai", provider="openai", name="gpt-4o-mini")
    carried = ModelSpec.model_validate(json.loads(default.model_dump_json()))
    for d in (posted, stored):
        step = d.steps[0]
        m = resolve_model(carried, d.model, step.model, ModelSpec(top_p=0.9))  # type: ignore[union-attr]
        assert (m.endpoint, m.provider, m.name) == ("local", None, "smollm2")
        assert (m.temperature, m.max_tokens, m.top_p) == (0.2, 50, 0.9)
        assert m.options == {"a": 1, "b": 2} and m.streamed


def test_another_endpoint_or_provider_starts_from_its_own_default_model() -> None:
    base = ModelSpec(endpoint="openai", provider="openai", name="gpt-4o-mini", temperature=0.1)
    m = ModelSpec(endpoint="local").merged_over(base)
    assert (m.endpoint, m.provider, m.name, m.temperature) == ("local", None, None, 0.1)
    m = ModelSpec(provider="scripted").merged_over(base)
    assert (m.endpoint, m.provider, m.name) == (None, "scripted", None)


def test_endpoint_resolution_and_default_models() -> None:
    s = settings(
        openai=OpenAISettings(base_url="http://127.0.0.1:9/v1"),
        model_endpoints={"hosted": ModelEndpoint(api_key=SecretStr("k"), default_model="gpt-x")},
    )
    assert s.model_endpoint == "openai" and s.model_name is None  # the server will say
    local = resolve_target(ModelSpec(provider="openai"), s)
    assert (local.name, local.kind, local.is_vendor) == ("openai", "openai", False)
    assert configured_model(local) is None
    hosted = resolve_target(ModelSpec(endpoint="hosted"), s)
    assert configured_model(hosted) == "gpt-x" and hosted.is_vendor
    assert configured_model(resolve_target(ModelSpec(provider="anthropic"), s)) == (
        "claude-3-5-haiku-latest"
    )
    assert resolve_target(ModelSpec(provider="scripted"), s).endpoint is None
    with pytest.raises(ApplicationError, match=r"not configured .*hosted"):
        resolve_target(ModelSpec(endpoint="nope"), s)
    assert settings().model_provider == "scripted" and settings().model_name == "echo"


def test_connection_error_names_where_and_why() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("Connection error.") from inner
    except RuntimeError as e:
        err = connection_error("endpoint 'local' (http://127.0.0.1:8080/v1)", e)
    assert err.message == (
        "endpoint 'local' (http://127.0.0.1:8080/v1) connection failed: "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    target = resolve_target(
        ModelSpec(endpoint="x"),
        settings(model_endpoints={"x": ModelEndpoint(base_url="http://u:secret@h:1/v1?key=k")}),
    )
    assert "secret" not in target.label and "key=k" not in target.label


def test_assistant_tool_turn_has_empty_content_and_tool_messages_their_id() -> None:
    call = ToolCall(id="c1", name="add", arguments={"a": 1})
    sent = to_openai_messages([
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content=None, tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="c1", name="add", content='{"sum": 1}'),
    ])  # fmt: skip
    assert sent[1]["content"] == "" and sent[1]["tool_calls"][0]["function"]["name"] == "add"
    assert sent[2] == {"role": "tool", "tool_call_id": "c1", "content": '{"sum": 1}'}


def test_llamacpp_recorded_stream_assembles_one_call() -> None:
    """The recorded llama.cpp stream repeats the id and the name in every chunk."""
    calls = ToolCallAssembler()
    for event in transcript("llamacpp_tool_call"):
        data = event.removeprefix("data: ").strip()
        if data == "[DONE]":
            continue
        for choice in json.loads(data)["choices"]:
            for tc in choice["delta"].get("tool_calls") or []:
                fn = tc.get("function") or {}
                calls.add(tc.get("index"), tc.get("id"), fn.get("name"), fn.get("arguments"))
    [call] = calls.result()
    assert call.name == "get_weather" and set(call.arguments) == {"city"}


def test_assembler_handles_openai_and_whole_call_shapes() -> None:
    calls = ToolCallAssembler()
    calls.add(0, "a", "add", '{"a": ')  # OpenAI: id and name once, then argument pieces
    calls.add(1, "b", "add", "")
    calls.add(0, None, None, "1}")
    calls.add(1, None, None, '{"a": 2}')
    calls.add(0, "c", "mul", '{"a": 3}')  # a new id at a used index: a new call
    assert [(c.id, c.name, c.arguments) for c in calls.result()] == [
        ("a", "add", {"a": 1}), ("b", "add", {"a": 2}), ("c", "mul", {"a": 3}),
    ]  # fmt: skip


def test_anthropic_messages_alternate_and_carry_tool_blocks() -> None:
    call = ToolCall(id="tu_1", name="add", arguments={"a": 1})
    system, sent = to_anthropic([
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content=None, tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="tu_1", content='{"error": "boom"}'),
        ChatMessage(role="user", content="steer: go on"),
    ])  # fmt: skip
    assert system == "be brief"
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [{"type": "tool_use", "id": "tu_1", "name": "add",
                                   "input": {"a": 1}}]  # fmt: skip
    result, steer = sent[2]["content"]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert steer == {"type": "text", "text": "steer: go on"}


def test_usage_estimate_is_marked() -> None:
    usage = estimate_usage([ChatMessage(role="user", content="x" * 400)], "y" * 40, [])
    assert usage.estimated and usage.input_tokens >= 100 and usage.output_tokens == 10
