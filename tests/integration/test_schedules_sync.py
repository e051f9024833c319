"""Job files synced into schedules, the `duratask schedule` CLI, and the model's own
scheduling tools, on the real dev server through the real gateway and worker."""

from __future__ import annotations

import asyncio
import os
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cli.client import Gateway
from cli.main import app as cli_app
from cli.schedules import sync_dir
from duratask.settings import get_settings
from tests.integration.test_schedules import HELLO, create, show, until
from tests.stack import Stack


def write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(textwrap.dedent(body))


async def sync(stack: Stack, folder: Path, dry_run: bool = False) -> list[str]:
    plan = await asyncio.to_thread(sync_dir, Gateway(url=stack.url), folder, dry_run)
    return plan.lines()


async def test_sync_creates_changes_and_deletes_from_job_files(
    stack: Stack, tmp_path: Path
) -> None:
    await stack.put_definition(HELLO)
    manual = await create(stack, definition_id="hello", cron="0 9 * * *", id="manual")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    write(jobs, "briefing.yaml", """\
        name: Morning briefing
        schedule: "0 8 * * 1-5"
        prompt: Summarise the day.
        model: scripted/echo
        """)  # fmt: skip
    write(jobs, "greet.yaml", """\
        name: greet
        schedule: 8am daily
        definition: hello
        input: {name: jobs}
        timezone: Europe/Paris
        """)  # fmt: skip

    assert await sync(stack, jobs, dry_run=True) == [
        "create sched-morning-briefing (briefing.yaml)",
        "create sched-greet (greet.yaml)",
    ]
    assert len((await stack.http.get("/v1/schedules")).json()["items"]) == 1  # dry run
    await sync(stack, jobs)
    brief = await show(stack, "sched-morning-briefing")
    assert brief["source"] == "sync" and brief["human"] == "Every weekday at 8:00"
    assert brief["definition_id"] == "job-morning-briefing"
    greet = await show(stack, "sched-greet")
    assert greet["human"] == "Daily at 8:00" and greet["input"] == {"name": "jobs"}
    assert greet["spec"] == {"text": "8am daily", "kind": "text", "expression": "0 8 * * *"}
    assert await sync(stack, jobs) == []  # idempotent

    # the inline prompt's definition runs
    await stack.http.post("/v1/schedules/sched-morning-briefing/trigger")

    async def ran() -> Any:
        return (await show(stack, "sched-morning-briefing"))["last_result"]

    assert await until(ran, what="briefing run") == "Summarise the day."

    # change one file, delete the other
    write(jobs, "briefing.yaml", """\
        name: Morning briefing
        every: 30m
        prompt: Summarise the day, briefly.
        model: scripted/echo
        paused: true
        """)  # fmt: skip
    (jobs / "greet.yaml").unlink()
    lines = await sync(stack, jobs)
    assert lines == ["update sched-morning-briefing: cron, every, paused", "delete sched-greet"]
    brief = await show(stack, "sched-morning-briefing")
    assert brief["human"] == "Every 30 minutes" and brief["paused"]
    defn = (await stack.http.get("/v1/definitions/job-morning-briefing")).json()
    assert defn["version"] == 2
    assert (await stack.http.get("/v1/schedules/sched-greet")).status_code == 404
    # the schedule not created by sync is untouched
    assert (await show(stack, manual["id"]))["paused"] is False
    (jobs / "briefing.yaml").unlink()
    assert await sync(stack, jobs) == ["delete sched-morning-briefing"]
    ids = [s["id"] for s in (await stack.http.get("/v1/schedules")).json()["items"]]
    assert ids == [manual["id"]]


def _cli(url: str, *args: str) -> Any:
    os.environ["DURATASK_PUBLIC_URL"] = url
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli_app, list(args))
    finally:
        del os.environ["DURATASK_PUBLIC_URL"]
        get_settings.cache_clear()


async def test_cli_commands(stack: Stack, tmp_path: Path) -> None:
    await stack.put_definition(HELLO)

    async def cli(*args: str) -> Any:
        return await asyncio.to_thread(_cli, stack.url, *args)

    r = await cli("schedule", "create", "hello", "--text", "mondays at 14:00", "--id", "weekly",
                  "-i", "name=cli")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "sched-weekly: Every Mon at 14:00" in r.output
    r = await cli("schedule", "list")
    assert r.exit_code == 0 and "sched-weekly" in r.output
    r = await cli("schedule", "list", "--json")
    assert r.exit_code == 0 and '"human": "Every Mon at 14:00"' in r.output
    r = await cli("schedule", "pause", "sched-weekly", "--note", "holiday")
    assert r.exit_code == 0 and (await show(stack, "sched-weekly"))["note"] == "holiday"
    r = await cli("schedule", "resume", "sched-weekly")
    assert r.exit_code == 0 and not (await show(stack, "sched-weekly"))["paused"]
    r = await cli("schedule", "trigger", "sched-weekly")
    assert r.exit_code == 0

    async def ran() -> Any:
        return (await show(stack, "sched-weekly"))["last_result"]

    assert await until(ran, what="triggered run") == "Hello, cli!"
    r = await cli("schedule", "show", "sched-weekly")
    assert r.exit_code == 0 and "Hello, cli!" in r.output and "completed" in r.output
    r = await cli("schedule", "create", "hello", "--cron", "0 9 * *")
    assert r.exit_code == 2 and "expected 5 fields" in r.output
    r = await cli("schedule", "show", "sched-nope")
    assert r.exit_code == 2 and "not found" in r.output
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    write(jobs, "a.yaml", "name: a\nevery: 1h\ndefinition: hello\n")
    r = await cli("schedule", "sync", str(jobs), "--dry-run")
    assert r.exit_code == 0 and "would create sched-a (a.yaml)" in r.output
    assert (await stack.http.get("/v1/schedules/sched-a")).status_code == 404
    write(jobs, "b.yaml", "name: b\ndefinition: hello\n")
    r = await cli("schedule", "sync", str(jobs))
    assert r.exit_code == 1 and "exactly one of schedule" in r.output
    r = await cli("schedule", "delete", "sched-weekly")
    assert r.exit_code == 0 and (await stack.http.get("/v1/schedules")).json()["items"] == []


async def tool_results(stack: Stack, run_id: str) -> list[str]:
    """What the tool activity returned to the model, read from the run's history."""
    found = []
    async for event in stack.client.get_workflow_handle(run_id).fetch_history_events():
        if event.HasField("activity_task_completed_event_attributes"):
            for p in event.activity_task_completed_event_attributes.result.payloads:
                text = p.data.decode()
                if '"output"' in text or '"error"' in text:
                    found.append(text)
    return [t for t in found if "truncated" in t]


def scheduling_agent(tool_args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "planner",
        "tools": ["schedule_task", "list_tasks", "cancel_task"],
        "steps": [
            {
                "id": "plan",
                "action": "llm_call",
                "prompt": "remind me",
                "model": {
                    "provider": "scripted",
                    "name": "script",
                    "script": [
                        {"tool_calls": [{"name": "schedule_task", "arguments": tool_args}]},
                        {"tool_calls": [{"name": "list_tasks", "arguments": {}}]},
                        {"text": "scheduled"},
                    ],
                },
            }
        ],
    }


async def test_model_schedules_a_task_that_then_fires(stack: Stack) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    args = {"description": "Say hi later", "prompt": "hi from the past", "execute_at": at}
    await stack.put_definition(scheduling_agent(args))
    run = await stack.start("planner", owner="alice")
    result = await stack.wait_result(run["run_id"])
    assert result["status"] == "completed", result
    assert result["result"] == "scheduled"
    tools = [(e["data"]["tool"], e["data"]["error"]) for e in result["state"]["events"]
             if e["type"] == "run.tool_completed"]  # fmt: skip
    assert tools == [("schedule_task", False), ("list_tasks", False)]
    listed = [t for t in await tool_results(stack, run["run_id"]) if '"tasks"' in t]
    assert listed and "Say hi later" in listed[0] and "PENDING" in listed[0]

    items = (await stack.http.get("/v1/schedules", params={"owner": "alice"})).json()["items"]
    assert len(items) == 1
    sched = items[0]
    assert sched["id"].startswith("sched-say-hi-later-") and sched["source"] == "tool"
    assert sched["owner"] == "alice" and sched["description"] == "Say hi later"
    assert sched["created_by"] == f"run:{run['run_id']}"
    assert sched["human"].startswith("Once at ")

    async def fired() -> dict[str, Any] | None:
        view = await show(stack, sched["id"])
        return view if view["last_result"] else None

    view = await until(fired, what="the model's task to fire")
    assert view["last_result"] == "hi from the past"
    assert view["status"] == "completed" and view["next_fire_times"] == []
    fired_run = (await stack.http.get(f"/v1/runs/{view['recent_runs'][0]['run_id']}")).json()
    assert fired_run["owner"] == "alice" and fired_run["trigger"] == "schedule"


async def test_scheduling_tools_say_when_scheduling_is_disabled(stack: Stack) -> None:
    await stack.put_definition(
        scheduling_agent({"description": "x", "prompt": "y", "cron": "0 9 * * *"})
    )
    await stack.http.put("/v1/scheduling", json={"enabled": False})
    run = await stack.start("planner", owner="bob")
    result = await stack.wait_result(run["run_id"])
    assert result["status"] == "completed"
    results = await tool_results(stack, run["run_id"])
    assert len(results) == 2 and all("scheduling is disabled" in r for r in results), results
    assert (await stack.http.get("/v1/schedules")).json()["items"] == []
