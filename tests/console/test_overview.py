"""The overview: callbacks per minute from the store's counts, quarantine, sinks, poller,
store health; `GET /v1/overview` gives the page's figures to scripts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from dlrhub.config import Config, parse_config
from tests.console.conftest import ADMIN_TOKEN, VIEWER_TOKEN, check_page, console_document, sign_in
from tests.console.nrs360 import SOURCE_TOKEN, nrs360_source, post_event

VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


@pytest.fixture
def console_config(tmp_path: Path) -> Config:
    sink = {"name": "audit", "kind": "jsonl", "path": str(tmp_path / "audit.jsonl")}
    return parse_config(console_document(tmp_path, sources=[nrs360_source()], sinks=[sink]))


async def traffic(base_url: str) -> None:
    """Three stored callbacks, one duplicate, one quarantined (an unreadable body)."""
    async with httpx.AsyncClient(base_url=base_url) as provider:
        for message_id in ("m1", "m2", "m3"):
            await post_event(provider, "sent", message_id)
        await post_event(provider, "sent", "m3")  # the same callback again
        answer = await provider.post(
            "/hooks/nrs360/events",
            params={"token": SOURCE_TOKEN},
            content=b"not a form at all \xff",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.json()["status"] == "quarantined"


async def test_v1_overview_counts_callbacks_by_source_and_outcome(base_url: str) -> None:
    await traffic(base_url)
    async with httpx.AsyncClient(base_url=base_url, headers=VIEWER) as client:
        figures = (await client.get("/v1/overview")).json()
        assert (await client.get("/v1/overview", headers={"Authorization": ""})).status_code == 401
    assert figures["callbacks"]["by_source"] == [
        {"source": "nrs360", "stored": 3, "duplicate": 1, "quarantined": 1}
    ]
    assert figures["quarantine_pending"] == 1
    assert figures["alerts_open"] == 0
    assert [sink["name"] for sink in figures["sinks"]] == ["audit"]
    assert figures["poller"] == []
    assert figures["store"]["backend"] == "sqlite" and figures["store"]["ok"] is True


async def test_the_overview_page_shows_the_chart_and_links_on(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await sign_in(page, ADMIN_TOKEN)
    await expect(page.locator(".empty").first).to_contain_text("No callback in the last hour")
    await check_page(page, tmp_path / "screens", "overview-empty")
    await traffic(base_url)
    await page.reload()
    await expect(page.locator("svg.chart rect")).not_to_have_count(0)
    source_row = page.get_by_role("row", name="nrs360")
    await expect(source_row).to_contain_text("3")
    await expect(page.get_by_role("link", name="pending callbacks")).to_be_visible()
    await expect(page.get_by_role("link", name="audit")).to_be_visible()
    await check_page(page, tmp_path / "screens", "overview")
    await page.get_by_role("link", name="pending callbacks").click()
    await page.wait_for_url("**/console/quarantine")
