"""The Analytics page: headline figures against the previous period, charts, failure
reasons, breakdown tables that drill into the Messages search, and its refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from dlrhub.app import DlrhubApp, create_app
from dlrhub.config import parse_config
from dlrhub.event import Event, EventType, Status
from dlrhub.store import Accept, Store
from tests.console.conftest import (
    ADMIN_TOKEN,
    VIEWER_TOKEN,
    check_page,
    console_document,
    sign_in,
)
from tests.console.nrs360 import signed_in
from tests.console.refused_pages import open_refused_page
from tests.payloads import raw
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app

CO = "+573001234567"  # Colombia
MX = "+525512345678"  # Mexico

# (provider, message id, recipient, final status or None, seconds to receipt, provider's
# word, error code): 8 messages, 6 settled, 4 delivered (66.7 %), 2 pending.
MESSAGES = [
    ("nrs360", "nrs-1", CO, Status.DELIVERED, 3, "DELIVRD", ""),
    ("nrs360", "nrs-2", CO, Status.DELIVERED, 40, "DELIVRD", ""),
    ("nrs360", "nrs-3", MX, Status.DELIVERED, 1800, "DELIVRD", ""),  # a late receipt
    ("nrs360", "nrs-4", None, None, 0, "", ""),  # no number: country unknown, pending
    ("onurix", "onx-1", CO, Status.FAILED, 20, "UNDELIV", "34"),
    ("onurix", "onx-2", MX, Status.REJECTED, 2, "REJECTD", ""),
    ("onurix", "onx-3", MX, Status.DELIVERED, 4, "DELIVRD", ""),
    ("onurix", "onx-4", CO, None, 0, "", ""),
]


def status_event(
    provider: str,
    message_id: str,
    recipient: str | None,
    status: Status,
    at: datetime,
    word: str,
    error_code: str = "",
) -> Event:
    return Event(
        id=f"ev-{uuid.uuid4()}",
        source=provider,
        provider=provider,
        type=EventType.MESSAGE_STATUS,
        received_at=at,
        channel="sms",
        message_id=message_id,
        recipient=recipient,
        status=status,
        provider_status=word,
        occurred_at=at,
        extra={"error_code": error_code} if error_code else {},
    )


async def write(store: Store, event: Event) -> None:
    await store.write(
        Accept(raw(event.id, event.source, event.received_at, event.provider), [event])
    )


async def seed(store: Store, now: datetime) -> None:
    """MESSAGES submitted two hours ago, and one delivered message 30 hours ago (the
    previous period of the last 24 hours), written in time order as they would arrive (the
    Messages search's `since` is a range of the log's order)."""
    before = now - timedelta(hours=30)
    await write(store, status_event("nrs360", "old-1", CO, Status.ACCEPTED, before, "ACCEPTD"))
    await write(
        store,
        status_event(
            "nrs360", "old-1", CO, Status.DELIVERED, before + timedelta(seconds=9), "DELIVRD"
        ),
    )
    submitted = now - timedelta(hours=2)
    for provider, message_id, recipient, final, seconds, word, code in MESSAGES:
        await write(
            store,
            status_event(provider, message_id, recipient, Status.ACCEPTED, submitted, "ACCEPTD"),
        )
        if final is not None:
            at = submitted + timedelta(seconds=seconds)
            await write(store, status_event(provider, message_id, recipient, final, at, word, code))


def figure(page: Page, measure: str) -> tuple[Locator, Locator]:
    """This range's and the previous period's cells of a headline measure."""
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=measure))
    cells = row.get_by_role("cell")
    return cells.nth(0), cells.nth(1)


async def test_the_page_shows_the_figures_and_drills_into_the_messages(
    page: Page, base_url: str, console_app: DlrhubApp, tmp_path: Path
) -> None:
    await seed(console_app.state.store, datetime.now(UTC))
    await sign_in(page, VIEWER_TOKEN, "/console/analytics")
    await page.goto("/console/analytics?group_by=provider&group_by=country")
    for measure, now, before in [
        ("Messages", "8", "1"),
        ("Delivery rate (delivered / settled)", "66.7 %", "100.0 %"),
        ("Delivery rate of submitted", "50.0 %", "100.0 %"),
        ("Pending", "2", "0"),
        ("Receipt within 5 s", "50.0 %", "0.0 %"),
        ("Receipt within 60 s", "83.3 %", "100.0 %"),
        ("Receipt within 10 min", "83.3 %", "100.0 %"),
    ]:
        this, previous = figure(page, measure)
        await expect(this).to_have_text(now)
        await expect(previous).to_have_text(before)
    p50, _ = figure(page, "Time to receipt p50")
    await expect(p50).to_contain_text(" s")

    await expect(page.get_by_role("img", name="Delivery rate per hour")).to_be_visible()
    await expect(page.get_by_role("img", name="Time to receipt p90 per hour")).to_be_visible()

    reasons = page.get_by_role("region", name="Failure reasons")
    failed = reasons.get_by_role("row").filter(has_text="UNDELIV")
    await expect(failed).to_contain_text("failed")
    await expect(failed).to_contain_text("34")
    await expect(reasons.get_by_role("row").filter(has_text="REJECTD")).to_contain_text("rejected")

    by_provider = page.get_by_role("region", name="By provider", exact=True)
    nrs360 = by_provider.get_by_role("row").filter(has_text="nrs360")
    await expect(nrs360).to_contain_text("100.0 %")
    onurix = by_provider.get_by_role("row").filter(has_text="onurix")
    await expect(onurix).to_contain_text("33.3 %")
    by_country = page.get_by_role("region", name="By country", exact=True)
    await expect(by_country.get_by_role("row")).to_have_count(4)  # heading, CO, MX, unknown
    unknown = by_country.get_by_role("row").filter(has_text="unknown")
    await expect(unknown.get_by_role("cell").nth(1)).to_have_text("1")
    await expect(by_country).to_contain_text("cannot filter on country")
    both = page.get_by_role("region", name="By provider and country")
    await expect(both.get_by_role("row")).to_have_count(6)  # nrs360 CO MX ?, onurix CO MX
    await check_page(page, tmp_path / "screens", "analytics")

    await nrs360.get_by_role("link", name="Messages of nrs360").click()
    await page.wait_for_url("**/console/messages?**provider=nrs360**")
    rows = page.locator("table tbody tr")
    await expect(rows).to_have_count(4)
    await expect(page.locator("table tbody")).not_to_contain_text("onx-")
    await expect(page.locator("table tbody")).not_to_contain_text("old-1")  # before the range

    await page.goto("/console/analytics?from=-7d&provider=onurix")
    await expect(page.get_by_role("img", name="Delivery rate per day")).to_be_visible()
    this, previous = figure(page, "Delivery rate (delivered / settled)")
    await expect(this).to_have_text("33.3 %")
    await expect(previous).to_have_text("—")  # no onurix message before
    await page.get_by_role("link", name="1 failed messages: search them").click()
    await page.wait_for_url("**/console/messages?**provider=onurix**status=failed**")
    await expect(page.locator("table tbody tr")).to_have_count(1)
    await expect(page.locator("table tbody")).to_contain_text("onx-1")


async def test_an_empty_range_says_so_and_a_bad_parameter_says_why(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/analytics")
    await expect(page.locator(".empty")).to_contain_text("No message was submitted in this range")
    await expect(page.locator("table")).to_have_count(0)
    await check_page(page, tmp_path / "screens", "analytics-empty")
    assert await open_refused_page(page, "/console/analytics?bucket=week") == 400
    await expect(page.get_by_role("alert")).to_contain_text("bucket must be hour or day")
    await check_page(page, tmp_path / "screens", "analytics-refused")


async def test_the_form_is_a_shareable_address(page: Page, base_url: str) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/analytics")
    await page.get_by_role("link", name="7 days").click()
    await page.wait_for_url("**/console/analytics?from=-7d")
    form = page.get_by_role("form", name="Delivery figures")
    await expect(form.get_by_label("From")).to_have_value("-7d")
    await form.get_by_label("Group by").select_option("provider")
    await form.get_by_text("Filters").click()
    await form.get_by_label("Only country").fill("CO")
    await form.get_by_role("button", name="Show").click()
    await page.wait_for_url("**from=-7d**group_by=provider**country=CO**")
    await expect(form.get_by_label("Group by")).to_have_value("provider")
    await expect(form.get_by_text("Filters: country = CO")).to_be_visible()
    await expect(form.get_by_label("Only country")).to_have_value("CO")


async def test_a_store_that_does_not_answer_is_a_503(base_url: str, console_app: DlrhubApp) -> None:
    async with signed_in(base_url, ADMIN_TOKEN) as client:
        await console_app.state.store.close()
        answer = await client.get("/console/analytics")
    assert answer.status_code == 503, answer.text
    assert "The store cannot be read right now" in answer.text


async def test_signed_out_goes_to_the_sign_in_form(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.get("/console/analytics?from=-7d")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Fanalytics%3Ffrom%3D-7d"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_same_figures_on_both_backends(tmp_path: Path, backend: str) -> None:
    async with fresh_schema() as schema:
        document = console_document(tmp_path)
        if backend == "postgres":
            document["store"] = {"backend": "postgres", "dsn": POSTGRES_DSN, "schema": schema}
        app = create_app(parse_config(document))
        async with serve_app(app) as url, signed_in(url, VIEWER_TOKEN) as client:
            await seed(app.state.store, datetime.now(UTC))
            answer = await client.get(
                "/console/analytics", params={"group_by": "provider,country", "from": "-7d"}
            )
    assert answer.status_code == 200, answer.text
    page = " ".join(answer.text.split())
    rate = '<th scope="row">Delivery rate (delivered / settled)</th><td>71.4 %</td>'
    assert rate in page  # 5 of 7 settled: the 7 days hold the message of 30 hours ago too
    assert "Delivery rate per day" in page
    assert "<td>UNDELIV</td><td>34</td>" in page
    assert "<td>onurix</td><td>MX</td> <td>2</td><td>50.0 %</td>" in page
    assert "<td>nrs360</td><td>unknown</td> <td>1</td><td>—</td>" in page
