"""Approvals in the console: the inbox with its count, the prompt and earlier outputs,
deciding as an approver; no buttons for anyone else, and their forged POST refused."""

from __future__ import annotations

import asyncio
import html
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import SignIn, csrf_of, put_shared, shot, start_shared
from tests.stack import Stack

GATED: dict[str, Any] = {
    "id": "release",
    "steps": [
        {"id": "draft", "action": "notify", "message": "notes for <b>v2</b>"},
        {
            "id": "gate",
            "action": "approval",
            "approvers": ["alice"],
            "prompt": "Ship <b>v2</b>? {{ steps.draft.output.message }}",
            "reminder": "1h",
        },
        {"id": "ship", "action": "notify", "message": "shipped"},
    ],
}


async def awaiting(stack: Stack, run_id: str) -> None:
    for _ in range(150):  # until the run waits at the approval step
        state = (await stack.http.get(f"/v1/runs/{run_id}")).json()
        if state["status"] == "awaiting_approval":
            break
        await asyncio.sleep(0.2)
    assert state["status"] == "awaiting_approval"


async def test_approve_from_the_inbox(sign_in: SignIn, stack: Stack) -> None:
    await put_shared(stack, GATED)
    run = await start_shared(stack, "release")
    run_id = run["run_id"]
    await awaiting(stack, run_id)

    # bob shares alice's team, may read and write, but is not an approver of this step
    bob = await sign_in("bob")
    await bob.goto("/ui/approvals")
    await expect(bob.locator("#no-approvals")).to_be_visible()
    await expect(bob.get_by_role("button", name="Approve")).to_have_count(0)
    await bob.goto(f"/ui/runs/{run_id}")
    await expect(bob.locator("#no-decide")).to_be_visible()
    await expect(bob.get_by_role("button", name="Approve")).to_have_count(0)
    await shot(bob, "approval-non-approver")
    forged = await bob.context.request.post(
        f"{stack.url}/ui/approvals/decide",
        form={"csrf": await csrf_of(bob), "run_id": run_id, "decision": "approve"},
    )
    assert forged.status == 403, await forged.text()
    # the workflow's own answer to the forged decision (its update validator refuses it)
    assert "'bob' is not an approver of step 'gate'" in html.unescape(await forged.text())

    alice = await sign_in("alice")
    await expect(alice.locator("#nav-approvals .count")).to_have_text("1")
    r = await alice.context.request.get(f"{stack.url}/ui/approvals/count")
    assert r.status == 200 and ">1</span>" in await r.text()
    await alice.goto("/ui/approvals")
    item = alice.locator(f"article[data-run='{run_id}']")
    await expect(item).to_contain_text("Ship <b>v2</b>? notes for <b>v2</b>")  # escaped text
    await expect(item).to_contain_text("notes for <b>v2</b>")  # the earlier step's output
    await expect(item).to_contain_text("left")  # time remaining
    await shot(alice, "approvals-inbox")
    await item.get_by_label("Comment").fill("looks good")
    await item.get_by_role("button", name="Approve").click()
    await expect(alice.locator("#no-approvals")).to_be_visible()
    result = await stack.wait_result(run_id)
    assert result["status"] == "completed"
    votes = [e for e in result["state"]["events"] if e["type"] == "approval.decided"]
    assert votes and votes[0]["data"].get("approver") == "alice"


async def test_an_approver_outside_the_team_decides_but_may_not_change(
    sign_in: SignIn, stack: Stack
) -> None:
    """carol shares no team with alice: she sees alice's run only while it waits for her
    decision, without the forms to change it (the API answers 403 to those)."""
    gated = {**GATED, "id": "release-carol"}
    steps: list[dict[str, Any]] = GATED["steps"]
    gated["steps"] = [{**s, "approvers": ["carol"]} if s["id"] == "gate" else s for s in steps]
    await stack.put_definition(gated)
    run_id = (await stack.start("release-carol"))["run_id"]
    await awaiting(stack, run_id)

    carol = await sign_in("carol")
    await expect(carol.locator("#nav-approvals .count")).to_have_text("1", timeout=30_000)
    await carol.goto("/ui/approvals")
    item = carol.locator(f"article[data-run='{run_id}']")
    await expect(item).to_contain_text("Ship <b>v2</b>?", timeout=30_000)
    await expect(item.locator(".owner")).to_have_text("alice")
    await carol.goto(f"/ui/runs/{run_id}")
    await expect(carol.locator("#run-owner")).to_have_text("alice")
    await expect(carol.locator("#no-change")).to_be_visible()
    for name in ("Cancel run", "Set priority", "Send"):
        await expect(carol.get_by_role("button", name=name)).to_have_count(0)
    await shot(carol, "approval-outside-team")
    forged = await carol.context.request.post(
        f"{stack.url}/ui/run/cancel",
        form={"csrf": await csrf_of(carol), "run_id": run_id, "reason": "mine now"},
    )
    assert forged.status == 403, await forged.text()
    api = await stack.http.post(
        f"/v1/runs/{run_id}/cancel", headers={"Authorization": "Bearer carol-key"}, json={}
    )
    assert api.status_code == 403, api.text
    assert api.json()["detail"] in html.unescape(await forged.text())

    await carol.get_by_role("button", name="Approve").click()
    result = await stack.wait_result(run_id)
    assert result["status"] == "completed"
    # decided: the run is no longer carol's to see, in the console as on the API
    await carol.goto(f"/ui/runs/{run_id}")
    await expect(carol.locator("#error-detail")).to_have_text(f"run '{run_id}' not found")
    r = await stack.http.get(f"/v1/runs/{run_id}", headers={"Authorization": "Bearer carol-key"})
    assert r.status_code == 404, r.text


async def test_a_held_tool_call_shows_its_tool_and_arguments(sign_in: SignIn, stack: Stack) -> None:
    """A tool policy holds the agent's call: the inbox names the tool and its (masked)
    arguments, and approving there runs it (docs/approvals.md#tool-policies)."""
    call = {"id": "c1", "name": "record", "arguments": {"note": "refund <b>42</b>",
                                                        "api_token": "tok-very-secret-1"}}  # fmt: skip
    await put_shared(stack, {
        "id": "refunds", "tools": ["record"],
        "tool_policies": [{"tool": "record", "when": "args.note | contains('refund')",
                           "action": "approve", "approvers": ["alice"]}],
        "steps": [{"id": "agent", "action": "llm_call", "prompt": "Refund it.",
                   "model": {"provider": "scripted", "name": "script",
                             "script": [{"tool_calls": [call]}, {"text": "refunded"}]}}],
    })  # fmt: skip
    run_id = (await start_shared(stack, "refunds"))["run_id"]
    await awaiting(stack, run_id)
    alice = await sign_in("alice")
    await alice.goto("/ui/approvals")
    item = alice.locator(f"article[data-run='{run_id}']")
    await expect(item.locator(".tool-name")).to_have_text("record")
    await expect(item.locator(".tool-args")).to_contain_text("refund <b>42</b>")  # escaped
    await expect(item.locator(".tool-args")).not_to_contain_text("tok-very-secret-1")
    assert "tok-very-secret-1" not in await alice.content()
    await alice.goto(f"/ui/runs/{run_id}")
    await expect(alice.locator(".approval .tool-name")).to_have_text("record")
    assert "tok-very-secret-1" not in await alice.content()
    await shot(alice, "approval-tool-call")
    await alice.get_by_role("button", name="Approve").click()
    result = await stack.wait_result(run_id)
    assert result["status"] == "completed", result
    convo = result["state"]["steps"][0]["conversation"]
    assert any(m["role"] == "tool" and "recorded" in (m["content"] or "") for m in convo)
