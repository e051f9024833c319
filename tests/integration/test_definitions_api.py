"""`/v1/definitions` against a real gateway, SQLite store and dev server."""

from __future__ import annotations

from typing import Any

import yaml

from tests.stack import Stack


def body(def_id: str = "greet", prompt: str = "Hello {{ input.name }}", **extra: Any) -> dict:
    return {
        "id": def_id,
        "name": "Greeter",
        "inputs": {"name": {"type": "string", "required": True}},
        "steps": [{"id": "say", "action": "llm_call", "prompt": prompt}],
        **extra,
    }


async def test_put_creates_versions_and_unchanged_is_200(stack: Stack) -> None:
    r = await stack.http.put("/v1/definitions/greet", json=body())
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["latest_version"] == 1
    r = await stack.http.put("/v1/definitions/greet", json=body())
    assert r.status_code == 200 and r.json()["version"] == 1
    # YAML with a change: a new version
    text = yaml.safe_dump(body(prompt="Hi {{ input.name }}"))
    r = await stack.http.put(
        "/v1/definitions/greet", content=text, headers={"content-type": "application/yaml"}
    )
    assert r.status_code == 201 and r.json()["version"] == 2

    r = await stack.http.get("/v1/definitions/greet")
    assert r.status_code == 200
    assert r.json()["version"] == 2
    assert r.json()["definition"]["steps"][0]["prompt"] == "Hi {{ input.name }}"

    r = await stack.http.get("/v1/definitions/greet/versions")
    assert [v["version"] for v in r.json()["items"]] == [1, 2]
    assert r.json()["total"] == 2

    r = await stack.http.get("/v1/definitions/greet/versions/1")
    assert r.status_code == 200
    assert r.json()["definition"]["steps"][0]["prompt"] == "Hello {{ input.name }}"
    assert r.json()["latest_version"] == 2

    assert (await stack.http.get("/v1/definitions/greet/versions/9")).status_code == 404
    assert (await stack.http.get("/v1/definitions/greet/versions/0")).status_code == 422


async def test_list_definitions(stack: Stack) -> None:
    await stack.put_definition(body("one"))
    await stack.put_definition(body("two"))
    r = await stack.http.get("/v1/definitions")
    assert r.status_code == 200
    ids = [d["id"] for d in r.json()["items"]]
    assert set(ids) >= {"one", "two"} and r.json()["total"] >= 2
    r = await stack.http.get("/v1/definitions", params={"limit": 1})
    assert len(r.json()["items"]) == 1


async def test_id_mismatch_is_422(stack: Stack) -> None:
    r = await stack.http.put("/v1/definitions/other", json=body("greet"))
    assert r.status_code == 422
    assert "greet" in r.json()["detail"] and "other" in r.json()["detail"]


async def test_unknown_definition_is_404(stack: Stack) -> None:
    r = await stack.http.get("/v1/definitions/ghost")
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    assert (await stack.http.get("/v1/definitions/ghost/versions")).status_code == 404
    assert (await stack.http.delete("/v1/definitions/ghost")).status_code == 404


async def test_bad_bodies_are_422(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/x", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = await stack.http.put(
        "/v1/definitions/x", content=b"- a\n- b\n", headers={"content-type": "application/yaml"}
    )
    assert r.status_code == 422 and "mapping" in r.json()["detail"]


BROKEN = {
    "id": "broken",
    "tools": ["http_request", "no_such_tool"],
    "steps": [
        {"id": "a", "action": "llm_call", "prompt": "{{ input.x ", "next": "ghost"},
        {"id": "a", "action": "notify", "message": "dup"},
        {"id": "c", "action": "conditional", "condition": "1 +", "then": "end"},
        {"id": "d", "action": "tool_call", "tool": "shell"},
    ],
}


async def test_validate_reports_every_problem_naming_steps(stack: Stack) -> None:
    r = await stack.http.post("/v1/definitions/validate", json=BROKEN)
    assert r.status_code == 422
    problems = r.json()["problems"]
    detail = r.json()["detail"]
    pairs = {(p["step_id"], p["message"].split(":")[0]) for p in problems}
    assert ("a", "duplicate step id") in pairs
    assert any(p["step_id"] == "a" and "ghost" in p["message"] for p in problems)
    assert any(p["step_id"] == "a" and "template error" in p["message"] for p in problems)
    assert any(p["step_id"] == "c" and "condition error" in p["message"] for p in problems)
    assert any(p["step_id"] == "d" and "'shell' is not allowed" in p["message"] for p in problems)
    assert any("unknown tool 'no_such_tool'" in p["message"] for p in problems)
    assert "step 'c'" in detail and "step 'd'" in detail
    # the same body is refused on save, and nothing is stored
    r = await stack.http.put("/v1/definitions/broken", json=BROKEN)
    assert r.status_code == 422 and len(r.json()["problems"]) == len(problems)
    assert (await stack.http.get("/v1/definitions/broken")).status_code == 404


async def test_validate_accepts_a_good_definition(stack: Stack) -> None:
    r = await stack.http.post("/v1/definitions/validate", json=body())
    assert r.status_code == 200 and r.json() == {"valid": True, "id": "greet", "problems": []}


async def test_sub_task_cycle_across_definitions_is_422(stack: Stack) -> None:
    leaf = {"id": "b", "steps": [{"id": "s", "action": "llm_call", "prompt": "b"}]}
    await stack.put_definition(leaf)
    a = {"id": "a", "steps": [{"id": "call-b", "action": "sub_task", "task": "b"}]}
    await stack.put_definition(a)
    b_calls_a = {"id": "b", "steps": [{"id": "call-a", "action": "sub_task", "task": "a"}]}
    r = await stack.http.put("/v1/definitions/b", json=b_calls_a)
    assert r.status_code == 422, r.text
    assert "sub-task cycle: b -> a -> b" in r.json()["detail"]
    missing = {"id": "c", "steps": [{"id": "x", "action": "sub_task", "task": "nowhere"}]}
    r = await stack.http.put("/v1/definitions/c", json=missing)
    assert r.status_code == 422 and "nowhere" in r.json()["detail"]


async def test_delete_keeps_running_runs_working(stack: Stack) -> None:
    slow = {
        "id": "slow",
        "steps": [
            {"id": "pause", "action": "wait", "duration": "2s"},
            {"id": "say", "action": "llm_call", "prompt": "still here"},
        ],
    }
    await stack.put_definition(slow)
    run = await stack.start("slow")
    r = await stack.http.delete("/v1/definitions/slow")
    assert r.status_code == 204
    assert (await stack.http.get("/v1/definitions/slow")).status_code == 404
    r = await stack.http.post("/v1/runs", json={"definition_id": "slow"})
    assert r.status_code == 404
    result = await stack.wait_result(run["run_id"], wait=60)
    assert result["status"] == "completed" and result["result"] == "still here"
    # saving it again starts a fresh history of versions
    r = await stack.http.put("/v1/definitions/slow", json=slow)
    assert r.status_code in (200, 201)
