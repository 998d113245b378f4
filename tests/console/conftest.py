"""Browser tests of the console: a real dlrhub app on a real Uvicorn, Debian's chromium.

Every page a test opens is watched: a console error, an uncaught exception or a
request to anything but this loopback server fails the test at teardown.
`check_page` runs axe-core in the page (no serious or critical violation) and saves
screenshots at 1280 px and at a phone's width under the test's temp folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, async_playwright

from dlrhub.app import DlrhubApp, create_app
from dlrhub.config import Config, parse_config
from tests.serving import serve_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "admin-token-for-console-tests-0001"
VIEWER_TOKEN = "viewer-token-for-console-tests-0001"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SERIOUS = {"serious", "critical"}


def console_document(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """A configuration document for a console test (merge more sections with `extra`)."""
    return {
        "data_dir": str(tmp_path / "data"),
        "admin_token": ADMIN_TOKEN,
        "viewer_tokens": [VIEWER_TOKEN],
        **extra,
    }


@pytest.fixture
def console_config(tmp_path: Path) -> Config:
    return parse_config(console_document(tmp_path))


@pytest.fixture
def console_app(console_config: Config) -> DlrhubApp:
    return create_app(console_config)


@pytest.fixture
async def base_url(console_app: DlrhubApp) -> AsyncIterator[str]:
    async with serve_app(console_app) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watch:
    """What the pages of a browser context did that they must not."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console {message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))


async def watched_context(browser: Browser, base_url: str, watch: Watch) -> BrowserContext:
    context = await browser.new_context(viewport=DESKTOP, base_url=base_url)

    async def only_here(route: Route, request: Request) -> None:
        if request.url.startswith(base_url + "/") or request.url == base_url:
            await route.continue_()
        else:
            watch.outside.append(request.url)
            await route.abort()

    await context.route("**/*", only_here)
    context.on("page", watch.attach)
    return context


@pytest.fixture
async def watch() -> Watch:
    return Watch()


@pytest.fixture
async def page(browser: Browser, base_url: str, watch: Watch) -> AsyncIterator[Page]:
    context = await watched_context(browser, base_url, watch)
    page = await context.new_page()
    try:
        yield page
    finally:
        with contextlib.suppress(Exception):
            await context.close()
    assert not watch.outside, f"pages asked outside the server: {watch.outside}"
    assert not watch.errors, f"pages logged errors: {watch.errors}"


async def sign_in(page: Page, token: str = ADMIN_TOKEN, next_path: str = "/console") -> None:
    """Sign in through the login form, landing on `next_path`."""
    await page.goto(f"/console/login?next={next_path}")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{next_path}")


async def check_page(page: Page, folder: Path, name: str) -> None:
    """axe-core finds no serious or critical violation; screenshots at both widths."""
    results = await Axe().run(page)
    serious = [
        f"{violation['id']} ({violation['impact']}): {violation['help']}"
        for violation in results.response["violations"]
        if violation.get("impact") in SERIOUS
    ]
    assert not serious, f"axe on {name}: {serious}"
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test, once)
    await page.screenshot(path=str(folder / f"{name}-1280.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
