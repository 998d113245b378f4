"""Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright (no browser
download), allowed to reach 127.0.0.1 only.

`watched_page` records what a page must never do: log a console error, throw, break
the Content-Security-Policy, or ask any host but 127.0.0.1 (such requests are aborted,
so a test cannot pass thanks to the network).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Route,
    ViewportSize,
    async_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

# Runs before any script of the page (through the DevTools protocol, so the page's own
# policy does not stop it) and keeps each CSP violation the page reports.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@dataclass
class Watch:
    """What went wrong on a page; `problems()` is empty when nothing did."""

    page: Page
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    async def violations(self) -> list[str]:
        return list(await self.page.evaluate("window.__violations || []"))

    async def problems(self) -> list[str]:
        return [
            *(f"console/page error: {error}" for error in self.errors),
            *(f"request outside 127.0.0.1: {url}" for url in self.outside),
            *(f"CSP violation: {violation}" for violation in await self.violations()),
        ]


def chromium_executable() -> str:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return str(CHROMIUM)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def watched_page(
    browser: Browser, viewport: ViewportSize, base_url: str | None = None
) -> AsyncIterator[Watch]:
    """A page in a fresh context of `viewport` size, watched as the module docstring says;
    with `base_url`, `page.goto("/path")` goes there."""
    context = await browser.new_context(viewport=viewport, base_url=base_url)
    page = await context.new_page()
    watch = Watch(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watch.errors.append(f"{message.text} ({message.location.get('url')})")

    def on_page_error(error: Error) -> None:
        watch.errors.append(f"{error.name}: {error.message}")

    async def only_loopback(route: Route) -> None:
        url = route.request.url
        watch.requested.append(url)
        if urlsplit(url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            watch.outside.append(url)
            await route.abort("blockedbyclient")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    await page.add_init_script(RECORD_VIOLATIONS)
    await page.route("**/*", only_loopback)
    try:
        yield watch
    finally:
        await context.close()
