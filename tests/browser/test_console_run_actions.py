"""The run page's other actions: priority, retry with changed input, rating, handoff to
an assignee, and comparing two runs."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import SignIn, shot
from tests.stack import Stack


async def test_priority_retry_rating_handoff_compare(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {
            "id": "echo",
            "inputs": {"word": {"required": True}, "hold": {"type": "string", "default": "0s"}},
            "steps": [
                {"id": "hold", "action": "wait", "duration": "30s"},
                {"id": "say", "action": "notify", "message": "{{ input.word }}"},
            ],
        }
    )
    await stack.put_definition(
        {
            "id": "quick",
            "inputs": {"word": {"required": True}},
            "steps": [{"id": "say", "action": "notify", "message": "{{ input.word }}"}],
        }
    )
    page = await sign_in("alice")

    slow = await stack.start("echo", input={"word": "hi"})
    await page.goto(f"/ui/runs/{slow['run_id']}")
    await page.get_by_label("Priority", exact=True).select_option("urgent")
    await page.get_by_role("button", name="Set priority").click()
    await expect(page.locator("#live .prio")).to_have_text("urgent", timeout=20_000)
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=20_000)

    first = await stack.start("quick", input={"word": "one"})
    await stack.wait_result(first["run_id"])
    await page.goto(f"/ui/runs/{first['run_id']}")
    await page.get_by_label("Retry with input (JSON)").fill('{"word": "two"}')
    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    retry_id = page.url.split("/ui/runs/")[1]
    assert retry_id != first["run_id"]
    retried = (await stack.http.get(f"/v1/runs/{retry_id}")).json()
    assert retried["input"] == {"word": "two"} and retried["retry_of"] == first["run_id"]

    await page.get_by_label("Comment", exact=True).fill("better")
    await page.get_by_role("button", name="Rate up").click()
    await expect(page.locator("form.inline").filter(has_text="Rating")).to_contain_text("1 up")

    await page.get_by_label("Kind").select_option("handoff")
    await page.get_by_label("Hand off to (for a handoff)").fill("bob")
    await page.get_by_label("Comment (type @ to mention someone)").fill("yours now")
    await page.get_by_role("button", name="Post").click()
    await expect(page.locator("#thread")).to_contain_text("assigned to bob")

    await page.get_by_label("Compare with run").fill(first["run_id"])
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("table.compare")).to_contain_text(first["run_id"])
    await expect(page.locator("tr[data-step=say]")).to_contain_text("changed")
    await shot(page, "compare")
