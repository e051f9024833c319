"""Approvals in the console: the inbox with its count, the prompt and earlier outputs,
deciding as an approver; no buttons for anyone else, and their forged POST refused."""

from __future__ import annotations

import asyncio
import html

from playwright.async_api import expect

from tests.browser.conftest import SignIn, csrf_of, shot
from tests.stack import Stack

GATED = {
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


async def test_approve_from_the_inbox(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(GATED)
    run = await stack.start("release")
    run_id = run["run_id"]
    for _ in range(100):  # until the run waits at the approval step
        state = (await stack.http.get(f"/v1/runs/{run_id}")).json()
        if state["status"] == "awaiting_approval":
            break
        await asyncio.sleep(0.2)
    assert state["status"] == "awaiting_approval"

    # bob may read and write, but is not an approver of this step
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
    assert "'bob' may not decide this approval" in html.unescape(await forged.text())

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
