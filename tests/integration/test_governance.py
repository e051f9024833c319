"""Budgets, `input` steps, re-running from a step and promoting a version, through the
real gateway and worker on the dev server, with the scripted model priced in settings so
its calls cost something (docs/runs.md, docs/models-and-tools.md#budgets).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, run_stack
from workflows.contracts import LLM_ACTIVITY

# $0.01 a token: an echo call of a 3-word prompt is 3 in + 3 out = $0.06
PRICES = {"scripted/echo": (10_000.0, 10_000.0)}
KEYS: list[dict[str, Any]] = [
    {"key": "k-wes", "identity": "wes", "scopes": ["tasks:read", "tasks:write"]},
    {"key": "k-ann", "identity": "ann", "scopes": ["tasks:read", "tasks:approve", "tasks:admin"]},
    {"key": "k-eve", "identity": "eve", "scopes": ["tasks:read", "tasks:write"]},
    {"key": "k-kim", "identity": "kim", "scopes": ["tasks:read", "tasks:write"]},
]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def spender(def_id: str, **limits: Any) -> dict[str, Any]:
    return {
        "id": def_id,
        "limits": limits,
        "steps": [
            {"id": "one", "action": "llm_call", "prompt": "Hi there friend"},
            {"id": "two", "action": "llm_call", "prompt": "and again {{ steps.one.output }}"},
        ],
    }


async def wait_status(s: Stack, run_id: str, status: str, key: str = "k-wes") -> dict[str, Any]:
    state: dict[str, Any] = {}
    for _ in range(300):
        r = await s.http.get(f"/v1/runs/{run_id}", headers=auth(key))
        state = r.json()
        if state.get("status") == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never became {status}: {state.get('status')}")


async def start(s: Stack, def_id: str, key: str = "k-wes", **body: Any) -> str:
    r = await s.http.post("/v1/runs", json={"definition_id": def_id, **body}, headers=auth(key))
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


async def result(s: Stack, run_id: str) -> dict[str, Any]:
    r = await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def model_calls(s: Stack, run_id: str) -> list[str]:
    """The summaries of the model-call activities in the run's history."""
    found = []
    async for e in s.client.get_workflow_handle(run_id).fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == LLM_ACTIVITY:
                found.append(e.user_metadata.summary.data.decode())
    return found


async def test_budget_fails_or_parks_until_raised(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, prices=PRICES) as s:
        for d in (
            spender("capped", max_cost_usd=0.05),
            spender("parked", max_cost_usd=0.05, on_budget="approve"),
            spender("roomy", max_cost_usd=100, max_tokens=10_000),
        ):
            r = await s.http.put(f"/v1/definitions/{d['id']}", json=d, headers=auth("k-wes"))
            assert r.status_code == 201, r.text

        # fail: the first call costs $0.06 > $0.05, the second step never runs
        capped = await start(s, "capped")
        res = await result(s, capped)
        assert res["status"] == "failed"
        assert res["error"]["code"] == "BUDGET_EXCEEDED", res["error"]
        assert res["error"]["step_id"] == "one"
        steps = {x["id"]: x for x in res["state"]["steps"]}
        assert steps["two"]["status"] in ("pending", "skipped")
        assert res["state"]["usage"]["cost_usd"] > 0.05
        assert len(await model_calls(s, capped)) == 1

        # usage streams live: a usage.updated event per model call
        roomy = await start(s, "roomy")
        res = await result(s, roomy)
        assert res["status"] == "completed", res
        r = await s.http.get(
            f"/v1/runs/{roomy}/events", headers={**auth("k-wes"), "Accept": "application/json"}
        )
        usage = [e for e in r.json()["events"] if e["type"] == "usage.updated"]
        assert len(usage) == 2
        assert usage[-1]["data"]["cost_usd"] == res["state"]["usage"]["cost_usd"]

        # park: the run waits for an approver to raise its budget
        parked = await start(s, "parked")
        state = await wait_status(s, parked, "awaiting_approval")
        assert state["budget"]["exceeded"].startswith("run budget reached")
        assert state["steps"][0]["status"] == "running"
        spent = state["usage"]["cost_usd"]
        # the owner with write scope only may not raise it
        r = await s.http.post(
            f"/v1/runs/{parked}/budget", json={"max_cost_usd": 10}, headers=auth("k-wes")
        )
        assert r.status_code == 403, r.text
        # a raise that is not above what was spent is refused by the workflow
        r = await s.http.post(
            f"/v1/runs/{parked}/budget", json={"max_cost_usd": spent / 2}, headers=auth("k-ann")
        )
        assert r.status_code == 422, r.text
        assert "not above" in r.json()["detail"]
        await asyncio.sleep(0.5)
        assert (await wait_status(s, parked, "awaiting_approval"))["budget"]["raises"] == []
        r = await s.http.post(
            f"/v1/runs/{parked}/budget",
            json={"max_cost_usd": 10, "comment": "worth it"},
            headers=auth("k-ann"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["max_cost_usd"] == 10
        res = await result(s, parked)
        assert res["status"] == "completed", res
        assert res["state"]["budget"]["raises"][0]["by"] == "ann"
        assert len(await model_calls(s, parked)) == 2
        # raising the budget of a finished run: 409
        r = await s.http.post(
            f"/v1/runs/{parked}/budget", json={"max_cost_usd": 20}, headers=auth("k-ann")
        )
        assert r.status_code == 409, r.text


async def test_step_limit_fails_the_step(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path) as s:
        d = spender("steplim")
        d["steps"][1]["limits"] = {"max_tokens": 4}
        await s.put_definition(d)
        run = await s.start("steplim")
        res = await s.wait_result(run["run_id"])
        assert res["status"] == "failed"
        assert res["error"]["code"] == "BUDGET_EXCEEDED"
        assert res["error"]["step_id"] == "two"
        assert res["state"]["steps"][0]["status"] == "completed"


FORM: dict[str, Any] = {
    "id": "form",
    "steps": [
        {
            "id": "ask",
            "action": "input",
            "prompt": "Who should we greet?",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "count": {"type": "integer", "default": 3},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        },
        {
            "id": "greet",
            "action": "llm_call",
            "prompt": "Hello {{ steps.ask.output.name }} x{{ steps.ask.output.count }}",
        },
    ],
}


async def test_input_step_through_the_api(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        r = await s.http.put("/v1/definitions/form", json=FORM, headers=auth("k-wes"))
        assert r.status_code == 201, r.text
        bad = {
            "id": "badform",
            "steps": [{"id": "ask", "action": "input", "schema": {"type": "nope"}}],
        }
        r = await s.http.put("/v1/definitions/badform", json=bad, headers=auth("k-wes"))
        assert r.status_code == 422, r.text
        assert "JSON Schema" in r.text

        run_id = await start(s, "form")
        state = await wait_status(s, run_id, "awaiting_input")
        assert state["pending_inputs"]["ask"]["prompt"] == "Who should we greet?"
        url = f"/v1/runs/{run_id}/input/ask"
        # invalid: 422 naming each field, from the workflow's validator
        r = await s.http.post(url, json={"value": {"count": "many"}}, headers=auth("k-wes"))
        assert r.status_code == 422, r.text
        fields = {p["field"] for p in r.json()["problems"]}
        assert fields == {"name", "count"}, r.json()
        r = await s.http.post(url, json={"value": "Ada"}, headers=auth("k-wes"))
        assert r.status_code == 422, r.text
        # the CLI says the same and exits 2
        env = {**os.environ, "DURATASK_TOKEN": "k-wes", "DURATASK_PUBLIC_URL": s.url,
               "COLUMNS": "200"}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "run", "input", run_id, "ask",
            "--value", '{"name": 7}', cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, out.decode()
        assert "name: 7 is not of type 'string'" in out.decode()
        # a step that is not waiting: 409; someone who may not act on the run: 404
        r = await s.http.post(
            f"/v1/runs/{run_id}/input/greet", json={"value": {}}, headers=auth("k-wes")
        )
        assert r.status_code == 409, r.text
        r = await s.http.post(url, json={"value": {"name": "Eve"}}, headers=auth("k-eve"))
        assert r.status_code == 404, r.text
        # valid: the value (with its default) is the step's output for the next step
        r = await s.http.post(url, json={"value": {"name": "Ada"}}, headers=auth("k-wes"))
        assert r.status_code == 200, r.text
        assert r.json()["value"] == {"name": "Ada", "count": 3}
        res = await result(s, run_id)
        assert res["status"] == "completed", res
        assert res["result"] == "Hello Ada x3"
        events = [e["type"] for e in res["state"]["events"]]
        assert "run.awaiting_input" in events and "input.received" in events


def five_steps(def_id: str, last: str = "five: {{ steps.four.output }}") -> dict[str, Any]:
    prompts = [
        "one: {{ input.topic }}",
        "two: {{ steps.one.output }}",
        "three: {{ steps.two.output }}",
        "four: {{ steps.three.output }}",
        last,
    ]
    names = ["one", "two", "three", "four", "five"]
    return {
        "id": def_id,
        "inputs": {"topic": {"type": "string", "default": "tea"}},
        "steps": [
            {"id": n, "action": "llm_call", "prompt": p}
            for n, p in zip(names, prompts, strict=True)
        ],
    }


async def test_rerun_from_a_step_and_promote(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path) as s:
        await s.put_definition(five_steps("five"))
        first = (await s.start("five"))["run_id"]
        original = await s.wait_result(first)
        assert original["status"] == "completed"
        assert len(await model_calls(s, first)) == 5

        r = await s.http.post(f"/v1/runs/{first}/rerun", json={"from_step": "three"})
        assert r.status_code == 201, r.text
        again = r.json()["run_id"]
        res = await s.wait_result(again)
        assert res["status"] == "completed", res
        assert res["result"] == original["result"]
        calls = await model_calls(s, again)
        assert len(calls) == 3, calls
        assert not any(c.startswith(("one:", "two:")) for c in calls), calls
        steps = {x["id"]: x for x in res["state"]["steps"]}
        assert steps["one"]["reused"] and steps["two"]["reused"]
        assert not steps["three"]["reused"] and steps["three"]["model_calls"] == 1
        assert res["state"]["rerun_of"] == first
        assert res["state"]["rerun_from"] == "three"
        reused = [e for e in res["state"]["events"] if e["type"] == "step.reused"]
        assert [e["step_id"] for e in reused] == ["one", "two"]

        # the CLI does the same
        env = {**os.environ, "DURATASK_PUBLIC_URL": s.url, "COLUMNS": "200"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "run", "rerun", first, "--from", "three",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        assert "from step three (reusing one, two)" in out.decode()

        # a fixed definition (v2) re-run from the last step: only it runs again
        await s.put_definition(five_steps("five", last="fixed: {{ steps.four.output }}"))
        r = await s.http.post(
            f"/v1/runs/{first}/rerun", json={"from_step": "five", "definition_version": 2}
        )
        assert r.status_code == 201, r.text
        fixed = await s.wait_result(r.json()["run_id"])
        assert fixed["state"]["definition_version"] == 2
        assert fixed["result"].startswith("fixed: four:")
        assert len(await model_calls(s, fixed["run_id"])) == 1

        # bad requests
        r = await s.http.post(f"/v1/runs/{first}/rerun", json={"from_step": "nine"})
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "from_step"
        r = await s.http.post(f"/v1/runs/{first}/rerun", json={"from_step": "one", "x": 1})
        assert r.status_code == 422
        r = await s.http.post("/v1/runs/run-nope/rerun", json={"from_step": "one"})
        assert r.status_code == 404

        # promote v1: it becomes v3, and new runs use it
        r = await s.http.post("/v1/definitions/five/versions/1/promote")
        assert r.status_code == 201, r.text
        assert r.json()["version"] == 3
        r = await s.http.post("/v1/definitions/five/versions/3/promote")
        assert r.status_code == 200, r.text  # already the latest content
        r = await s.http.post("/v1/definitions/five/versions/9/promote")
        assert r.status_code == 404, r.text
        latest = await s.wait_result((await s.start("five"))["run_id"])
        assert latest["state"]["definition_version"] == 3
        assert latest["result"] == original["result"]


async def test_daily_budgets_per_owner_and_definition(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(
        dev_env,
        task_queue,
        tmp_path,
        api_keys=KEYS,
        prices=PRICES,
        budget_daily_per_owner={"max_cost_usd": 0.10},
        budget_daily_per_definition={"capd": {"max_tokens": 5}},
    ) as s:
        one = {"steps": [{"id": "one", "action": "llm_call", "prompt": "Hi there friend"}]}
        for def_id, key in (("daily", "k-wes"), ("daily-eve", "k-eve"), ("capd", "k-kim")):
            r = await s.http.put(
                f"/v1/definitions/{def_id}", json={"id": def_id, **one}, headers=auth(key)
            )
            assert r.status_code == 201, r.text
        # wes: $0.06 of $0.10 today, then $0.12: the second run fails
        first = await result(s, await start(s, "daily"))
        assert first["status"] == "completed", first
        second = await result(s, await start(s, "daily"))
        assert second["status"] == "failed"
        assert second["error"]["code"] == "BUDGET_EXCEEDED"
        assert "daily budget reached: owner 'wes' today" in second["error"]["message"]
        # eve's spending is her own
        r = await s.http.get(
            f"/v1/runs/{await start(s, 'daily-eve', key='k-eve')}/result",
            params={"wait": 30},
            headers=auth("k-eve"),
        )
        assert r.json()["status"] == "completed", r.text
        # a definition's own daily limit: 6 tokens of 5
        r = await s.http.get(
            f"/v1/runs/{await start(s, 'capd', key='k-kim')}/result",
            params={"wait": 30},
            headers=auth("k-kim"),
        )
        assert r.json()["status"] == "failed", r.text
        assert "definition 'capd' today" in r.json()["error"]["message"]
