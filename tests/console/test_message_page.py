"""One message's page: state, timeline with the provider's words, raw callbacks, deliveries;
and the console never shows a secret a provider sent (sentinel test, through the pages)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from starlette.requests import Request

from dlrhub.config import Config, parse_config
from dlrhub.console.templating import render
from dlrhub.receiver.auth import Principal, Role
from tests.console.conftest import (
    ADMIN_TOKEN,
    VIEWER_TOKEN,
    check_page,
    console_document,
    sign_in,
)
from tests.console.nrs360 import (
    nrs360_source,
    post_event,
    post_receipt,
    signed_in,
)
from tests.console.refused_pages import open_refused_page
from tests.payloads import FORM, event_form

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SENTINEL = "SENTINEL7console"
TOKEN = f"{SENTINEL}-source-token"  # this module's source token: a secret the pages must hide


@pytest.fixture
def console_config(tmp_path: Path) -> Config:
    return parse_config(console_document(tmp_path, sources=[nrs360_source(TOKEN)]))


async def tell_a_story(
    base_url: str, message_id: str = "m-story", ref: str = "order-42", phone: str = "+34600111222"
) -> None:
    """Sent (an event notification), then delivered (a receipt), then opened."""
    async with httpx.AsyncClient(base_url=base_url) as provider:
        await post_event(provider, "sent", message_id, token=TOKEN)
        await post_receipt(provider, "DELIVRD", token=TOKEN, id=message_id, ref=ref, phone=phone)
        await post_event(provider, "opened", message_id, token=TOKEN)


async def test_the_page_tells_the_whole_story_in_order(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await tell_a_story(base_url)
    await sign_in(page, VIEWER_TOKEN, "/console/messages/nrs360/m-story")
    state = page.locator("dl.facts").first
    await expect(state).to_contain_text("delivered")
    await expect(state).to_contain_text("DELIVRD")
    await expect(state).to_contain_text("+34600111222")
    await expect(state).to_contain_text("order-42")
    steps = page.locator("li.timeline-event")
    await expect(steps).to_have_count(3)
    assert await steps.evaluate_all("(nodes) => nodes.map((node) => node.dataset.seq)") == [
        "1",
        "2",
        "3",
    ]
    await expect(steps.nth(0)).to_contain_text("provider said “sent”")
    await expect(steps.nth(1)).to_contain_text("provider said “DELIVRD”")
    await expect(steps.nth(2)).to_contain_text("message.engagement")
    receipt = steps.nth(1).locator("details.raw")
    await receipt.locator("summary").click()
    await expect(receipt).to_contain_text("/hooks/nrs360/dlr")
    await expect(receipt).to_contain_text("token=[REDACTED]&status=DELIVRD")
    notification = steps.nth(0).locator("details.raw")
    await notification.locator("summary").click()
    await expect(notification).to_contain_text("event=sent")
    await expect(notification).to_contain_text("application/x-www-form-urlencoded")
    await expect(page.locator("#deliveries-heading + .empty")).to_contain_text(
        "No sink delivery recorded"
    )
    await check_page(page, tmp_path / "screens", "message")


async def test_v1_message_names_each_events_raw_callback(base_url: str) -> None:
    await tell_a_story(base_url)
    async with httpx.AsyncClient(base_url=base_url, headers=BEARER) as client:
        story = (await client.get("/v1/messages/nrs360/m-story")).json()
    assert story["message"]["status"] == "delivered"
    raw_ids = [event["raw_id"] for event in story["events"]]
    assert len(set(raw_ids)) == 3
    receipt = story["raw"][str(raw_ids[1])]
    assert receipt["origin"] == "callback" and receipt["method"] == "GET"
    assert receipt["path"] == "/hooks/nrs360/dlr"
    assert receipt["query"].startswith("token=[REDACTED]&status=DELIVRD")
    assert "event=sent" in story["raw"][str(raw_ids[0])]["body"]


async def test_open_a_message_and_an_unknown_one(page: Page, base_url: str, tmp_path: Path) -> None:
    await tell_a_story(base_url, "abc/1")
    await sign_in(page, ADMIN_TOKEN, "/console/messages")
    await check_page(page, tmp_path / "screens", "messages")
    opening = page.get_by_role("form", name="Open a message")
    await opening.get_by_label("Provider").select_option("nrs360")
    await opening.get_by_label("Message id").fill("abc/1")
    await opening.get_by_role("button", name="Open").click()
    await page.wait_for_url("**/console/messages/nrs360/abc%2F1")
    await expect(page.locator("li.timeline-event")).to_have_count(3)
    assert await open_refused_page(page, "/console/messages/nrs360/nope") == 404
    await expect(page.locator(".empty")).to_contain_text("No such message.")
    await check_page(page, tmp_path / "screens", "message-unknown")


def test_deliveries_are_listed_when_the_data_has_them() -> None:
    """`deliveries` in the story (another part adds them) render as a table."""
    scope = {"type": "http", "method": "GET", "path": "/console/messages/nrs360/m", "headers": []}
    story = {
        "message": None,
        "events": [],
        "raw": {},
        "deliveries": [
            {
                "sink": "orders-webhook",
                "seq": 7,
                "event_id": "0193-abc",
                "attempt": 2,
                "at": "2026-12-02T10:00:00.000000Z",
                "outcome": "delivered",
                "duration_ms": 38,
                "answer": "HTTP 200",
            }
        ],
    }
    context = {
        "providers": ["nrs360"],
        "provider": "nrs360",
        "message_id": "m",
        "error": None,
        "story": story,
        "deliveries": story["deliveries"],
    }
    principal = Principal(Role.VIEWER, "session", csrf="x")
    html = render(Request(scope), "message.html", context, principal).body.decode()
    assert "orders-webhook" in html and "HTTP 200" in html and "No sink delivery" not in html


async def test_the_console_never_shows_a_secret(base_url: str, page: Page, tmp_path: Path) -> None:
    """Sentinel secrets where 360NRS puts them (the query token, Basic auth, secret-named
    body and query fields): no page or /v1 answer of these parts ever shows one."""
    async with httpx.AsyncClient(base_url=base_url) as provider:
        await post_event(
            provider,
            "sent",
            "m-secret",
            token=TOKEN,
            password=f"{SENTINEL}-password",
            apikey=f"{SENTINEL}-apikey",
        )
        basic = base64.b64encode(f"360nrs:{TOKEN}".encode()).decode()
        answer = await provider.post(
            "/hooks/nrs360/events",
            content=event_form("delivered", "m-secret", key=f"{SENTINEL}-key"),
            headers={**FORM, "Authorization": f"Basic {basic}"},
        )
        assert answer.status_code == 200, answer.text
        await post_receipt(
            provider,
            "1",
            token=TOKEN,
            id="m-secret",
            ref="r-secret",
            key=f"{SENTINEL}-dlr-key",
            password=f"{SENTINEL}-dlr-password",
        )
        refused = await provider.get(
            "/hooks/nrs360/dlr", params={"token": f"{SENTINEL}-wrong", "status": "1"}
        )
        assert refused.status_code == 401
    shown: dict[str, str] = {}
    async with signed_in(base_url, VIEWER_TOKEN) as viewer:
        for path in (
            "/console/events",
            "/console/events?source=nrs360&status=delivered",
            "/console/messages",
            "/console/messages/nrs360/m-secret",
            "/console/messages/nrs360/unknown",
            "/v1/events",
            "/v1/events?order=desc&correlation_id=r-secret",
            "/v1/messages/nrs360/m-secret",
        ):
            answer = await viewer.get(path)
            assert answer.status_code in (200, 404), path
            shown[path] = answer.text
    # The browser's view too: the live tail's rows and every <details> opened.
    await sign_in(page, VIEWER_TOKEN, "/console/events")
    await expect(page.locator("table.events tbody tr")).to_have_count(3)
    await page.wait_for_timeout(2000)  # at least one round of the live tail
    shown["events in the browser"] = await page.content()
    await page.goto("/console/messages/nrs360/m-secret")
    for summary in await page.locator("details.raw summary").all():
        await summary.click()
    shown["message in the browser"] = await page.content()
    await check_page(page, tmp_path / "screens", "message-redacted")
    story = shown["/v1/messages/nrs360/m-secret"]
    assert "m-secret" in shown["/console/messages/nrs360/m-secret"] and "[REDACTED]" in story
    for where, text in shown.items():
        for secret in (SENTINEL, ADMIN_TOKEN, VIEWER_TOKEN):
            assert secret not in text, f"{secret} shown by {where}"
