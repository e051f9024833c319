"""A model fallback chain whose fallback is a real model server.

The step's first endpoint is a loopback server that refuses every request (HTTP 429 with
Retry-After); its fallback is the real llama.cpp server (SmolLM2-135M-Instruct), which
answers. Through the real gateway and worker on the dev server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ModelEndpoint
from tests.fakes.openai_server import FakeLlmServer, serve_fake_llm
from tests.realmodel.server import LlamaServer
from tests.stack import Stack, run_stack

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def refusing() -> AsyncIterator[FakeLlmServer]:
    async with serve_fake_llm() as f:
        yield f


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    refusing: FakeLlmServer,
    plain_server: LlamaServer,
) -> AsyncIterator[Stack]:
    endpoints = {
        "busy": ModelEndpoint(
            kind="openai", base_url=f"{refusing.url}/v1", default_model="refusing"
        ),
        "local": ModelEndpoint(kind="openai", base_url=plain_server.url),
    }
    async with run_stack(dev_env, task_queue, tmp_path, model_endpoints=endpoints) as s:
        yield s


async def test_the_real_local_model_answers_when_the_first_endpoint_refuses(
    stack: Stack, refusing: FakeLlmServer
) -> None:
    body = {
        "id": "fallback-to-local",
        "model": {
            "endpoint": "busy", "max_tokens": 24, "temperature": 0, "on_length": "accept",
            "fallback": [{"endpoint": "local"}],
        },
        "steps": [{"id": "greet", "action": "llm_call",
                   "prompt": "Say hello to Ada in one short sentence."}],
    }  # fmt: skip
    await stack.put_definition(body)
    started = await stack.start("fallback-to-local")
    result = await stack.wait_result(started["run_id"], wait=60)
    if not result["done"]:
        result = await stack.wait_result(started["run_id"], wait=60)
    assert result["done"], result
    state = result["state"]
    assert state["status"] == "completed", state["error"]
    step = state["steps"][0]
    assert isinstance(step["output"], str) and step["output"].strip()
    assert step["model"]["endpoint"] == "local" and step["model"]["fallback"] == 1
    assert step["model"]["name"]  # what the real server said it serves
    assert len(refusing.times("refusing")) == 2  # refused twice, then the fallback
    assert step["usage"]["input_tokens"] > 0
    kinds = [e["type"] for e in state["events"]]
    assert kinds.index("llm.fallback") < kinds.index("llm.completed")
