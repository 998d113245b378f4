"""The Poller pages and their routes: accounts, tracked messages, resuming a paused account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from dlrhub.config import Config, parse_config
from dlrhub.event import Status
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.store.tracking import NewTracking
from dlrhub.store.tracking_sql import SQLTrackingStore, open_tracking
from tests.console.conftest import (
    ADMIN_TOKEN,
    VIEWER_TOKEN,
    check_page,
    console_document,
    sign_in,
)
from tests.console.test_quarantine import accept_dialogs, forced_change

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
FAKE = FakeOnurix()  # its credentials; the poller does not run, nothing calls it


def onurix_account(name: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "provider": "onurix",
        "base_url": "http://127.0.0.1:9/api/v1",
        "client": FAKE.client,
        "key": FAKE.key,
        "rate_limit": 7,
        "concurrency": 3,
        "poll": True,
        **extra,
    }


@pytest.fixture
def console_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    accounts = [onurix_account("onx"), onurix_account("quiet", poll=False)]
    if getattr(request, "param", None) == "no accounts":
        accounts = []
    return parse_config(console_document(tmp_path, accounts=accounts))


@pytest.fixture
async def tracking(base_url: str, console_config: Config) -> AsyncIterator[SQLTrackingStore]:
    """The app's tracking tables, as the poller process sees them (the app made them)."""
    store = open_tracking(console_config.store, console_config.data_dir)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def fill(tracking: SQLTrackingStore) -> None:
    now = datetime.now(UTC)
    rows = [
        NewTracking("onx", "onurix", f"m{n}", now, recipient="+34600111222", next_poll_at=now)
        for n in range(3)
    ]
    rows += [
        NewTracking(
            "onx", "onurix", "done", now, status=Status.DELIVERED, stopped_reason="final_status"
        ),
        NewTracking("onx", "onurix", "lost", now, stopped_reason="unknown_id"),
    ]
    await tracking.add(rows)
    await tracking.claim_due("onx", now, 1, "poller-a", now + timedelta(minutes=2))
    await tracking.note_bad_answer("onx", "the answer was not JSON: <html>", now)


async def pause(tracking: SQLTrackingStore) -> None:
    now = datetime.now(UTC)
    reason = "onurix account 'onx': Parametros invalidos: client o key incorrectos"
    await tracking.pause("onx", reason, now, now + timedelta(minutes=15))


async def test_accounts_route_shows_counts_pause_and_bad_answers(
    base_url: str, tracking: SQLTrackingStore
) -> None:
    await fill(tracking)
    await pause(tracking)
    async with httpx.AsyncClient(base_url=base_url, headers=VIEWER) as viewer:
        answer = await viewer.get("/v1/poller/accounts")
        assert answer.status_code == 200
        (account,) = answer.json()["accounts"]  # "quiet" has poll = false
        assert {k: account[k] for k in ("name", "provider", "rate_limit", "concurrency")} == {
            "name": "onx",
            "provider": "onurix",
            "rate_limit": 7,
            "concurrency": 3,
        }
        assert (account["tracked"], account["due"], account["in_flight"]) == (3, 2, 1)
        assert account["stopped"] == {"final_status": 1, "unknown_id": 1}
        assert account["paused"]["reason"].endswith("client o key incorrectos")
        assert account["bad_answers"]["count"] == 1
        assert FAKE.key not in answer.text
        assert (await viewer.get("/v1/poller/accounts?x=1")).status_code == 400


async def test_tracking_route_filters_pages_and_refuses_bad_parameters(
    base_url: str, tracking: SQLTrackingStore
) -> None:
    await fill(tracking)
    async with httpx.AsyncClient(base_url=base_url, headers=VIEWER) as viewer:
        listed = (await viewer.get("/v1/tracking", params={"account": "onx"})).json()
        assert [m["message_id"] for m in listed["messages"]] == ["m0", "m1", "m2", "done", "lost"]
        assert listed["next_after_id"] == listed["messages"][-1]["id"]
        first = (await viewer.get("/v1/tracking?state=active&limit=2")).json()
        assert [m["message_id"] for m in first["messages"]] == ["m0", "m1"]
        rest = await viewer.get(f"/v1/tracking?state=active&after_id={first['next_after_id']}")
        assert [m["message_id"] for m in rest.json()["messages"]] == ["m2"]
        stopped = (await viewer.get("/v1/tracking?stopped_reason=unknown_id")).json()
        assert [m["message_id"] for m in stopped["messages"]] == ["lost"]
        delivered = (await viewer.get("/v1/tracking?status=delivered&state=stopped")).json()
        assert delivered["messages"][0]["stopped_reason"] == "final_status"
        for query in (
            "state=done",
            "stopped_reason=bored",
            "state=active&stopped_reason=max_age",
            "status=happy",
            "limit=0",
            "limit=1001",
            "after_id=-1",
            "after_id=9223372036854775808",
            "colour=red",
        ):
            answer = await viewer.get(f"/v1/tracking?{query}")
            assert answer.status_code == 400, query
            assert answer.json()["error"] == "bad_request"
    async with httpx.AsyncClient(base_url=base_url) as nobody:
        assert (await nobody.get("/v1/tracking")).status_code == 401
        assert (await nobody.get("/v1/poller/accounts")).status_code == 401


async def test_resume_route_roles_and_answers(base_url: str, tracking: SQLTrackingStore) -> None:
    await pause(tracking)
    async with httpx.AsyncClient(base_url=base_url, headers=VIEWER) as viewer:
        refused = await viewer.post("/v1/poller/accounts/onx/resume")
        assert refused.status_code == 403
    async with httpx.AsyncClient(base_url=base_url) as nobody:
        assert (await nobody.post("/v1/poller/accounts/onx/resume")).status_code == 401
    async with httpx.AsyncClient(base_url=base_url, headers=ADMIN) as admin:
        unknown = await admin.post("/v1/poller/accounts/nope/resume")
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_account"
        resumed = await admin.post("/v1/poller/accounts/onx/resume")
        assert resumed.status_code == 200
        assert resumed.json()["was_paused"] is True
        again = await admin.post("/v1/poller/accounts/onx/resume")
        assert again.json()["was_paused"] is False
    assert await tracking.pauses() == []


async def test_pages_answer_bad_parameters_with_a_page(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as session:
        await session.post("/console/login", data={"token": VIEWER_TOKEN})
        assert (await session.get("/console/poller")).status_code == 200
        for query in ("state=done", "limit=x", "stopped_reason=bored", "color=red"):
            answer = await session.get(f"/console/poller/tracking?{query}")
            assert answer.status_code == 400, query
            assert 'role="alert"' in answer.text
        assert (await session.get("/console/poller/tracking?account=onx")).status_code == 200


async def test_admin_resumes_a_paused_account(
    page: Page, tracking: SQLTrackingStore, tmp_path: Path
) -> None:
    await fill(tracking)
    await pause(tracking)
    await sign_in(page, ADMIN_TOKEN, "/console/poller")
    await page.get_by_text("paused until").wait_for()
    assert FAKE.key not in await page.content()
    await check_page(page, tmp_path / "screens", "poller")
    await accept_dialogs(page)
    await page.get_by_role("button", name="Resume onx").click()
    await page.get_by_text("account onx resumed").wait_for()
    await expect(page.get_by_role("button", name="Resume onx")).to_have_count(0)
    assert await tracking.pauses() == []

    await page.get_by_label("1 messages of onx stopped: unknown_id").click()
    await page.wait_for_url("**/console/poller/tracking?account=onx&stopped_reason=unknown_id")
    await page.get_by_text("lost").wait_for()
    assert await page.get_by_text("m0").count() == 0
    await check_page(page, tmp_path / "screens", "poller-tracking")
    await page.get_by_label("Stop reason").select_option("")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_text("m0").wait_for()


async def test_a_viewer_cannot_resume(
    page: Page, tracking: SQLTrackingStore, tmp_path: Path
) -> None:
    await pause(tracking)
    await sign_in(page, VIEWER_TOKEN, "/console/poller")
    assert await page.get_by_role("button", name="Resume onx").is_disabled()
    forced = await forced_change(page, "/v1/poller/accounts/onx/resume", {})
    assert forced.status == 403
    assert len(await tracking.pauses()) == 1


async def test_empty_states_say_what_to_do(page: Page, tmp_path: Path) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/poller/tracking?account=onx")
    await page.get_by_text("No tracked message matches.").wait_for()
    await check_page(page, tmp_path / "screens", "poller-tracking-empty")


@pytest.mark.parametrize("console_config", ["no accounts"], indirect=True)
async def test_no_accounts_explains_how_to_add_one(page: Page, tmp_path: Path) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/poller")
    await page.get_by_text("No account is polled.").wait_for()
    assert "poll = true" in await page.content()
    await check_page(page, tmp_path / "screens", "poller-empty")
