"""The other pages: definitions with their YAML and problems on their lines, insights
charts, paging the runs list with Temporal's page tokens, and labelled controls."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, expect

from tests.browser.conftest import SignIn, shot
from tests.stack import Stack

UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML)"""


async def unlabelled(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(UNLABELLED)
    return found


async def test_definition_yaml_problems_and_paging(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {"id": "tiny", "steps": [{"id": "n", "action": "notify", "message": "hi"}]}
    )
    runs = await asyncio.gather(*(stack.start("tiny") for _ in range(12)))
    await asyncio.gather(*(stack.wait_result(r["run_id"]) for r in runs))
    page = await sign_in("alice")

    # runs, 5 a page: three pages through Temporal's page tokens, none repeated
    await page.goto("/ui?size=5&definition_id=tiny&since=1h")
    seen: list[str] = []
    for _ in range(3):
        ids = await page.locator("tbody#run-rows tr[data-run]").evaluate_all(
            "rows => rows.map(r => r.dataset.run)"
        )
        assert 0 < len(ids) <= 5
        seen += ids
        nxt = page.locator("#next-page")
        if await nxt.count() == 0:
            break
        await nxt.click()
    assert sorted(seen) == sorted(r["run_id"] for r in runs)
    await page.goto("/ui?since=yesterday-ish")
    await expect(page.locator("#error-detail")).to_contain_text("since must be one of")

    await page.goto("/ui/definitions/tiny")
    await expect(page.locator("ol.yaml")).to_contain_text("action: notify")
    assert await unlabelled(page) == []
    await page.goto("/ui/definitions")
    await page.get_by_label("YAML").fill(
        "id: demo\nsteps:\n  - id: first\n    action: notify\n    message: hi\n    next: nowhere\n"
    )
    await page.get_by_role("button", name="Check").click()
    bad = page.locator("ol.yaml li.has-problem")
    await expect(bad).to_have_count(1)
    await expect(bad).to_contain_text("next: nowhere")
    await expect(bad.locator(".problem")).to_contain_text("unknown step 'nowhere'")
    await shot(page, "definition-check")

    await page.goto("/ui/insights?window=24h")
    await expect(page.locator("#success-rate")).to_have_text("100%")
    await expect(page.locator("figure.timechart")).to_have_count(5)
    await expect(page.locator("figure.timechart svg rect.bar").first).to_be_visible()
    await expect(page.locator("svg[aria-label='Runs by status']")).to_contain_text("completed")
    await shot(page, "insights")

    for url in ("/ui", "/ui/approvals", "/ui/schedules", "/ui/insights",
                f"/ui/runs/{runs[0]['run_id']}"):  # fmt: skip
        await page.goto(url)
        assert await unlabelled(page) == [], url
