"""Signing in to the console: a key exchanged for a session cookie, CSRF, sign-out,
the one-time sign-in link, and scopes applied as on the API."""

from __future__ import annotations

import asyncio
import html
import os
import signal
import sys
import time
from pathlib import Path

import jwt
from playwright.async_api import Browser, expect
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from api.auth import Principal
from console.session import link_token
from tests.browser.conftest import SECRET, SignIn, csrf_of, shot
from tests.stack import Stack, free_port, run_stack


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
    await page.keyboard.press("Tab")  # the keyboard's first stop skips the navigation
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
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
    await stack.put_definition(
        {"id": "hello", "steps": [{"id": "n", "action": "notify", "message": "hi"}]}
    )
    page = await sign_in("reader")  # tasks:read only
    await page.goto("/ui/definitions/hello")
    csrf = await csrf_of(page)
    r = await page.context.request.post(
        f"{stack.url}/ui/definitions/hello/start", form={"csrf": csrf}
    )
    assert r.status == 403, await r.text()
    assert "lacks the 'tasks:write' scope" in html.unescape(await r.text())


async def test_duratask_dev_prints_a_sign_in_link(
    browser: Browser, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """`duratask dev` (on the session's Temporal) prints a link that signs in once."""
    port = free_port()
    env = {
        **os.environ,
        "DURATASK_TASK_QUEUE": f"tq-dev-{port}",
        "COLUMNS": "400",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    address = dev_env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "dev",
        "--temporal-address",
        address,
        "--port",
        str(port),
        "--no-ui",
        "--examples",
        str(tmp_path / "none"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    link: str | None = None
    seen: list[str] = []
    try:
        async with asyncio.timeout(90):
            while link is None:
                line = (await proc.stdout.readline()).decode()
                assert line, "duratask dev exited: " + "".join(seen)
                seen.append(line)
                if "/ui/login/link?token=" in line:
                    link = line.strip()
        assert link.startswith(f"http://127.0.0.1:{port}/ui/login/link?token=")
        assert (tmp_path / ".duratask" / "console-secret").stat().st_mode & 0o077 == 0
        ctx = await browser.new_context()
        page = await ctx.new_page()
        await page.goto(link)
        await expect(page.locator("#identity")).to_have_text("local")
        await page.goto(link)  # a second use is refused
        await expect(page.get_by_role("alert")).to_contain_text("used or expired")
        await ctx.close()
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)


async def test_sign_in_with_a_jwt_ends_with_the_token(
    browser: Browser, dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    secret = "jwt-test-secret-0123456789abcdef0123"
    async with run_stack(dev_env, task_queue, tmp_path, worker=False, auth_required=True,
                         jwt_secret=SecretStr(secret),
                         console_session_secret=SecretStr(SECRET)) as stack:  # fmt: skip
        exp = int(time.time()) + 120
        token = jwt.encode(
            {"sub": "jay", "scope": "tasks:read", "exp": exp}, secret, algorithm="HS256"
        )
        ctx = await browser.new_context(base_url=stack.url)
        page = await ctx.new_page()
        await page.goto("/ui/login")
        await page.get_by_label("API key or JWT").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#identity")).to_have_text("jay")
        cookie = next(c for c in await ctx.cookies() if c["name"] == "duratask_session")
        assert cookie["expires"] <= exp + 1  # not the 12 h of an API key's session
        expired = jwt.encode({"sub": "jay", "exp": int(time.time()) - 5}, secret)
        await page.goto("/ui/login")
        await page.get_by_label("API key or JWT").fill(expired)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("expired")
        await ctx.close()
