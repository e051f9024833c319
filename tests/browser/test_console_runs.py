"""The console's runs: start from the generated form and watch it finish live, follow a
streaming model, the parallel graph, steering, the thread, cancelling a parent with
its children, and model output rendered as text."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.conftest import SignIn, put_shared, shot, start_shared
from tests.stack import Stack


def scripted(*replies: dict[str, Any]) -> dict[str, Any]:
    return {"provider": "scripted", "name": "script", "script": list(replies)}


async def no_reload_marker(page: Page) -> None:
    await page.evaluate("window.__sameDocument = 'yes'")


async def same_document(page: Page) -> bool:
    return bool(await page.evaluate("window.__sameDocument === 'yes'"))


async def test_start_from_the_form_and_see_it_complete_live(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {
            "id": "greet",
            "name": "Greeter",
            "inputs": {
                "name": {"type": "string", "required": True, "description": "who to greet"},
                "times": {"type": "integer", "default": 2},
                "tone": {"type": "string", "enum": ["warm", "dry"], "default": "warm"},
            },
            "steps": [
                {
                    "id": "think",
                    "action": "llm_call",
                    "prompt": "Greet {{ input.name }}",
                    "model": scripted({"text": "Hello there, friend", "delay": 5}),
                },
                {
                    "id": "done",
                    "action": "notify",
                    "message": "{{ steps.think.output }} x{{ input.times }}",
                },
            ],
        }
    )
    page = await sign_in("alice")
    await page.goto("/ui/definitions")
    await page.get_by_role("link", name="greet").click()
    await page.get_by_label("name (required)").fill("Ada")
    await page.get_by_label("times").fill("3")
    await page.get_by_label("tone").select_option("dry")
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("h1")).to_contain_text("Run run-")
    await no_reload_marker(page)
    status = page.locator("#run-status")
    assert await status.text_content() != "completed"  # the model takes 5 s to answer
    await expect(status).to_have_text("completed", timeout=30_000)
    await expect(page.locator("#run-percent")).to_have_text("100%")
    await expect(page.locator("#timeline")).to_contain_text("run.completed")
    await expect(page.locator("#tokens")).to_contain_text("Hello there, friend")
    assert await same_document(page), "the page reloaded"
    run_id = page.url.split("/ui/runs/")[1]
    state = (await stack.http.get(f"/v1/runs/{run_id}")).json()
    assert state["input"] == {"name": "Ada", "times": 3, "tone": "dry"}
    assert state["status"] == "completed"
    await shot(page, "run-completed")
    await page.goto("/ui")
    row = page.locator(f"tr[data-run='{run_id}']")
    await expect(row).to_contain_text("completed")
    await shot(page, "runs-list")


async def test_follow_a_streaming_model(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {
            "id": "stream",
            "steps": [
                {
                    "id": "talk",
                    "action": "llm_call",
                    "prompt": "go",
                    "model": {"provider": "openai", "name": "slow"},
                }
            ],
        }
    )
    run = await stack.start("stream")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    tokens = page.locator("#tokens")
    await expect(tokens).to_contain_text("w2 ", timeout=30_000)
    first = await tokens.text_content() or ""
    # more keep arriving: a chunk after the last one shown (a loaded machine may show
    # several at once, so the next one is counted from what is there)
    last = max(int(w[1:]) for w in re.findall(r"w\d+", first))
    await expect(tokens).to_contain_text(f"w{last + 3} ", timeout=30_000)
    assert len(await tokens.text_content() or "") > len(first)
    await expect(page.locator("#events-mode")).to_have_text("(live)")
    await shot(page, "streaming")
    await page.get_by_label("Cancel reason").fill("seen enough")
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=30_000)


PARALLEL = {
    "id": "fanout",
    "steps": [
        {
            "id": "split",
            "action": "parallel",
            "branches": [
                {"name": "left", "steps": [{"id": "l", "action": "wait", "duration": "1s"}]},
                {"name": "right", "steps": [{"id": "r", "action": "wait", "duration": "2s"}]},
            ],
        },
        {"id": "after", "action": "notify", "message": "joined"},
    ],
}


async def test_parallel_graph_shows_branches_and_join(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(PARALLEL)
    run = await stack.start("fanout")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    left, right = (
        page.locator(".branch[data-branch=left]"),
        page.locator(".branch[data-branch=right]"),
    )
    await expect(left).to_be_visible()
    await expect(right).to_be_visible()
    await expect(page.locator(".join[data-join=split]")).to_be_visible()
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
    await expect(left).to_have_attribute("data-status", "completed")
    await expect(right).to_have_attribute("data-status", "completed")
    await expect(page.locator(".node[data-step=after]")).to_have_attribute(
        "data-status", "completed"
    )
    await shot(page, "parallel-graph")
    await left.get_by_role("link").click()  # the branch's child run
    await expect(page.locator("h1")).to_contain_text(f"{run['run_id']}/split/left")
    await expect(page.locator("#run-status")).to_have_text("completed")


async def test_cancel_a_parent_cancels_its_children(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {
            "id": "long",
            "steps": [
                {
                    "id": "split",
                    "action": "parallel",
                    "branches": [
                        {"name": "a", "steps": [{"id": "wa", "action": "wait", "duration": "5m"}]},
                        {"name": "b", "steps": [{"id": "wb", "action": "wait", "duration": "5m"}]},
                    ],
                }
            ],
        }
    )
    run = await stack.start("long")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    for name in ("a", "b"):
        await expect(page.locator(f".branch[data-branch={name}]")).to_have_attribute(
            "data-status", "running", timeout=30_000
        )
    await page.get_by_label("Cancel reason").fill("not needed")
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=30_000)
    for name in ("a", "b"):
        await expect(page.locator(f".branch[data-branch={name}]")).to_have_attribute(
            "data-status", "cancelled", timeout=30_000
        )
    await shot(page, "cancelled-parent")
    child = (await stack.http.get(f"/v1/runs/{run['run_id']}/split/a")).json()
    assert child["status"] == "cancelled"


async def test_steer_an_agent_from_the_box(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {
            "id": "chat",
            "steps": [
                {
                    "id": "talk",
                    "action": "llm_call",
                    "prompt": "Hello",
                    "model": scripted({"text": "one", "delay": 20}, {"text": "steered answer"}),
                }
            ],
        }
    )
    run = await stack.start("chat")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator("#run-status")).to_have_text("running", timeout=30_000)
    await page.get_by_label("steer now").check()
    await page.get_by_label("Message", exact=True).fill("Focus on the summary")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#timeline")).to_contain_text("Focus on the summary", timeout=30_000)
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
    await shot(page, "steered")
    state = (await stack.http.get(f"/v1/runs/{run['run_id']}")).json()
    got = [e for e in state["events"] if e["type"] == "intervention.received"]
    assert got and got[0]["data"] == {"mode": "steer", "sender": "alice"}


async def test_comment_with_a_mention(sign_in: SignIn, stack: Stack) -> None:
    await put_shared(
        stack, {"id": "note", "steps": [{"id": "n", "action": "notify", "message": "hi"}]}
    )
    run = await start_shared(stack, "note")  # bob comments as alice's team-mate
    await stack.wait_result(run["run_id"])
    page = await sign_in("bob")
    await page.goto(f"/ui/runs/{run['run_id']}")
    box = page.get_by_label("Comment (type @ to mention someone)")
    await box.click()
    await box.type("Please check this @al")
    suggestion = page.get_by_role("option", name="alice")
    await expect(suggestion).to_be_visible()
    await box.press("Enter")
    await expect(box).to_have_value("Please check this @alice ")
    await box.type("thanks")
    await page.get_by_role("button", name="Post").click()
    comment = page.locator(".comment").first
    await expect(comment).to_contain_text("Please check this @alice thanks")
    await expect(comment).to_contain_text("bob")
    await shot(page, "thread")
    thread = (await stack.http.get(f"/v1/runs/{run['run_id']}/comments")).json()
    assert [(c["author"], c["body"]) for c in thread["items"]] == [
        ("bob", "Please check this @alice thanks")
    ]


async def test_model_output_with_script_is_text(sign_in: SignIn, stack: Stack) -> None:
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    await stack.put_definition(
        {
            "id": "evil",
            "steps": [
                {
                    "id": "say",
                    "action": "llm_call",
                    "prompt": "hi",
                    # a pause before the reply: the page is open while the text streams
                    "model": scripted({"text": evil, "delay": 3}),
                }
            ],
        }
    )
    run = await stack.start("evil")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator("#tokens")).to_contain_text("<script>")  # live text, as text
    await stack.wait_result(run["run_id"])
    await stack.http.post(f"/v1/runs/{run['run_id']}/comments", json={"body": evil})
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator("#run-result")).to_have_text(evil)
    await expect(page.locator(".comment .body").first).to_have_text(evil)
    await expect(page.locator("#timeline")).to_contain_text("run.completed")
    await asyncio.sleep(0.5)
    assert await page.evaluate("window.__pwned === undefined")
    assert await page.locator("main script, main img").count() == 0
    await shot(page, "escaped-output")


async def test_timeline_resumes_after_a_drop_and_falls_back_to_polling(
    sign_in: SignIn, stack: Stack
) -> None:
    await stack.put_definition(PARALLEL)
    run = await stack.start("fanout")
    await stack.wait_result(run["run_id"])
    page = await sign_in("alice")
    requests: list[str] = []

    async def first_stream_dropped(route: Any) -> None:
        requests.append(route.request.url)
        if len(requests) > 1:
            await route.continue_()
            return
        # the first stream delivers events 0-2, then the connection drops
        resp = await route.fetch()
        body = (await resp.text()).split("\n\n")
        await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"},
                            body="\n\n".join(body[:3]) + "\n\n")  # fmt: skip

    await page.route("**/ui/run/events?*", first_stream_dropped)
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator("#timeline")).to_have_attribute("data-done", "true")
    offsets = await page.locator("#timeline li").evaluate_all(
        "items => items.map(i => Number(i.dataset.offset))"
    )
    assert offsets == sorted(set(offsets)) and offsets[0] == 0, offsets  # no gap, no repeat
    assert offsets == list(range(len(offsets)))
    assert "after=2" in requests[1], requests  # resumed after the last event it had

    # a stream that always fails: the page polls the same events instead
    poll = await page.context.new_page()

    polled: list[str] = []

    async def no_stream(route: Any) -> None:
        if "poll=1" in route.request.url:
            polled.append(route.request.url)
            await route.continue_()
        else:
            await route.fulfill(status=503, body="")

    await poll.route("**/ui/run/events?*", no_stream)
    await poll.goto(f"/ui/runs/{run['run_id']}")
    await expect(poll.locator("#timeline")).to_have_attribute("data-done", "true")
    await expect(poll.locator("#events-mode")).to_have_text("(ended)")
    assert await poll.locator("#timeline li").count() == len(offsets)
    assert polled, "the page never polled"


def call(name: str, id: str, **args: Any) -> dict[str, Any]:
    return {"id": id, "name": name, "arguments": args}


async def test_agent_plan_checklist_and_drift_alert(sign_in: SignIn, stack: Stack) -> None:
    script: list[dict[str, Any]] = [
        {"tool_calls": [call("plan", "p0", items=["gather", "analyse", "report"])], "delay": 2},
        {"tool_calls": [call("plan", "p1", done=[1])]},
        {"tool_calls": [call("add", "x1", a=1, b=1)]},
        {"tool_calls": [call("add", "x2", a=1, b=2)]},
        {"tool_calls": [call("add", "x3", a=1, b=3)], "delay": 2},
        # the plan advances only by the plan tool (a numbered list in prose is an answer)
        {"tool_calls": [call("plan", "p2", done=[2, 3])], "delay": 2},
        {"text": "1. [x] gather\n2. [x] analyse\n3. [x] report", "delay": 2},
    ]
    await stack.put_definition({
        "id": "planner", "tools": ["add", "plan"],
        "steps": [{"id": "agent", "action": "llm_call", "prompt": "Do the job.",
                   "model": scripted(*script)}],
    })  # fmt: skip
    run = await stack.start("planner")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    plan = page.locator("ul.plan li")
    await expect(plan).to_have_count(3, timeout=30_000)
    await expect(page.locator("p.drift")).to_contain_text("no plan progress", timeout=30_000)
    await expect(page.locator("#timeline [role=alert]")).to_contain_text("drift.alert")
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
    await expect(page.locator("ul.plan input:checked")).to_have_count(3)
    await expect(plan.nth(1)).to_contain_text("2. analyse")
    await shot(page, "agent-plan")


async def test_graph_of_a_conditional_and_a_sub_task(sign_in: SignIn, stack: Stack) -> None:
    # the child waits for alice's decision, so the test (not a timer racing a loaded
    # machine) decides how long the parent shows "waiting for sub-task"
    await stack.put_definition(
        {"id": "leaf", "steps": [{"id": "w", "action": "approval", "approvers": ["alice"]}]}
    )
    await stack.put_definition({
        "id": "tree",
        "inputs": {"deep": {"type": "boolean", "default": True}},
        "steps": [
            {"id": "route", "action": "conditional", "condition": "input.deep",
             "then": "child", "else": "skip"},
            {"id": "child", "action": "sub_task", "task": "leaf", "next": "end"},
            {"id": "skip", "action": "notify", "message": "skipped"},
        ],
    })  # fmt: skip
    run = await stack.start("tree")
    page = await sign_in("alice")
    await page.goto(f"/ui/runs/{run['run_id']}")
    route = page.locator(".node[data-step=route]")
    await expect(route).to_contain_text("input.deep")
    await expect(route.locator(".cond")).to_contain_text("then → child")
    await expect(route.locator(".cond")).to_contain_text("else → skip")
    child = page.locator(".node[data-step=child]")
    await expect(child).to_have_class(re.compile(r"\bwaiting\b"), timeout=30_000)
    await expect(child).to_contain_text("waiting for sub-task")
    await shot(page, "sub-task-waiting")
    child_id = f"{run['run_id']}/child"
    r = await stack.http.post(f"/v1/runs/{child_id}/approvals", json={"decision": "approve"})
    for _ in range(150):  # the child may not wait at its approval step yet
        if r.status_code != 409:
            break
        await asyncio.sleep(0.2)
        r = await stack.http.post(f"/v1/runs/{child_id}/approvals", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
    await expect(page.locator(".node[data-step=skip]")).to_have_attribute("data-status", "skipped")
    await child.get_by_role("link").click()
    await expect(page.locator("h1")).to_contain_text(f"{run['run_id']}/child")
    await expect(page.locator(".node[data-step=w]")).to_have_attribute("data-status", "completed")
