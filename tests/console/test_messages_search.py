"""The Messages page: find a message by your ref and open its timeline, page through."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from tests.console.conftest import ADMIN_TOKEN, VIEWER_TOKEN, check_page, sign_in
from tests.console.refused_pages import open_refused_page
from tests.console.test_message_page import console_config, tell_a_story

__all__ = ["console_config"]  # the module's source, as on the message page


async def test_find_a_message_by_ref_and_open_its_timeline(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await tell_a_story(base_url, "m-found", ref="order-7", phone="+573001112233")
    await tell_a_story(base_url, "m-other", ref="order-8", phone="+573004445566")
    await sign_in(page, VIEWER_TOKEN, "/console/messages")
    rows = page.locator("table tbody tr")
    await expect(rows).to_have_count(2)  # newest first, no filter
    await expect(rows.first).to_contain_text("m-other")
    await check_page(page, tmp_path / "screens", "messages")
    search = page.get_by_role("form", name="Search messages")
    await search.get_by_label("Your ref").fill("order-7")
    await search.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/console/messages?**correlation_id=**")
    await expect(rows).to_have_count(1)
    await search.get_by_label("Your ref").fill("")
    await search.get_by_label("Recipient").fill("2233")  # the last digits of m-found's number
    await search.get_by_role("button", name="Search").click()
    await page.wait_for_url("**recipient=2233**")
    await expect(rows).to_have_count(1)
    await page.get_by_role("link", name="m-found").click()
    await page.wait_for_url("**/console/messages/nrs360/m-found")
    await expect(page.locator("li.timeline-event")).to_have_count(3)


async def test_a_bad_search_says_why_and_no_match_says_what_to_do(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/messages")
    assert await open_refused_page(page, "/console/messages?recipient=12") == 400
    await expect(page.get_by_role("alert")).to_contain_text("at least 4")
    search = page.get_by_role("form", name="Search messages")
    await search.get_by_label("Recipient").fill("99999999")
    await search.get_by_role("button", name="Search").click()
    await expect(page.locator(".empty")).to_contain_text("No message matches")
    await check_page(page, tmp_path / "screens", "messages-empty")
