"""Owners and teams in the console, exactly as on the API: a caller sees the runs and
definitions they own or share a team with (with their owner and team shown); for
anyone else they do not exist, and the page says so with the API's own 404 message."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.conftest import TEAM, SignIn, put_shared, shot, start_shared
from tests.stack import Stack

NOTE = [{"id": "n", "action": "notify", "message": "hi"}]


async def test_runs_and_definitions_follow_owners_and_teams(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition({"id": "private", "steps": NOTE})
    await put_shared(stack, {"id": "shared", "steps": NOTE})
    mine = (await stack.start("private"))["run_id"]
    ours = (await start_shared(stack, "shared"))["run_id"]
    await stack.wait_result(mine)
    await stack.wait_result(ours)

    # bob is in alice's team: the shared run and definition, with owner and team
    bob = await sign_in("bob")
    await expect(bob.locator(f"tr[data-run='{ours}'] .owner")).to_have_text("alice")
    await expect(bob.locator(f"tr[data-run='{ours}'] .team")).to_have_text(TEAM)
    await expect(bob.locator(f"tr[data-run='{mine}']")).to_have_count(0)
    await shot(bob, "runs-of-a-team")
    await bob.goto(f"/ui/runs/{ours}")
    await expect(bob.locator("#run-owner")).to_have_text("alice")
    await expect(bob.locator("#run-team")).to_have_text(TEAM)
    await expect(bob.get_by_role("button", name="Retry")).to_be_visible()  # team may change
    await bob.goto("/ui/definitions/shared")  # bob starts one for the team, as its owner
    await expect(bob.get_by_label("Owner (optional)")).to_have_count(0)  # admins only
    await bob.get_by_label("Share with team").select_option(TEAM)
    await bob.get_by_role("button", name="Start run").click()
    await expect(bob.locator("#run-owner")).to_have_text("bob")
    await expect(bob.locator("#run-team")).to_have_text(TEAM)
    await bob.goto("/ui/definitions")
    await expect(bob.get_by_role("link", name="shared", exact=True)).to_be_visible()
    await expect(bob.get_by_role("link", name="private", exact=True)).to_have_count(0)

    # what bob may not see is a 404 with the API's message, never a 500 or a blank page
    as_bob = {"Authorization": "Bearer bob-key"}
    for url, api in ((f"/ui/runs/{mine}", f"/v1/runs/{mine}"),
                     ("/ui/definitions/private", "/v1/definitions/private")):  # fmt: skip
        r = await stack.http.get(api, headers=as_bob)
        assert r.status_code == 404, r.text
        resp = await bob.goto(url)
        assert resp is not None and resp.status == 404
        await expect(bob.locator("h1")).to_contain_text("404")
        await expect(bob.locator("#error-detail")).to_have_text(r.json()["detail"])
    live = await bob.context.request.get(f"{stack.url}/ui/run/live", params={"id": mine})
    assert live.status == 404, await live.text()

    # carol shares no team with alice: neither run nor definition exists for her
    carol = await sign_in("carol")
    await expect(carol.locator("#run-rows")).to_contain_text(re.compile("No runs match"))
    await carol.goto(f"/ui/runs/{ours}")
    await expect(carol.locator("#error-detail")).to_have_text(f"run '{ours}' not found")
    await carol.goto("/ui/definitions")
    await expect(carol.get_by_role("link", name="shared", exact=True)).to_have_count(0)
    # nor in insights: the cards and the charts count only runs she may see (none)
    await carol.goto("/ui/insights?window=24h")
    await expect(carol.locator("figure.timechart")).to_have_count(5)
    await expect(carol.locator("figure.timechart svg rect.bar")).to_have_count(0)
