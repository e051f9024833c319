"""A provider's error text that echoes the API key never reaches history, logs or the API.

The finding: a 401 body that echoed the key was written to history (every attempt),
to the worker log and to the API's error. Here a loopback fake provider answers 401
with the key (and a bearer header) in its message, for OpenAI and Anthropic, and the
run goes through the real gateway and worker on the dev server.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from duratask.settings import AnthropicSettings, OpenAISettings
from tests.stack import run_stack, serve_asgi

KEY = "sk-live-ECHOED-9c41d7e2b8"  # what the fake provider echoes back


async def echo_key(request: Request) -> Response:
    sent = request.headers.get("authorization") or request.headers.get("x-api-key", "")
    message = f"Incorrect API key provided: {KEY}. You sent '{sent}'."
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}},
        status_code=401,
    )


@pytest.fixture
async def provider() -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/v1/chat/completions", echo_key, methods=["POST"]),
                            Route("/v1/messages", echo_key, methods=["POST"])])  # fmt: skip
    async with serve_asgi(app, force_exit=True) as url:
        yield url


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, base64 payloads decoded too."""
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value
        try:
            yield base64.b64decode(value, validate=True).decode("utf-8", errors="ignore")
        except ValueError:
            pass


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_an_echoed_key_is_redacted_everywhere(
    kind: str,
    provider: str,
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    models: dict[str, Any] = {
        "openai": OpenAISettings(api_key=SecretStr(KEY), base_url=f"{provider}/v1"),
        "anthropic": AnthropicSettings(api_key=SecretStr(KEY), base_url=provider),
    }
    body = {"id": "leaky", "model": {"provider": kind, "name": "m"},
            "steps": [{"id": "ask", "action": "llm_call", "prompt": "hello"}]}  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        async with run_stack(dev_env, task_queue, tmp_path, **{kind: models[kind]}) as s:
            await s.put_definition(body)
            run_id = (await s.start("leaky"))["run_id"]
            result = (await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 30})).json()
            answers = [
                result,
                (await s.http.get(f"/v1/runs/{run_id}")).json(),
                (
                    await s.http.get(
                        f"/v1/runs/{run_id}/events", headers={"Accept": "application/json"}
                    )
                ).json(),
            ]
            history = await s.client.get_workflow_handle(run_id).fetch_history()
    assert result["status"] == "failed", result
    error = result["error"]
    assert error["code"] == "invalid_api_key" and "[redacted]" in error["message"], error
    for answer in answers:
        assert KEY not in json.dumps(answer)
    texts = list(strings(history.to_json_dict()))
    assert any("invalid_api_key" in t for t in texts), "history payloads were not decoded"
    assert not any(KEY in t for t in texts)
    assert KEY not in repr(logs) and KEY not in caplog.text
