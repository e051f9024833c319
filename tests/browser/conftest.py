"""Browser tests of the console: Playwright driving Debian's `chromium` against the real
stack (gateway + worker on the session's Temporal dev server).

One browser per session, a fresh context (cookies) per user per test. Playwright's own
browser download is not used: the system chromium is launched by path. Where chromium
is missing the tests skip, except under CI (CI=true), where they fail: the browser
tests must run there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ApiKey, OpenAISettings
from tests.fakes.openai_server import FakeLlmServer, serve_fake_llm
from tests.stack import Stack, run_stack

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SECRET = "console-test-session-secret"
KEYS = {
    "alice": ApiKey(key=SecretStr("alice-key"), identity="alice", groups=["ops"]),
    "bob": ApiKey(key=SecretStr("bob-key"), identity="bob"),
    "reader": ApiKey(key=SecretStr("reader-key"), identity="rita", scopes=["tasks:read"]),
}


def chromium_path() -> str | None:
    for name in (os.environ.get("DURATASK_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        msg = "chromium is not installed (apt-get install -y chromium; `make test` does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + ": the browser tests must run in CI")
        pytest.skip(msg)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture(scope="session")
async def fake_llm() -> AsyncIterator[FakeLlmServer]:
    async with serve_fake_llm() as f:
        yield f


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, fake_llm: FakeLlmServer
) -> AsyncIterator[Stack]:
    async with run_stack(
        dev_env,
        task_queue,
        tmp_path,
        headers={"Authorization": "Bearer alice-key"},
        auth_required=True,
        api_keys=list(KEYS.values()),
        console_session_secret=SecretStr(SECRET),
        openai=OpenAISettings(api_key=SecretStr("sk-test"), base_url=f"{fake_llm.url}/v1"),
        tool_modules=["tests.fakes.tools"],
    ) as s:
        yield s


SignIn = Callable[[str], Awaitable[Page]]


@pytest.fixture
async def sign_in(browser: Browser, stack: Stack) -> AsyncIterator[SignIn]:
    """`await sign_in("alice")`: a page of a new browser context, signed in as that user."""
    contexts: list[BrowserContext] = []

    async def open_as(user: str) -> Page:
        ctx = await browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        page = await ctx.new_page()
        await page.goto("/ui/login")
        await page.get_by_label("API key or JWT").fill(KEYS[user].key.get_secret_value())
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{stack.url}/ui")
        return page

    yield open_as
    for ctx in contexts:
        await ctx.close()


async def shot(page: Page, name: str) -> Path:
    """Save a screenshot as a test artifact (tests/artifacts/console/<name>.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def csrf_of(page: Page) -> str:
    value: Any = await page.locator("input[name=csrf]").first.get_attribute("value")
    return str(value)
