"""Interventions through the gateway and the CLI: POST /v1/runs/{id}/messages.

A message reaches the running agent as the `intervene` signal and is recorded as an
event naming its sender (the caller's identity); a finished run answers 409, and the
CLI exits non-zero saying why.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ApiKey
from tests.stack import Stack, run_stack

TOKEN = "alice-test-key"
CHAT = {
    "id": "chat",
    "steps": [
        {
            "id": "talk",
            "action": "llm_call",
            "prompt": "Hello",
            "model": {
                "provider": "scripted",
                "name": "script",
                "script": [{"text": "one", "delay": 3}, {"text": "two"}, {"text": "three"}],
            },
        }
    ],
}


@pytest.fixture
async def alice(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    keys = [ApiKey(key=SecretStr(TOKEN), identity="alice")]
    async with run_stack(
        dev_env, task_queue, tmp_path, headers={"Authorization": f"Bearer {TOKEN}"},
        auth_required=True, api_keys=keys,
    ) as s:  # fmt: skip
        yield s


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DURATASK_PUBLIC_URL": stack.url, "DURATASK_TOKEN": TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


async def test_messages_reach_the_agent_with_their_sender(alice: Stack) -> None:
    await alice.put_definition(CHAT)
    run = await alice.start("chat")
    run_id = run["run_id"]
    r = await alice.http.post(
        f"/v1/runs/{run_id}/messages", json={"mode": "followup", "message": "more please"}
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"run_id": run_id, "mode": "followup", "accepted": True}
    sent = await asyncio.to_thread(cli, alice, "run", "followup", run_id, "and the rest")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    result = await alice.wait_result(run_id)
    assert result["status"] == "completed"
    assert result["result"] == "three"
    state = (await alice.http.get(f"/v1/runs/{run_id}")).json()
    received = [e for e in state["events"] if e["type"] == "intervention.received"]
    assert [(e["message"], e["data"]) for e in received] == [
        ("more please", {"mode": "followup", "sender": "alice"}),
        ("and the rest", {"mode": "followup", "sender": "alice"}),
    ]
    contents = [m["content"] for m in state["steps"][0]["conversation"]]
    assert contents == ["Hello", "one", "more please", "two", "and the rest", "three"]

    # the run is finished: 409 over HTTP, non-zero exit from the CLI
    r = await alice.http.post(f"/v1/runs/{run_id}/messages", json={"mode": "steer", "message": "x"})
    assert r.status_code == 409, r.text
    assert "completed" in r.text
    late = await asyncio.to_thread(cli, alice, "run", "steer", run_id, "too late")
    assert late.returncode != 0
    assert "completed" in (late.stdout + late.stderr)


async def test_bad_message_is_422(alice: Stack) -> None:
    r = await alice.http.post("/v1/runs/run-x/messages", json={"mode": "shout", "message": "x"})
    assert r.status_code == 422
    assert "mode" in r.text
