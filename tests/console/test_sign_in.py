"""Signing in and out of the console, with each role, and what a session cookie is."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Page

from dlrhub.app import DlrhubApp
from tests.console.conftest import ADMIN_TOKEN, VIEWER_TOKEN, check_page, sign_in
from tests.serving import serve_app


async def test_a_page_without_a_session_goes_to_the_login(page: Page, tmp_path: Path) -> None:
    await page.goto("/console?refresh=1")
    assert "/console/login?next=" in page.url
    await check_page(page, tmp_path / "screens", "login")


async def test_admin_signs_in_and_out(page: Page, tmp_path: Path) -> None:
    await sign_in(page, ADMIN_TOKEN)
    await page.get_by_role("heading", name="Overview").wait_for()
    assert await page.locator(".role").inner_text() == "admin"
    await check_page(page, tmp_path / "screens", "overview")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/login")
    await page.goto("/console")
    assert "/console/login" in page.url


async def test_viewer_signs_in(page: Page) -> None:
    await sign_in(page, VIEWER_TOKEN)
    assert await page.locator(".role").inner_text() == "viewer"


async def test_a_wrong_token_is_refused_and_failures_are_limited(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(5):
            answer = await client.post("/console/login", data={"token": "not-a-token"})
            assert answer.status_code == 401
            assert "not an admin or viewer token" in answer.text
        answer = await client.post("/console/login", data={"token": ADMIN_TOKEN})
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) >= 1


async def test_the_session_cookie_flags_and_headers(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.post("/console/login", data={"token": ADMIN_TOKEN})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain http on loopback
        assert ADMIN_TOKEN.lower() not in cookie
        page = await client.get("/console")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert ADMIN_TOKEN not in page.text


async def test_session_changes_need_the_csrf_token_and_viewers_change_nothing(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as admin:
        await admin.post("/console/login", data={"token": ADMIN_TOKEN})
        page = (await admin.get("/console")).text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        body = {"account": "nope", "messages": [{"id": "x"}]}
        missing = await admin.post("/v1/tracking", json=body)
        assert missing.status_code == 403 and missing.json()["error"] == "csrf"
        wrong = await admin.post("/v1/tracking", json=body, headers={"X-CSRF-Token": "wrong"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "csrf"
        right = await admin.post("/v1/tracking", json=body, headers={"X-CSRF-Token": csrf})
        assert right.status_code not in (401, 403)
        assert (await admin.get("/v1/events")).status_code == 200
    async with httpx.AsyncClient(base_url=base_url) as viewer:
        await viewer.post("/console/login", data={"token": VIEWER_TOKEN})
        page = (await viewer.get("/console")).text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        assert (await viewer.get("/v1/events")).status_code == 200
        refused = await viewer.post("/v1/tracking", json=body, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    bearer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=bearer) as script:
        assert (await script.get("/v1/quarantine")).status_code == 200
        refused = await script.post("/v1/tracking", json=body)
        assert refused.status_code == 403


async def test_next_never_leaves_the_console(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for target in ("https://evil.example/", "//evil.example", "/console/../x", "/v1/events"):
            answer = await client.post(
                "/console/login", params={"next": target}, data={"token": ADMIN_TOKEN}
            )
            assert answer.headers["location"].startswith("/console")
            assert "evil" not in answer.headers["location"]


async def test_the_console_works_from_the_keyboard(page: Page) -> None:
    """Sign in, skip to the content and move between sections with the keyboard only."""
    await page.goto("/console/login")
    await page.keyboard.type(ADMIN_TOKEN)  # the token field has the focus
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert await skip.evaluate("node => node === document.activeElement")
    await page.keyboard.press("Tab")  # the brand link, then the sections
    for _ in range(5):  # Overview, Messages, Analytics, Alerts, Events
        await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == "Events"
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/events")


async def login_cookie(app: DlrhubApp, trusted: str) -> str:
    """The session cookie of a sign-in that says it came over https (X-Forwarded-Proto)."""
    options = {"proxy_headers": True, "forwarded_allow_ips": trusted}
    https = {"X-Forwarded-Proto": "https"}
    async with serve_app(app, **options) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.post("/console/login", data={"token": ADMIN_TOKEN}, headers=https)
    return answer.headers["set-cookie"].lower()


async def test_the_cookie_is_secure_behind_a_trusted_proxy_that_says_https(
    console_app: DlrhubApp,
) -> None:
    """`server.forwarded_allow_ips` makes Uvicorn trust X-Forwarded-Proto (as `dlrhub
    serve` sets it up); the same header from an untrusted address changes nothing."""
    assert "secure" in await login_cookie(console_app, "127.0.0.1")
    assert "secure" not in await login_cookie(console_app, "10.9.9.9")
