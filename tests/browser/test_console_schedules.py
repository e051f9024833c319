"""Schedules in the console: the description in words, next fire times, pause and
unpause, trigger now (a Proactive run), and the global switch."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from tests.browser.conftest import SignIn, shot
from tests.stack import Stack


async def test_schedules_page_pauses_and_triggers(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition(
        {"id": "digest", "steps": [{"id": "n", "action": "notify", "message": "digest"}]}
    )
    r = await stack.http.post(
        "/v1/schedules",
        json={
            "id": f"weekday-{stack.task_queue}",
            "definition_id": "digest",
            "cron": "0 9 * * 1-5",
            "description": "the morning digest",
        },
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    page = await sign_in("alice")
    await page.goto("/ui/schedules")
    row = page.locator(f"tr[data-schedule='{sid}']")
    await expect(row.locator(".human")).to_contain_text("Every weekday at 9:00")
    await expect(row.locator("time")).to_have_count(3)
    await row.get_by_role("button", name="Pause").click()
    await expect(row.locator(".status")).to_have_text("paused")
    assert (await stack.http.get(f"/v1/schedules/{sid}")).json()["paused"] is True
    await row.get_by_role("button", name="Unpause").click()
    await expect(row.locator(".status")).to_have_text("active")

    await row.get_by_role("button", name="Trigger now").click()
    runs: list[dict[str, object]] = []
    for _ in range(100):
        runs = (await stack.http.get("/v1/runs", params={"trigger": "schedule"})).json()["items"]
        if runs:
            break
        await asyncio.sleep(0.2)
    assert runs and runs[0]["definition_id"] == "digest"
    await page.reload()
    await expect(row).to_contain_text(str(runs[0]["run_id"]))
    await shot(page, "schedules")

    await page.goto("/ui?trigger=schedule")
    await expect(page.locator(f"tr[data-run='{runs[0]['run_id']}'] .proactive")).to_have_text(
        "Proactive"
    )

    await page.goto("/ui/schedules")
    await page.get_by_role("button", name="Turn all schedules off").click()
    await expect(page.locator("#switch-state")).to_contain_text("off")
    assert (await stack.http.get("/v1/scheduling")).json() == {"enabled": False}
    await page.get_by_role("button", name="Turn scheduling back on").click()
    await expect(page.locator("#switch-state")).to_contain_text("on")
