"""The events page (live tail, filters) and the `/v1/events` filters it is built on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from dlrhub.config import Config, parse_config
from tests.console.conftest import (
    ADMIN_TOKEN,
    VIEWER_TOKEN,
    check_page,
    console_document,
    sign_in,
)
from tests.console.nrs360 import nrs360_source, post_event, post_receipt, signed_in
from tests.console.refused_pages import open_refused_page

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def console_config(tmp_path: Path) -> Config:
    return parse_config(console_document(tmp_path, sources=[nrs360_source()]))


async def test_the_empty_page_says_where_callbacks_go(page: Page, tmp_path: Path) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/events")
    empty = page.locator("#tail-empty")
    await expect(empty).to_contain_text("No events yet")
    await expect(empty).to_contain_text("/hooks/nrs360/events?token=")
    await check_page(page, tmp_path / "screens", "events-empty")


async def test_the_live_tail_shows_a_callback_posted_while_it_is_open(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as provider:
        await post_event(provider, "sent", "m-old")
        await sign_in(page, VIEWER_TOKEN, "/console/events")
        rows = page.locator("table.events tbody tr")
        await expect(rows).to_have_count(1)
        await post_event(provider, "delivered", "m-live")
    newest = rows.first
    await expect(newest).to_contain_text("m-live", timeout=10_000)
    await expect(newest).to_contain_text("delivered")
    await expect(newest.locator(".local")).to_have_count(1)  # local time beside UTC
    await expect(rows).to_have_count(2)
    await expect(page.locator("#tail-empty")).to_have_count(0)
    await check_page(page, tmp_path / "screens", "events-tail")
    await newest.get_by_role("link", name="m-live").click()
    await page.wait_for_url("**/console/messages/nrs360/m-live")


async def test_filters_narrow_the_page_and_its_tail(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as provider:
        await post_event(provider, "sent", "m-1")
        await post_receipt(provider, "1", ref="order-1", phone="+34600111222", id="m-2")
        await sign_in(page, ADMIN_TOKEN, "/console/events")
        await page.get_by_label("Status").select_option("delivered")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**status=delivered**")
        rows = page.locator("table.events tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("m-2")
        await post_event(provider, "sent", "m-3")  # not delivered: the tail skips it
        await post_event(provider, "delivered", "m-4")
        await expect(rows.first).to_contain_text("m-4", timeout=10_000)
        await expect(rows).to_have_count(2)
    await page.goto("/console/events?correlation_id=order-1")
    await expect(rows).to_have_count(1)
    await page.goto("/console/events?recipient=%2B34600111222")
    await expect(rows).to_have_count(1)
    await page.goto("/console/events?recipient=nobody")
    await expect(page.locator("#tail-empty")).to_contain_text("No event matches")
    await check_page(page, tmp_path / "screens", "events-filtered-empty")
    assert await open_refused_page(page, "/console/events?status=lost") == 400
    await expect(page.get_by_role("alert")).to_contain_text("status must be one of")
    await check_page(page, tmp_path / "screens", "events-bad-filter")


async def test_pages_of_older_events(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as provider:
        for number in range(5):
            await post_event(provider, "sent", f"m-{number}")
    async with signed_in(base_url, VIEWER_TOKEN) as client:
        first = await client.get("/console/events", params={"limit": 2})
        assert first.status_code == 200
        assert "m-4" in first.text and "m-3" in first.text and "m-2" not in first.text
        assert 'data-tail=""' in first.text and "before_seq=4" in first.text
        older = await client.get("/console/events", params={"limit": 2, "before_seq": 4})
        assert "m-2" in older.text and "m-1" in older.text and "m-4" not in older.text
        assert "data-tail" not in older.text  # an older page does not follow


async def test_v1_events_filters_on_ref_recipient_and_time(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        await post_receipt(client, "8", ref="order-9", phone="+34600999999", id="m-9")
        await post_receipt(client, "1", ref="order-9", phone="+34600999999", id="m-9")
        await post_event(client, "sent", "m-other")

        async def seqs(**params: str) -> list[int]:
            answer = await client.get("/v1/events", params=params, headers=BEARER)
            assert answer.status_code == 200, answer.text
            return [event["seq"] for event in answer.json()["events"]]

        assert await seqs() == [1, 2, 3]
        assert await seqs(correlation_id="order-9") == [1, 2]
        assert await seqs(recipient="+34600999999", status="delivered") == [2]
        assert await seqs(since="2000-01-01T00:00:00Z") == [1, 2, 3]
        assert await seqs(since="2100-01-01") == []
        assert await seqs(until="2000-01-01T00:00:00+01:00") == []
        assert await seqs(order="desc") == [3, 2, 1]
        assert await seqs(order="desc", before_seq="3", limit="1") == [2]
        page = (await client.get("/v1/events?order=desc&limit=2", headers=BEARER)).json()
        assert page["next_after_seq"] == 3 and page["next_before_seq"] == 2
        for bad, reason in (
            ("since=yesterday", "since must be an ISO 8601 time"),
            ("until=0001-01-01T00:00:00%2B05:00", "until must be an ISO 8601 time"),
            ("order=sideways", "order must be"),
            ("before_seq=-1", "before_seq must be a whole number"),
            ("ref=x", "unknown query parameter"),
        ):
            answer = await client.get(f"/v1/events?{bad}", headers=BEARER)
            assert answer.status_code == 400, bad
            assert reason in answer.json()["detail"], answer.text


async def test_viewer_sees_the_events_page_and_a_stranger_does_not(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as stranger:
        answer = await stranger.get("/console/events")
        assert answer.status_code == 303 and "/console/login" in answer.headers["location"]
    async with signed_in(base_url, VIEWER_TOKEN) as viewer:
        answer = await viewer.get("/console/events")
        assert answer.status_code == 200 and "<h1>Events</h1>" in answer.text
        assert (await viewer.get("/v1/events?order=desc")).status_code == 200
