"""Signing in to the console: a key exchanged for a session cookie, CSRF, sign-out,
the one-time sign-in link, and scopes applied as on the API."""

from __future__ import annotations

import html

from playwright.async_api import Browser, expect

from api.auth import Principal
from console.session import link_token
from tests.browser.conftest import SECRET, SignIn, csrf_of, shot
from tests.stack import Stack


async def test_sign_in_with_a_key_then_sign_out(browser: Browser, stack: Stack) -> None:
    ctx = await browser.new_context(base_url=stack.url)
    page = await ctx.new_page()
    await page.goto("/ui")  # not signed in: sent to the sign-in page
    await expect(page).to_have_url(f"{stack.url}/ui/login?next=%2Fui")
    await page.get_by_label("API key or JWT").fill("wrong-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("invalid token")
    await page.get_by_label("API key or JWT").fill("alice-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#identity")).to_have_text("alice")
    await expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    await shot(page, "sign-in")

    cookie = next(c for c in await ctx.cookies() if c["name"] == "duratask_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "alice-key" not in cookie["value"]

    # a POST without the session's CSRF token is refused, with it accepted
    r = await ctx.request.post(f"{stack.url}/ui/scheduling", form={"enabled": "false"})
    assert r.status == 403, await r.text()
    assert "CSRF" in await r.text()
    assert (await stack.http.get("/v1/scheduling")).json() == {"enabled": True}

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{stack.url}/ui/login")
    await page.goto("/ui/approvals")
    await expect(page).to_have_url(f"{stack.url}/ui/login?next=%2Fui%2Fapprovals")
    await ctx.close()


async def test_one_time_sign_in_link(browser: Browser, stack: Stack) -> None:
    token = link_token(SECRET, Principal("local", frozenset({"tasks:read"})))
    ctx = await browser.new_context(base_url=stack.url)
    page = await ctx.new_page()
    await page.goto(f"/ui/login/link?token={token}")
    await expect(page.locator("#identity")).to_have_text("local")
    other = await (await browser.new_context(base_url=stack.url)).new_page()
    await other.goto(f"/ui/login/link?token={token}")  # used once already
    await expect(other.get_by_role("alert")).to_contain_text("used or expired")
    await other.context.close()
    forged = link_token("another-secret", Principal("mallory", frozenset({"tasks:write"})))
    await page.goto(f"/ui/login/link?token={forged}")
    await expect(page.get_by_role("alert")).to_contain_text("used or expired")
    await ctx.close()


async def test_scopes_apply_as_on_the_api(sign_in: SignIn, stack: Stack) -> None:
    await stack.put_definition({"id": "hello", "steps": [{"id": "n", "action": "notify",
                                                          "message": "hi"}]})  # fmt: skip
    page = await sign_in("reader")  # tasks:read only
    await page.goto("/ui/definitions/hello")
    csrf = await csrf_of(page)
    r = await page.context.request.post(
        f"{stack.url}/ui/definitions/hello/start", form={"csrf": csrf}
    )
    assert r.status == 403, await r.text()
    assert "lacks the 'tasks:write' scope" in html.unescape(await r.text())
