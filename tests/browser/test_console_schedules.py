"""Schedules in the console: the description in words, next fire times, pause and
unpause, trigger now (a Proactive run), and the global switch, which only an admin
(`tasks:admin`) sees and uses, as on the API."""

from __future__ import annotations

import asyncio
import html

from playwright.async_api import expect

from tests.browser.conftest import SignIn, csrf_of, shot
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
    await expect(row.locator(".owner")).to_contain_text("alice")
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

    # alice is no admin: she sees the switch's state, not the switch, and a forged
    # POST gets the API's 403 and message
    await page.goto("/ui/schedules")
    await expect(page.locator("#switch-state")).to_contain_text("Scheduling is on")
    await expect(page.get_by_role("button", name="Turn all schedules off")).to_have_count(0)
    forged = await page.context.request.post(
        f"{stack.url}/ui/scheduling", form={"csrf": await csrf_of(page), "enabled": "false"}
    )
    assert forged.status == 403, await forged.text()
    api = await stack.http.put("/v1/scheduling", json={"enabled": False})
    assert api.status_code == 403, api.text
    assert api.json()["detail"] in html.unescape(await forged.text())
    assert (await stack.http.get("/v1/scheduling")).json() == {"enabled": True}

    admin = await sign_in("root")
    await admin.goto("/ui/schedules")
    await expect(admin.locator(f"tr[data-schedule='{sid}'] .owner")).to_contain_text("alice")
    await admin.get_by_role("button", name="Turn all schedules off").click()
    await expect(admin.locator("#switch-state")).to_contain_text("off")
    assert (await stack.http.get("/v1/scheduling")).json() == {"enabled": False}
    await admin.get_by_role("button", name="Turn scheduling back on").click()
    await expect(admin.locator("#switch-state")).to_contain_text("on")
