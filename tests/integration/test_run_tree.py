"""The run tree over the real gateway on the dev server: a running parent with its
children (one nested a level deeper), child ids with slashes served by `GET /v1/runs`,
the children found by `temporal workflow list` with their parent, and a cancel that
reaches every descendant with its reason."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from tests.helpers import definition, eventually, make_worker, run_input, start
from tests.stack import Stack
from workflows.definition import TaskDefinition
from workflows.run_workflow import TaskRunWorkflow

SLOW = {"id": "slow-child", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}
QUICK = {
    "id": "quick-child",
    "inputs": {"topic": {"type": "string", "required": True}},
    "steps": [{"id": "say", "action": "llm_call", "prompt": "quick {{ input.topic }}"}],
}
WRAPPER = {"id": "wrapper", "steps": [{"id": "inner", "action": "sub_task", "task": "slow-child"}]}
PARENT = {
    "id": "fanout",
    "inputs": {"topic": {"type": "string", "default": "otters"}},
    "steps": [
        {
            "id": "fan",
            "action": "parallel",
            "branches": [
                {"name": "quick", "task": "quick-child", "input": {"topic": "{{ input.topic }}"}},
                {"name": "nested", "task": "wrapper"},
                {"name": "inline", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]},
            ],
        }
    ],
}


def nodes(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {tree["run_id"]: tree}
    for step in tree["steps"]:
        for child in step["children"]:
            found.update(nodes(child))
    return found


async def test_tree_of_running_parent_and_cascading_cancel(stack: Stack) -> None:
    for body in (SLOW, QUICK, WRAPPER, PARENT):
        await stack.put_definition(body)
    run_id = (await stack.start("fanout", owner="ada"))["run_id"]
    quick, nested, inline = (f"{run_id}/fan/{b}" for b in ("quick", "nested", "inline"))
    grandchild = f"{nested}/inner"

    async def tree_ready() -> dict[str, Any] | None:
        r = await stack.http.get(f"/v1/runs/{run_id}", params={"tree": "true"})
        assert r.status_code == 200, r.text
        tree = r.json()
        found = nodes(tree)
        ready = (
            found.get(quick, {}).get("status") == "completed"
            and found.get(grandchild, {}).get("status") == "running"
            and found.get(inline, {}).get("status") == "running"
        )
        return tree if ready else None

    tree = await eventually(tree_ready)
    assert tree["status"] == "awaiting_parallel"
    fan = tree["steps"][0]
    assert fan["id"] == "fan" and fan["status"] == "running"
    assert [c["run_id"] for c in fan["children"]] == [quick, nested, inline]
    assert [c["branch"] for c in fan["children"]] == ["quick", "nested", "inline"]
    nested_node = fan["children"][1]
    assert nested_node["status"] == "awaiting_subtask"
    assert nested_node["steps"][0]["children"][0]["run_id"] == grandchild
    assert nested_node["steps"][0]["children"][0]["parent_run_id"] == nested

    # the plain GET lists the children with their live status
    state = (await stack.http.get(f"/v1/runs/{run_id}")).json()
    assert {c["run_id"]: c["status"] for c in state["children"]} == {
        quick: "completed",
        nested: "awaiting_subtask",
        inline: "running",
    }
    # a child's own GET (its id has slashes) names its parent and inherited owner
    child = (await stack.http.get(f"/v1/runs/{grandchild}")).json()
    assert child["parent_run_id"] == nested and child["owner"] == "ada"
    assert child["trigger"] == "subtask"
    quick_result = (await stack.http.get(f"/v1/runs/{quick}/result")).json()
    assert quick_result["result"] == "quick otters"

    # Temporal's own listing: children carry their parent (workflow parent + DurataskParent)
    async def listed() -> list[Any]:
        found = [w async for w in stack.client.list_workflows(f"DurataskParent = '{run_id}'")]
        return found if len(found) == 3 else []

    listed_children = await eventually(listed)
    assert {w.id for w in listed_children} == {quick, nested, inline}
    assert {w.parent_id for w in listed_children} == {run_id}
    page = (await stack.http.get("/v1/runs", params={"parent": run_id})).json()
    assert {i["run_id"] for i in page["items"]} == {quick, nested, inline}
    assert {i["parent_run_id"] for i in page["items"]} == {run_id}
    cli = await temporal_cli_list(stack, f"DurataskParent = '{nested}'")
    assert [w["execution"]["workflowId"] for w in cli] == [grandchild]
    assert cli[0]["parentExecution"]["workflowId"] == nested

    # cancelling the parent reaches every running descendant, with the reason
    r = await stack.http.post(f"/v1/runs/{run_id}/cancel", json={"reason": "superseded"})
    assert r.status_code == 202, r.text
    await stack.wait_result(run_id)

    async def all_cancelled() -> dict[str, Any] | None:
        r = await stack.http.get(f"/v1/runs/{run_id}", params={"tree": "true"})
        found = nodes(r.json())
        statuses = {k: v["status"] for k, v in found.items()}
        want = {run_id, nested, inline, grandchild}
        return found if all(statuses.get(k) == "cancelled" for k in want) else None

    found = await eventually(all_cancelled)
    assert found[quick]["status"] == "completed"
    for rid in (run_id, nested, inline, grandchild):
        assert found[rid]["error"]["message"] == "superseded", rid


async def test_terminated_parent_leaves_no_orphans(dev_client: Client, task_queue: str) -> None:
    """Terminate gives the parent no chance to act: parent_close_policy cancels the child.
    (The time-skipping test server does not apply parent close policies, hence the dev server.)"""
    parent = definition([{"id": "child", "action": "sub_task", "task": "slow-child"}], id="p")
    slow = TaskDefinition.model_validate(SLOW)
    async with make_worker(dev_client, task_queue):
        handle = await start(dev_client, task_queue, run_input(parent, others=[slow]))
        child = dev_client.get_workflow_handle(f"{handle.id}/child")

        async def child_running() -> bool:
            try:
                return (await child.describe()).status == WorkflowExecutionStatus.RUNNING
            except RPCError:
                return False

        await eventually(child_running)
        await handle.terminate(reason="operator")

        async def child_cancelled() -> bool:
            return (await child.describe()).status == WorkflowExecutionStatus.CANCELED

        await eventually(child_cancelled)
        state = await child.query(TaskRunWorkflow.state)
    assert state.status == "cancelled"


async def temporal_cli_list(stack: Stack, query: str) -> list[dict[str, Any]]:
    binary = shutil.which("temporal")
    assert binary, "the temporal CLI comes with the dev extras"
    address = stack.settings.temporal_address

    async def run() -> list[dict[str, Any]]:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "workflow",
            "list",
            "--address",
            address,
            "--query",
            query,
            "--output",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        text = out.decode().strip()
        rows = (
            json.loads(text)
            if text.startswith("[")
            else [json.loads(x) for x in text.splitlines() if x]
        )
        return rows or []  # type: ignore[no-any-return]

    return await eventually(run)  # type: ignore[no-any-return]


def test_child_run_ids_with_slashes_reach_the_right_route() -> None:
    from starlette.routing import Match

    from api.routers.runs import router

    def route(method: str, path: str) -> tuple[str, str] | None:
        scope = {"type": "http", "method": method, "path": path}
        for r in router.routes:
            match, child = r.matches(scope)  # type: ignore[attr-defined]
            if match == Match.FULL:
                return r.endpoint.__name__, child["path_params"]["run_id"]  # type: ignore[attr-defined]
        return None

    assert route("GET", "/v1/runs/run-1") == ("get_run", "run-1")
    assert route("GET", "/v1/runs/run-1/result") == ("get_result", "run-1")
    assert route("GET", "/v1/runs/run-1/fan/a") == ("get_run", "run-1/fan/a")
    assert route("GET", "/v1/runs/run-1/fan/a/result") == ("get_result", "run-1/fan/a")
    assert route("POST", "/v1/runs/run-1/fan/a/cancel") == ("cancel_run", "run-1/fan/a")
    # a sub-resource of a plain run is never taken for a child id
    assert route("GET", "/v1/runs/run-1/events") is None


GATED_CHILD = {
    "id": "gated-child",
    "steps": [
        {"id": "ok", "action": "approval", "approvers": ["local"], "timeout": "1h"},
        {"id": "done", "action": "notify", "message": "approved inside the child"},
    ],
}
GATED_PARENT = {"id": "gated-parent",
                "steps": [{"id": "gate", "action": "sub_task", "task": "gated-child"}]}  # fmt: skip


async def test_a_child_run_is_approved_and_read_by_its_own_id(stack: Stack) -> None:
    """Per-run routes take child ids too: its approval, its events, its messages."""
    await stack.put_definition(GATED_CHILD)
    await stack.put_definition(GATED_PARENT)
    run_id = (await stack.start("gated-parent"))["run_id"]
    child = f"{run_id}/gate"

    async def waiting() -> bool:
        r = await stack.http.get(f"/v1/runs/{child}")
        return r.status_code == 200 and r.json()["status"] == "awaiting_approval"

    await eventually(waiting)
    r = await stack.http.post(f"/v1/runs/{child}/approvals", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    assert r.json()["run_id"] == child and r.json()["step_id"] == "ok"
    assert (await stack.wait_result(run_id))["status"] == "completed"
    page = (await stack.http.get(f"/v1/runs/{child}/events",
                                 headers={"Accept": "application/json"})).json()  # fmt: skip
    types = [e["type"] for e in page["events"]]
    assert "approval.decided" in types and types[-1] == "run.completed"
    # a closed child refuses a message with 409, like any run
    r = await stack.http.post(f"/v1/runs/{child}/messages", json={"mode": "steer", "message": "x"})
    assert r.status_code == 409, r.text
    assert (await stack.http.get(f"/v1/runs/{run_id}/nope/events")).status_code == 404
