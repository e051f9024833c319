"""Approving with an edit in the console: the approval page shows the gated step's output
in a textarea; what the approver changes there becomes that step's output for the steps
after (docs/approvals.md#approving-with-an-edit)."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import SignIn, put_shared, shot, start_shared
from tests.stack import Stack

NOTES: dict[str, Any] = {
    "id": "notes-edit",
    "steps": [
        {"id": "draft", "action": "llm_call", "prompt": "Notes for v2"},
        {"id": "gate", "action": "approval", "approvers": ["alice"]},
        {"id": "ship", "action": "llm_call", "prompt": "Ship: {{ steps.draft.output }}"},
    ],
}


async def awaiting(stack: Stack, run_id: str) -> None:
    for _ in range(150):
        state = (await stack.http.get(f"/v1/runs/{run_id}")).json()
        if state["status"] == "awaiting_approval":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} never waited for approval")


async def test_approve_with_an_edit_from_the_approval_page(sign_in: SignIn, stack: Stack) -> None:
    await put_shared(stack, NOTES)
    run_ids = [(await start_shared(stack, "notes-edit"))["run_id"] for _ in range(2)]
    for run_id in run_ids:
        await awaiting(stack, run_id)
    alice = await sign_in("alice")
    await alice.goto("/ui/approvals")

    edited, untouched = run_ids
    state = (await stack.http.get(f"/v1/runs/{edited}")).json()
    draft = next(s["output"] for s in state["steps"] if s["id"] == "draft")
    assert "Notes for v2" in draft  # what the model answered
    item = alice.locator(f"article[data-run='{edited}']")
    box = item.get_by_label("Output of step draft", exact=False)
    await expect(box).to_have_value(draft)
    await box.fill("Notes for v2, corrected by alice")
    await shot(alice, "approval-edit")
    await item.get_by_role("button", name="Approve").click()
    await expect(alice.locator(f"article[data-run='{edited}']")).to_have_count(0)

    # approving without touching the textarea is no edit
    await (
        alice.locator(f"article[data-run='{untouched}']")
        .get_by_role("button", name="Approve")
        .click()
    )
    await expect(alice.locator("#no-approvals")).to_be_visible()

    res = await stack.wait_result(edited)
    steps = {s["id"]: s for s in res["state"]["steps"]}
    assert "Ship: Notes for v2, corrected by alice" in steps["ship"]["output"]
    assert steps["draft"]["edited_by"] == "alice"
    assert steps["draft"]["original_output"] == draft
    res = await stack.wait_result(untouched)
    steps = {s["id"]: s for s in res["state"]["steps"]}
    assert f"Ship: {draft}" in steps["ship"]["output"] and steps["draft"]["edited_by"] is None
