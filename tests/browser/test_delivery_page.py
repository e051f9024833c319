"""The decision page of a delivered link in a real browser (docs/approvals.md#delivery):
no cookies, no sign-in, a form that works under the page's strict CSP; the link is
used up by the decision."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect
from temporalio.testing import WorkflowEnvironment

from tests.browser.conftest import shot
from tests.integration.test_delivery import ANN, delivering, finished, hook_links


async def test_an_approver_decides_on_the_page_of_their_link(
    browser: Browser, dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with delivering(dev_env, task_queue, tmp_path) as (s, received, _):
        body = {"id": "ship", "steps": [
            {"id": "review", "action": "approval", "approvers": ["ann@example.com"],
             "prompt": "Ship <b>v2</b>?", "timeout": "1h"},
            {"id": "ask", "action": "input", "timeout": "1h", "schema": {
                "type": "object", "required": ["reason"],
                "properties": {"reason": {"type": "string", "minLength": 3},
                               "level": {"enum": ["low", "high"], "default": "low"}}}},
        ]}  # fmt: skip
        assert (await s.http.put("/v1/definitions/ship", json=body, headers=ANN)).is_success
        r = await s.http.post("/v1/runs", json={"definition_id": "ship"}, headers=ANN)
        run_id = r.json()["run_id"]
        token = (await hook_links(received, "approvals"))["ann@example.com"]

        ctx = await browser.new_context(base_url=s.url)
        try:
            page = await ctx.new_page()
            await page.goto(f"/v1/links/{token}")
            await expect(page.get_by_role("heading")).to_have_text("Approval requested")
            await expect(page.locator("pre")).to_have_text("Ship <b>v2</b>?")  # shown, escaped
            await expect(page.locator("p.meta").first).to_contain_text(
                re.compile(r"works\s+once, and expires at \d{4}-\d\d-\d\d \d\d:\d\d UTC\.")
            )
            await page.get_by_label("Comment (optional)").fill("from the browser")
            await shot(page, "delivery-request")
            await page.get_by_role("button", name="Approve").click()
            await expect(page.get_by_role("heading")).to_have_text("Thank you")
            await expect(page.locator("body")).to_contain_text("1 of 1 approvals")
            await shot(page, "delivery-approved")
            again = await page.goto(f"/v1/links/{token}")
            assert again is not None and again.status == 410

            # the run goes on to its input step, whose request has a link of its own
            token = (await hook_links(received, "inputs"))["ann@example.com"]
            await page.goto(f"/v1/links/{token}")
            await expect(page.get_by_role("heading")).to_have_text("Input requested")
            await page.get_by_label("reason").fill("no")
            await page.get_by_role("button", name="Submit").click()
            await expect(page.locator("body")).to_contain_text("reason")  # 422 from the run
            await page.goto(f"/v1/links/{token}")  # refused values leave the link usable
            await page.get_by_label("reason").fill("all good")
            await page.get_by_label("level").select_option("high")
            await page.get_by_role("button", name="Submit").click()
            await expect(page.locator("body")).to_contain_text("Your input was accepted")
        finally:
            await ctx.close()
        state = await finished(s, run_id)
        assert state["status"] == "completed", state
        assert state["steps"][0]["output"]["comment"] == "from the browser"
        assert state["steps"][1]["output"] == {"reason": "all good", "level": "high"}
