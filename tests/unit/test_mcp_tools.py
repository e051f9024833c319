"""MCP tool names in definitions: parsing, allow-lists, model-safe names, validation,
and what the model reads from a tool result."""

from __future__ import annotations

import mcp_types
import pytest

from activities.tools.mcp import model_view
from activities.tools.registry import ToolError
from tests.helpers import definition
from workflows.mcp_tools import model_name, servers, split, tool_allowed
from workflows.validation import validate


def test_split_and_servers() -> None:
    assert split("mcp:docs/search") == ("docs", "search")
    assert split("mcp:docs/*") == ("docs", "*")
    assert split("mcp:docs") is None and split("mcp:/x") is None and split("http_request") is None
    assert servers(["mcp:b/x", "mcp:a/*", "notify", "mcp:b/y"]) == ["a", "b"]


def test_allow_list_with_wildcards() -> None:
    allowed = ["notify", "mcp:docs/*", "mcp:github/create_issue"]
    assert tool_allowed("mcp:docs/anything", allowed)
    assert tool_allowed("mcp:github/create_issue", allowed)
    assert not tool_allowed("mcp:github/delete_repo", allowed)
    assert not tool_allowed("http_request", allowed)


def test_model_names_are_safe_for_every_provider() -> None:
    name = model_name("git.hub", "create issue/" + "x" * 80)
    assert len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)


def test_validation_accepts_mcp_names_and_refuses_malformed_ones() -> None:
    good = definition(
        [{"id": "a", "action": "llm_call", "prompt": "p", "tools": ["mcp:docs/search"]},
         {"id": "b", "action": "tool_call", "tool": "mcp:docs/fetch", "args": {}}],
        tools=["mcp:docs/*", "notify"],
    )  # fmt: skip
    assert validate(good, {"notify"}) == []
    bad = definition(
        [{"id": "b", "action": "tool_call", "tool": "mcp:docs/*", "args": {}},
         {"id": "c", "action": "tool_call", "tool": "mcp:other/x", "args": {}}],
        tools=["mcp:docs/*", "mcp:nothing"],
    )  # fmt: skip
    messages = [str(p) for p in validate(bad, {"notify"})]
    assert any("'mcp:nothing' is not an MCP tool name" in m for m in messages)
    assert any("'mcp:docs/*' is not an MCP tool" in m for m in messages)
    assert any("'mcp:other/x' is not allowed" in m for m in messages)


def test_model_view_of_results() -> None:
    text = mcp_types.TextContent(type="text", text="hi")
    assert model_view("s", "t", mcp_types.CallToolResult(content=[text])) == "hi"
    structured = mcp_types.CallToolResult(content=[text], structured_content={"a": 1})
    assert model_view("s", "t", structured) == {"a": 1}
    image = mcp_types.ImageContent(type="image", data="AAAA", mime_type="image/png")
    view = model_view("s", "t", mcp_types.CallToolResult(content=[text, image]))
    assert view["content"][1] == {"type": "image", "mime_type": "image/png", "bytes": 3}
    with pytest.raises(ToolError, match="boom"):
        error = mcp_types.TextContent(type="text", text="boom")
        model_view("s", "t", mcp_types.CallToolResult(content=[error], is_error=True))


async def test_save_check_names_unknown_servers_in_branches_too() -> None:
    from api.mcp_check import mcp_problems
    from duratask.settings import Settings

    defn = definition(
        [{"id": "p", "action": "parallel", "branches": [
            {"steps": [{"id": "b", "action": "tool_call", "tool": "mcp:ghost/x", "args": {}}]}]}],
        tools=["mcp:ghost/x", "mcp:docs/*"],
    )  # fmt: skip
    settings = Settings(mcp_servers={"docs": {"url": "https://x"}}, _env_file=None)  # type: ignore[call-arg,dict-item]
    found = [str(p) for p in await mcp_problems(settings, defn)]
    assert found == ["definition (tools): unknown MCP server 'ghost' (known: docs)"]


async def test_http_servers_obey_the_address_rules_unless_allow_listed() -> None:
    from activities.tools.mcp import McpConfigError, list_server_tools
    from duratask.settings import McpServerSettings, Settings

    def settings(allow: bool) -> Settings:
        server = McpServerSettings(transport="http", url="http://127.0.0.1:9/mcp",
                                   allow_private=allow, timeout_s=2)  # fmt: skip
        return Settings(mcp_servers={"intranet": server}, _env_file=None)  # type: ignore[call-arg]

    with pytest.raises(McpConfigError, match=r"intranet.*127\.0\.0\.1"):
        await list_server_tools(settings(False), "intranet")
    with pytest.raises(Exception) as allowed:  # allow-listed: it gets as far as connecting
        await list_server_tools(settings(True), "intranet")
    assert not isinstance(allowed.value, McpConfigError)
    with pytest.raises(McpConfigError, match="unknown MCP server 'nope'"):
        await list_server_tools(settings(True), "nope")
