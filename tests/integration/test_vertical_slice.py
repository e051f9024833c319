"""The walking skeleton, end to end: define over HTTP, run, read the result."""

from tests.stack import Stack

HELLO = {
    "id": "hello",
    "name": "Hello",
    "inputs": {"name": {"type": "string", "required": True}},
    "steps": [{"id": "greet", "action": "llm_call", "prompt": "Hello, {{ input.name }}!"}],
}


async def test_define_run_and_read_result(stack: Stack) -> None:
    created = await stack.put_definition(HELLO)
    assert created["version"] == 1
    run = await stack.start("hello", input={"name": "Ada"})
    assert run["run_id"].startswith("run-")
    assert run["temporal_ui_url"].endswith(run["run_id"])
    result = await stack.wait_result(run["run_id"])
    assert result["status"] == "completed"
    assert result["result"] == "Hello, Ada!"
    r = await stack.http.get(f"/v1/runs/{run['run_id']}")
    state = r.json()
    assert state["status"] == "completed"
    assert state["steps"][0]["status"] == "completed"
    assert state["steps"][0]["output"] == "Hello, Ada!"
    assert state["started_at"] and state["completed_at"]
    # The run is visible in Temporal's own listing with duratask's search attributes
    found = [w async for w in stack.client.list_workflows(f"WorkflowId = '{run['run_id']}'")]
    assert found and found[0].workflow_type == "TaskRunWorkflow"
