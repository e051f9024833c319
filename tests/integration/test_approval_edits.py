"""Approving with an edit, and raising a budget, through the real gateway, CLI and worker
on the dev server (the scripted model echoes its prompt, so a step's output shows what
it saw): an edit changes what the next step sees; a raw update or signal that carries
an edit, or a raise, without the gateway's proof is not counted
(docs/approvals.md#approving-with-an-edit, docs/models-and-tools.md#budgets)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.integration.test_cli import Cli
from tests.stack import Stack, run_stack
from workflows import contracts
from workflows.models import ApprovalDecision, BudgetRaise
from workflows.run_workflow import TaskRunWorkflow

KEYS: list[dict[str, Any]] = [
    {"key": "k-ann", "identity": "ann", "scopes": ["tasks:read", "tasks:approve"]},
    {"key": "k-wes", "identity": "wes", "scopes": ["tasks:read", "tasks:write"]},
    {"key": "k-root", "identity": "root", "scopes": ["tasks:approve", "tasks:admin"]},
]
PRICES = {"scripted/echo": (10_000.0, 10_000.0)}  # $0.01 a token


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def notes_def(def_id: str, **review: Any) -> dict[str, Any]:
    return {
        "id": def_id,
        "inputs": {"v": {"type": "string", "default": "1.0"}},
        "steps": [
            {"id": "draft", "action": "llm_call", "prompt": "Notes for {{ input.v }}"},
            {"id": "review", "action": "approval", "approvers": ["ann"],
             "prompt": "Ship? {{ steps.draft.output }}", **review},
            {"id": "ship", "action": "llm_call", "prompt": "Ship: {{ steps.draft.output }}"},
        ],
    }  # fmt: skip


async def state_of(s: Stack, run_id: str) -> dict[str, Any]:
    r = await s.http.get(f"/v1/runs/{run_id}", headers=auth("k-wes"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def parked(s: Stack, def_id: str, status: str = "awaiting_approval") -> str:
    r = await s.http.post("/v1/runs", json={"definition_id": def_id}, headers=auth("k-wes"))
    assert r.status_code == 201, r.text
    run_id = str(r.json()["run_id"])
    for _ in range(300):
        if (await state_of(s, run_id))["status"] == status:
            return run_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never became {status}")


async def result(s: Stack, run_id: str) -> dict[str, Any]:
    r = await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def steps(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["id"]: x for x in res["state"]["steps"]}


async def test_an_approval_with_an_edit_changes_what_the_next_step_sees(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        for d in (notes_def("notes"), notes_def("locked", edits=False)):
            r = await s.http.put(f"/v1/definitions/{d['id']}", json=d, headers=auth("k-wes"))
            assert r.status_code == 201, r.text
        run_id = await parked(s, "notes")
        url = f"/v1/runs/{run_id}/approvals"

        # what the run does not take: 422 naming the problem, and the run keeps waiting
        r = await s.http.post(url, json={"decision": "approve", "output": {"a": 1}},
                              headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 422, r.text
        assert "is not of type 'string'" in r.json()["detail"]
        assert r.json()["problems"][0]["field"] == "output"
        r = await s.http.post(url, json={"decision": "approve", "output": "x" * 70_000},
                              headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 422 and "at most 65536" in r.text, r.text

        # raw Temporal messages carrying an edit, without the gateway's proof: not counted
        handle = s.client.get_workflow_handle(run_id)
        forged = ApprovalDecision(decision="approve", approver="ann", output="Forged notes")
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(TaskRunWorkflow.decide, forged)
        assert isinstance(info.value.cause, ApplicationError)
        assert info.value.cause.type == contracts.E_APPROVAL_FORBIDDEN
        await handle.signal(TaskRunWorkflow.approve, forged)
        for _ in range(100):
            state = await state_of(s, run_id)
            if any(e["type"] == "approval.refused" for e in state["events"]):
                break
            await asyncio.sleep(0.1)
        assert state["status"] == "awaiting_approval"
        assert state["pending_approvals"][0]["votes"] == []
        assert state["pending_approvals"][0]["edits"] == "draft"

        # the approver's edit through the gateway
        r = await s.http.post(
            url,
            json={"decision": "approve", "comment": "fixed", "output": "Corrected notes"},
            headers=auth("k-ann"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["edited"] is True and r.json()["done"] is True
        res = await result(s, run_id)
        assert res["status"] == "completed", res
        by_id = steps(res)
        assert by_id["ship"]["output"] == "Ship: Corrected notes"  # the model saw the edit
        assert by_id["draft"]["output"] == "Corrected notes"
        assert by_id["draft"]["edited_by"] == "ann"
        assert by_id["draft"]["original_output"] == "Notes for 1.0"
        decided = [e for e in res["state"]["events"] if e["type"] == "approval.decided"]
        assert decided[0]["data"]["edited"] is True

        # a step with `edits: false` takes none
        locked = await parked(s, "locked")
        r = await s.http.post(f"/v1/runs/{locked}/approvals",
                              json={"decision": "approve", "output": "mine"},
                              headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 422 and "allows no edits" in r.json()["detail"], r.text

        # the CLI: --edit-file, as the identity of its token
        edit = tmp_path / "edit.txt"
        edit.write_text("Notes from a file")
        cli = Cli(s, tmp_path)
        cli.env["DURATASK_TOKEN"] = "k-ann"
        out = await cli("run", "approve", locked, "--edit-file", str(edit), "-m", "x")
        assert out.code != 0 and "allows no edits" in out.err + out.out
        run_id = await parked(s, "notes")
        shown = await cli("run", "show", run_id)
        assert shown.code == 0 and "approve with an edit of 'draft'" in shown.out, shown.out
        out = await cli("run", "approve", run_id, "--edit-file", str(edit), "-m", "from cli")
        assert out.code == 0, out.err
        assert "with your edit" in out.out
        res = await result(s, run_id)
        assert steps(res)["ship"]["output"] == "Ship: Notes from a file"
        bad = await cli("run", "approve", run_id, "--output", "{", "--json")
        assert bad.code == 2 and "not valid JSON" in bad.err + bad.out


async def test_a_budget_raise_needs_the_gateways_proof(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    spender = {
        "id": "spender",
        "limits": {"max_cost_usd": 0.05, "on_budget": "approve"},
        "steps": [
            {"id": "one", "action": "llm_call", "prompt": "Hi there friend"},
            {"id": "two", "action": "llm_call", "prompt": "and again {{ steps.one.output }}"},
        ],
    }
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, prices=PRICES) as s:
        r = await s.http.put("/v1/definitions/spender", json=spender, headers=auth("k-wes"))
        assert r.status_code == 201, r.text
        run_id = await parked(s, "spender")
        handle = s.client.get_workflow_handle(run_id)
        # a raw update claiming the approve scope: refused by the run's validator
        raw = BudgetRaise(max_cost_usd=10, by="root", scopes=["tasks:approve", "tasks:admin"])
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(TaskRunWorkflow.raise_budget, raw)
        cause = info.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == contracts.E_APPROVAL_FORBIDDEN and "no proof" in cause.message
        state = await state_of(s, run_id)
        assert state["status"] == "awaiting_approval" and state["budget"]["raises"] == []
        # the gateway's path still works: it signs the raise for the approver
        r = await s.http.post(f"/v1/runs/{run_id}/budget", json={"max_cost_usd": 10},
                              headers=auth("k-root"))  # fmt: skip
        assert r.status_code == 200, r.text
        res = await result(s, run_id)
        assert res["status"] == "completed", res
        raises = res["state"]["budget"]["raises"]
        assert [x["by"] for x in raises] == ["root"] and json.dumps(raises).count("nonce") == 1
