"""Opening a console page that answers 4xx in the browser, for its checks (axe, screenshots).

Chromium logs every 4xx document as a console error, which the page watch counts
as a failure; here the browser is shown the same page with a 200, and the real
status is returned for the test to assert.
"""

from __future__ import annotations

from playwright.async_api import Page, Route


async def open_refused_page(page: Page, path: str) -> int:
    """Go to `path`; answer the status the server gave it."""
    statuses: list[int] = []

    async def as_ok(route: Route) -> None:
        answer = await route.fetch()
        statuses.append(answer.status)
        await route.fulfill(response=answer, status=200)

    await page.route(f"**{path}", as_ok)
    try:
        await page.goto(path)
    finally:
        await page.unroute(f"**{path}", as_ok)
    return statuses[0]
