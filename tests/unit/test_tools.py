"""The tool registry, its JSON schemas, custom tool modules, the tool activity's own
checks, and `http_request`'s SSRF guard and limits against a real loopback server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import ActivityEnvironment

from activities.tools.activity import ToolActivities
from activities.tools.http import HttpRequestArgs, check_destination, http_request
from activities.tools.registry import ToolContext, ToolError, build_registry
from duratask.settings import Settings
from tests.fakes import tools as fake_tools
from tests.fakes.http_server import serve_http
from workflows.models import ToolRequest


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type,call-arg]


def ctx(s: Settings, key: str = "run-1/step/1/0") -> ToolContext:
    return ToolContext(run_id="run-1", step_id="step", idempotency_key=key, owner=None, settings=s)


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    async with serve_http() as url:
        yield url


def test_builtins_and_custom_module_registered_with_schemas() -> None:
    registry = build_registry(settings(tool_modules=["tests.fakes.tools"]))
    assert {"http_request", "notify", "plan", "schedule_task", "list_tasks", "cancel_task",
            "add", "record", "flaky_record"} <= registry.names()  # fmt: skip
    (add,) = registry.schemas(["add"])
    assert add["name"] == "add" and add["description"] == "Add two numbers."
    params = add["parameters"]
    assert params["type"] == "object" and params["required"] == ["a", "b"]
    assert params["properties"]["a"]["type"] == "number"
    assert "title" not in params
    http = registry.schemas(["http_request"])[0]["parameters"]
    assert http["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    assert registry.schemas(["add", "nope"]) == [add]  # unknown names are not offered
    assert registry.get("record") is not None and registry.get("record").side_effects  # type: ignore[union-attr]


def test_unknown_tool_module_fails_loudly() -> None:
    with pytest.raises(ModuleNotFoundError):
        build_registry(settings(tool_modules=["tests.fakes.does_not_exist"]))


async def test_tool_activity_refuses_unlisted_and_invalid_calls() -> None:
    s = settings(tool_modules=["tests.fakes.tools"])
    acts = ToolActivities(s, build_registry(s))
    env = ActivityEnvironment()

    def req(tool: str, args: dict[str, object], allowed: list[str]) -> ToolRequest:
        return ToolRequest(run_id="r", step_id="s", tool=tool, args=args, allowed=allowed,
                           idempotency_key=f"r/s/1/{tool}")  # fmt: skip

    before = sum(fake_tools.EFFECTS.values())
    refused = await env.run(acts.call, req("record", {"note": "x"}, ["add"]))
    assert refused.error and "not allowed" in refused.error
    assert sum(fake_tools.EFFECTS.values()) == before  # never executed
    bad = await env.run(acts.call, req("add", {"a": "not a number"}, ["add"]))
    assert bad.error and "invalid arguments for add" in bad.error
    good = await env.run(acts.call, req("add", {"a": 1, "b": 2}, ["add"]))
    assert good.output == {"sum": 3.0} and good.error is None
    unknown = await env.run(acts.call, req("ghost", {}, ["ghost"]))
    assert unknown.error == "unknown tool 'ghost'"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.0.1/",
        "http://[::1]/",
        "http://localhost/",
    ],
)
async def test_ssrf_guard_refuses_private_addresses(url: str) -> None:
    with pytest.raises(ToolError, match="refused"):
        await check_destination(url, allow_private=False)


async def test_ssrf_guard_refuses_other_schemes() -> None:
    with pytest.raises(ToolError, match="only absolute http"):
        await check_destination("file:///etc/passwd", allow_private=True)


async def test_http_request_against_loopback(http_url: str) -> None:
    strict = settings()
    with pytest.raises(ToolError, match="refused"):
        await http_request(HttpRequestArgs(url=f"{http_url}/ok"), ctx(strict))
    relaxed = settings(http_allow_private=True)
    got = await http_request(HttpRequestArgs(url=f"{http_url}/ok"), ctx(relaxed))
    assert got["status"] == 200 and got["body"] == {"ok": True}
    followed = await http_request(HttpRequestArgs(url=f"{http_url}/redirect"), ctx(relaxed))
    assert followed["body"] == {"ok": True}
    posted = await http_request(
        HttpRequestArgs(method="POST", url=f"{http_url}/echo", body={"a": 1}),
        ctx(relaxed, key="run-9/s/1/3-call_x"),
    )
    assert posted["body"]["body"] == {"a": 1}
    assert posted["body"]["headers"]["idempotency-key"] == "run-9/s/1/3-call_x"


async def test_http_request_size_and_time_limits(http_url: str) -> None:
    capped = settings(http_allow_private=True, http_max_response_bytes=10_000)
    with pytest.raises(ToolError, match="larger than 10000 bytes"):
        await http_request(HttpRequestArgs(url=f"{http_url}/big"), ctx(capped))
    quick = settings(http_allow_private=True, http_timeout_s=0.5)
    with pytest.raises(ToolError, match="timed out"):
        # the tool may ask for longer, but settings cap it
        await http_request(HttpRequestArgs(url=f"{http_url}/slow", timeout_s=60), ctx(quick))
