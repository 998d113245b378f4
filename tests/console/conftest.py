"""Browser tests of the console: a real dlrhub app on a real Uvicorn, Debian's chromium.

Every page a test opens is watched (tests/browser.py): a console error, an uncaught
exception, a CSP violation or a request to anything but 127.0.0.1 fails the test at
teardown.
`check_page` runs axe-core in the page (no serious or critical violation) and saves
screenshots at 1280 px and at a phone's width under the test's temp folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page

from dlrhub.app import DlrhubApp, create_app
from dlrhub.config import Config, parse_config
from tests.browser import DESKTOP, PHONE, chromium, watched_page
from tests.serving import serve_app

ADMIN_TOKEN = "admin-token-for-console-tests-0001"
VIEWER_TOKEN = "viewer-token-for-console-tests-0001"
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
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def page(browser: Browser, base_url: str) -> AsyncIterator[Page]:
    """A watched page (tests/browser.py): a console error, an uncaught exception, a CSP
    violation or a request outside 127.0.0.1 fails the test at teardown."""
    async with watched_page(browser, DESKTOP, base_url) as watch:
        yield watch.page
        problems = await watch.problems()
    assert not problems, problems


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
