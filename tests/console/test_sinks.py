"""Sinks in the API (`/v1/sinks...`) and the console (`/console/sinks`).

The app has a configured jsonl sink and no sink worker: its state (10 events in the
log, 2 dead letters, a last error) is written straight through the `SinkStateStore`
before the app starts, so every change the API makes stays visible (a pause stays a
pause, a queued replay stays pending, a retried dead letter stays queued).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from dlrhub.app import create_app
from dlrhub.config import Config, parse_config
from dlrhub.console.sinks import Throughput
from dlrhub.sinks.service import SinkService
from dlrhub.store import EventFilter
from tests.console.conftest import ADMIN_TOKEN, VIEWER_TOKEN, check_page, console_document, sign_in
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app
from tests.sinks.conftest import SECRET, Receiver, harness, ingest, make_events
from tests.waiting import eventually_async

SINK = "billing"
ERROR = "answered 400: the payload was refused"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


@pytest.fixture
async def console_config(tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """With a jsonl sink (unless parametrized False), 10 events and 2 dead letters."""
    if not getattr(request, "param", True):
        return parse_config(console_document(tmp_path))
    sink = {"name": SINK, "kind": "jsonl", "path": str(tmp_path / "out.jsonl")}
    config = parse_config(console_document(tmp_path, sinks=[sink]))
    async with harness(config) as h:
        await ingest(h.store, make_events(10))
        await h.state.ensure(SINK, start_after=4)
        stored = await h.store.events(EventFilter(limit=10))
        for event in stored[2:4]:
            await h.state.add_dead_letter(SINK, event, ERROR, 3)
        await h.state.record_error(SINK, ERROR, datetime.now(UTC))
    return config


def client(base_url: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers=headers or {})


async def test_reports_and_one_sink(base_url: str) -> None:
    async with client(base_url, ADMIN) as api:
        listing = (await api.get("/v1/sinks")).json()["sinks"]
        assert [sink["name"] for sink in listing] == [SINK]
        report = listing[0]
        assert (report["kind"], report["state"], report["after_seq"]) == ("jsonl", "failing", 4)
        assert (report["lag_events"], report["dead_letters"]) == (6, 2)
        assert report["last_error"] == ERROR and report["last_error_at"]
        assert report["throughput"] is None  # one look only
        one = await api.get(f"/v1/sinks/{SINK}")
        assert one.status_code == 200 and one.json()["name"] == SINK
        missing = await api.get("/v1/sinks/nope")
        assert missing.status_code == 404
        assert missing.json() == {
            "error": "not_found",
            "detail": f"no sink named 'nope' (sinks: {SINK})",
        }
        assert (await api.get("/v1/sinks?x=1")).status_code == 400


async def test_pause_resume_replay_and_dead_letters(base_url: str) -> None:
    async with client(base_url, ADMIN) as api:
        paused = await api.post(f"/v1/sinks/{SINK}/pause")
        assert paused.status_code == 200
        assert paused.json()["sink"]["state"] == "paused"
        assert paused.json()["detail"] == f"sink {SINK} paused"
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["state"] == "paused"
        resumed = await api.post(f"/v1/sinks/{SINK}/resume", json={})
        assert resumed.json()["sink"]["state"] == "failing"

        preview = await api.post(f"/v1/sinks/{SINK}/replay", json={"since_seq": 0, "dry_run": True})
        assert preview.status_code == 200
        assert {k: preview.json()[k] for k in ("events", "after_seq", "until_seq")} == {
            "events": 10,
            "after_seq": 0,
            "until_seq": 10,
        }
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["replays_pending"] == 0
        part = await api.post(
            f"/v1/sinks/{SINK}/replay", json={"since_seq": 3, "until_seq": 5, "dry_run": True}
        )
        assert part.json()["events"] == 2
        past = datetime.now(UTC) - timedelta(days=1)
        since = await api.post(
            f"/v1/sinks/{SINK}/replay", json={"since": past.isoformat(), "dry_run": True}
        )
        assert since.json()["events"] == 10
        future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")  # UTC
        nothing = await api.post(f"/v1/sinks/{SINK}/replay", json={"since": future})
        assert nothing.status_code == 200 and nothing.json()["job"] is None
        queued = await api.post(f"/v1/sinks/{SINK}/replay", json={"since_seq": 0})
        assert queued.status_code == 202
        assert queued.json()["job"]["until_seq"] == 10
        assert "queued: events 1..10" in queued.json()["detail"]
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["replays_pending"] == 1

        letters = (await api.get(f"/v1/sinks/{SINK}/dead-letters")).json()
        assert [letter["error"] for letter in letters["dead_letters"]] == [ERROR, ERROR]
        assert {letter["state"] for letter in letters["dead_letters"]} == {"dead"}
        first, second = (letter["id"] for letter in letters["dead_letters"])
        assert letters["dead_letters"][0]["message_id"].startswith("msg-")
        retried = await api.post(f"/v1/sinks/{SINK}/dead-letters/retry", json={"ids": [first]})
        assert retried.json()["retried"] == 1
        queued_letters = await api.get(f"/v1/sinks/{SINK}/dead-letters", params={"state": "retry"})
        assert [letter["id"] for letter in queued_letters.json()["dead_letters"]] == [first]
        page = await api.get(f"/v1/sinks/{SINK}/dead-letters", params={"after_id": first})
        assert [letter["id"] for letter in page.json()["dead_letters"]] == [second]
        dropped = await api.post(f"/v1/sinks/{SINK}/dead-letters/drop", json={"ids": [second]})
        detail = f"1 dead letter(s) of sink {SINK} dropped"
        assert dropped.json() == {"dropped": 1, "detail": detail}
        everything = await api.post(f"/v1/sinks/{SINK}/dead-letters/drop", json={"all": True})
        assert everything.json()["dropped"] == 1
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["dead_letters"] == 0


async def test_roles(base_url: str) -> None:
    changes = [
        ("/pause", None),
        ("/resume", None),
        ("/replay", {"since_seq": 0, "dry_run": True}),
        ("/dead-letters/retry", {"all": True}),
        ("/dead-letters/drop", {"all": True}),
    ]
    async with client(base_url, VIEWER) as viewer, client(base_url) as stranger:
        for path in ("/v1/sinks", f"/v1/sinks/{SINK}", f"/v1/sinks/{SINK}/dead-letters"):
            assert (await viewer.get(path)).status_code == 200
            assert (await stranger.get(path)).status_code == 401
        for path, body in changes:
            refused = await viewer.post(f"/v1/sinks/{SINK}{path}", json=body)
            assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
            assert (await stranger.post(f"/v1/sinks/{SINK}{path}", json=body)).status_code == 401
        assert (await viewer.get(f"/v1/sinks/{SINK}")).json()["dead_letters"] == 2
    async with client(base_url) as session:
        await session.post("/console/login", data={"token": ADMIN_TOKEN})
        page = (await session.get("/console/sinks")).text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        missing = await session.post(f"/v1/sinks/{SINK}/pause")
        assert missing.status_code == 403 and missing.json()["error"] == "csrf"
        right = await session.post(f"/v1/sinks/{SINK}/pause", headers={"X-CSRF-Token": csrf})
        assert right.status_code == 200


BAD_REPLAYS: list[Any] = [
    {},
    {"dry_run": True},
    {"since_seq": 0, "since": "2026-01-01T00:00:00Z"},
    {"since_seq": -1},
    {"since_seq": "0"},
    {"since_seq": True},
    {"since_seq": 1.5},
    {"since_seq": 2**63},
    {"since_seq": 0, "until_seq": -3},
    {"since_seq": 0, "dry_run": "yes"},
    {"since_seq": 0, "extra": 1},
    {"since": "yesterday"},
    {"since": 5},
    {"since": "0001-01-01T00:00:00+01:00"},
    [1],
    "text",
]
BAD_CHOICES: list[Any] = [
    {},
    {"ids": []},
    {"ids": [1], "all": True},
    {"all": False},
    {"all": "true"},
    {"ids": ["1"]},
    {"ids": [-1]},
    {"ids": 1},
    {"ids": [1], "extra": 1},
]


async def test_bad_input_is_a_400_saying_why(base_url: str) -> None:
    async with client(base_url, ADMIN) as api:
        for body in BAD_REPLAYS:
            answer = await api.post(f"/v1/sinks/{SINK}/replay", json=body)
            assert answer.status_code == 400, body
            assert answer.json()["error"] == "bad_request" and answer.json()["detail"]
        for action in ("retry", "drop"):
            for body in BAD_CHOICES:
                answer = await api.post(f"/v1/sinks/{SINK}/dead-letters/{action}", json=body)
                assert answer.status_code == 400, (action, body)
        for query in ({"state": "gone"}, {"limit": "0"}, {"after_id": "-1"}, {"page": "2"}):
            answer = await api.get(f"/v1/sinks/{SINK}/dead-letters", params=query)
            assert answer.status_code == 400, query
        not_json = await api.post(
            f"/v1/sinks/{SINK}/replay", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        text = await api.post(f"/v1/sinks/{SINK}/replay", content=b"since_seq=0")
        assert text.status_code == 400
        assert (await api.post(f"/v1/sinks/{SINK}/pause", json={"now": True})).status_code == 400
        # Nothing changed on the way.
        report = (await api.get(f"/v1/sinks/{SINK}")).json()
        assert (report["state"], report["replays_pending"], report["dead_letters"]) == (
            "failing",
            0,
            2,
        )


async def test_an_unknown_sink_is_a_404_everywhere(base_url: str) -> None:
    async with client(base_url, ADMIN) as api:
        for path, body in [
            ("/pause", None),
            ("/resume", None),
            ("/replay", {"since_seq": 0}),
            ("/dead-letters/retry", {"all": True}),
            ("/dead-letters/drop", {"all": True}),
        ]:
            answer = await api.post(f"/v1/sinks/nope{path}", json=body)
            assert answer.status_code == 404, path
            assert answer.json()["error"] == "not_found"
        assert (await api.get("/v1/sinks/nope/dead-letters")).status_code == 404


def test_throughput_is_the_delivered_count_per_minute() -> None:
    now = [100.0]
    rate = Throughput(lambda: now[0])
    assert rate.per_minute("s", 10) is None
    now[0] += 30
    assert rate.per_minute("s", 70) == 120.0
    now[0] += 400  # the old samples age out of the window
    assert rate.per_minute("s", 80) is None
    now[0] += 60
    assert rate.per_minute("s", 80) == 0.0
    now[0] += 60
    assert rate.per_minute("s", 5) is None  # the count went back: start again


async def test_pages_for_an_admin(page: Page, base_url: str, tmp_path: Path) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, ADMIN_TOKEN, "/console/sinks")
    row = page.locator(f'tr[data-sink="{SINK}"]')
    await expect(row.locator("td.state")).to_have_text("failing")
    await expect(row.locator("td.state")).to_have_class("state state-failing")
    await expect(row).to_contain_text(ERROR)
    await check_page(page, tmp_path / "screens", "sinks")

    await row.get_by_role("button", name="Pause").click()
    await expect(row.locator("td.state")).to_have_text("paused")
    async with client(base_url, ADMIN) as api:
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["state"] == "paused"
        await row.get_by_role("button", name="Resume").click()
        await expect(row.locator("td.state")).to_have_text("failing")
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["state"] == "failing"

        await row.get_by_role("link", name=SINK).click()
        await page.wait_for_url(f"**/console/sinks/{SINK}")
        await page.get_by_role("heading", name=f"Sink {SINK}").wait_for()
        await page.get_by_label("After seq").fill("0")
        await page.get_by_role("button", name="Preview").click()
        output = page.locator("#replay-preview")
        await expect(output).to_contain_text("10 event(s) would be replayed")
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["replays_pending"] == 0
        await page.get_by_role("button", name="Queue replay").click()
        await expect(page.locator("#status")).to_contain_text("queued: events 1..10")
        await expect(page.locator(".replays-pending")).to_have_text("1")
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["replays_pending"] == 1

        letters = page.locator("tr[data-dead-letter]")
        await expect(letters).to_have_count(2)
        first = letters.nth(0)
        first_id = await first.get_attribute("data-dead-letter")
        await first.get_by_role("button", name="Retry").click()
        await expect(page.locator(f'tr[data-dead-letter="{first_id}"] td.state')).to_have_text(
            "retry"
        )
        retried = await api.get(f"/v1/sinks/{SINK}/dead-letters", params={"state": "retry"})
        assert [str(letter["id"]) for letter in retried.json()["dead_letters"]] == [first_id]

        second = letters.nth(1)
        await second.get_by_role("button", name="Drop").click()
        await expect(letters).to_have_count(1)
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["dead_letters"] == 1
        await check_page(page, tmp_path / "screens", "sink")

        await page.get_by_label(f"Select dead letter {first_id}").check()
        await page.get_by_role("button", name="Drop selected").click()
        await expect(page.get_by_text("No dead letters.")).to_be_visible()
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["dead_letters"] == 0


async def test_pages_for_a_viewer(page: Page, base_url: str, tmp_path: Path) -> None:
    await sign_in(page, VIEWER_TOKEN, "/console/sinks")
    row = page.locator(f'tr[data-sink="{SINK}"]')
    await expect(row.get_by_role("button", name="Pause")).to_be_disabled()
    await page.goto(f"/console/sinks/{SINK}")
    for name in ("Preview", "Queue replay", "Retry all", "Drop all"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()
    await expect(page.locator("tr[data-dead-letter] button:not([disabled])")).to_have_count(0)
    await check_page(page, tmp_path / "screens", "sink-viewer")
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    forced = await page.request.post(
        f"/v1/sinks/{SINK}/pause", headers={"X-CSRF-Token": csrf or ""}, data={}
    )
    assert forced.status == 403
    async with client(base_url, ADMIN) as api:
        assert (await api.get(f"/v1/sinks/{SINK}")).json()["state"] == "failing"


@pytest.mark.parametrize("console_config", [False], indirect=True)
async def test_no_sink_configured_says_how_to_add_one(page: Page, tmp_path: Path) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/sinks")
    await expect(page.get_by_text("No sink is configured.")).to_be_visible()
    await expect(page.locator(".empty pre")).to_contain_text("[[sinks]]")
    await expect(page.locator(".empty")).to_contain_text("docs/sinks.md")
    await check_page(page, tmp_path / "screens", "sinks-empty")


async def test_page_errors(base_url: str) -> None:
    async with client(base_url) as session:
        await session.post("/console/login", data={"token": VIEWER_TOKEN})
        missing = await session.get("/console/sinks/nope")
        assert missing.status_code == 404 and "no sink named" in missing.text
        bad = await session.get(f"/console/sinks/{SINK}", params={"state": "gone"})
        assert bad.status_code == 400 and "state must be" in bad.text
        good = await session.get(f"/console/sinks/{SINK}", params={"state": "dead"})
        assert good.status_code == 200 and ERROR in good.text
    async with client(base_url) as stranger:
        answer = await stranger.get("/console/sinks")
        assert answer.status_code == 303 and "/console/login" in answer.headers["location"]


@pytest.fixture(params=["sqlite", "postgres"])
async def backend_store(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """The `[store]` table of a test on both backends (empty: SQLite)."""
    if request.param == "sqlite":
        yield {}
        return
    async with fresh_schema() as schema:
        yield {"backend": "postgres", "dsn": POSTGRES_DSN, "schema": schema}


async def test_the_api_on_both_backends(tmp_path: Path, backend_store: dict[str, str]) -> None:
    sink = {"name": SINK, "kind": "stdout"}
    document = console_document(tmp_path, sinks=[sink])
    if backend_store:
        document["store"] = backend_store
    config = parse_config(document)
    async with harness(config) as h:
        await ingest(h.store, make_events(5))
        stored = await h.store.events(EventFilter(limit=1))
        await h.state.ensure(SINK, start_after=0)
        await h.state.add_dead_letter(SINK, stored[0], ERROR, 1)
    async with serve_app(create_app(config)) as url, client(url, ADMIN) as api:
        assert (await api.post(f"/v1/sinks/{SINK}/pause")).json()["sink"]["state"] == "paused"
        preview = await api.post(f"/v1/sinks/{SINK}/replay", json={"since_seq": 2, "dry_run": True})
        assert preview.json()["events"] == 3
        queued = await api.post(f"/v1/sinks/{SINK}/replay", json={"since_seq": 2})
        assert queued.status_code == 202
        retried = await api.post(f"/v1/sinks/{SINK}/dead-letters/retry", json={"all": True})
        assert retried.json()["retried"] == 1
        report = (await api.get(f"/v1/sinks/{SINK}")).json()
        assert (report["state"], report["replays_pending"], report["dead_letters"]) == (
            "paused",
            1,
            1,
        )
        letters = (await api.get(f"/v1/sinks/{SINK}/dead-letters")).json()["dead_letters"]
        assert [(letter["state"], letter["error"]) for letter in letters] == [("retry", ERROR)]


async def test_a_running_sink_worker_follows_the_api(tmp_path: Path) -> None:
    """`serve`'s way: the sink service inside the app, a webhook that refuses one event."""
    hook = Receiver()
    async with serve_app(hook.app(), timeout_graceful_shutdown=1) as hook_url:
        hook.base_url = hook_url
        sink = {
            "name": "hook",
            "kind": "webhook",
            "url": f"{hook_url}/hook",
            "secret": SECRET,
            "allow_private": True,
            "batch_size": 1,
            "max_in_flight": 1,
        }  # one lane: the replay below arrives in seq order; fmt: skip
        config = parse_config(console_document(tmp_path, sinks=[sink]))
        events = make_events(6)
        hook.reject_ids = {events[2].id}
        service = SinkService(config, poll_interval=0.01, control_interval=0.05)
        app = create_app(config, services=[service])
        async with serve_app(app) as url, client(url, ADMIN) as api, harness(config) as h:
            await ingest(h.store, events)
            await eventually_async(lambda: len(hook.events) == 5)

            async def letters() -> list[dict[str, Any]]:
                answer = await api.get("/v1/sinks/hook/dead-letters")
                return list(answer.json()["dead_letters"])

            dead = await eventually_async(letters)
            assert dead[0]["event_id"] == events[2].id and "answered 400" in dead[0]["error"]
            report = (await api.get("/v1/sinks/hook")).json()
            assert report["dead_letters"] == 1 and report["lease_owner"]

            hook.reject_ids.clear()
            retried = await api.post("/v1/sinks/hook/dead-letters/retry", json={"all": True})
            assert retried.json()["retried"] == 1
            await eventually_async(lambda: len(hook.events) == 6)
            assert await letters() == []

            await api.post("/v1/sinks/hook/pause")
            await asyncio.sleep(0.3)  # the runner sees the pause within its control interval
            await ingest(h.store, make_events(2))
            await asyncio.sleep(0.5)
            assert len(hook.events) == 6
            assert (await api.get("/v1/sinks/hook")).json()["lag_events"] == 2
            await api.post("/v1/sinks/hook/resume")
            await eventually_async(lambda: len(hook.events) == 8)

            queued = await api.post("/v1/sinks/hook/replay", json={"since_seq": 4})
            assert queued.status_code == 202
            await eventually_async(lambda: len(hook.events) == 12)
            assert [event["seq"] for event in hook.events[8:]] == [5, 6, 7, 8]
