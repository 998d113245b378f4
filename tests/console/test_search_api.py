"""`GET /v1/messages`: the search the console's Messages page makes, for scripts too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from dlrhub.app import DlrhubApp
from dlrhub.event import Status
from dlrhub.store import Store
from tests.console.conftest import ADMIN_TOKEN, VIEWER_TOKEN
from tests.payloads import T0
from tests.store.test_message_search import Sent, send


@pytest.fixture
async def client(console_app: DlrhubApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=console_app)
    async with console_app.router.lifespan_context(console_app):
        headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://console", headers=headers
        ) as client:
            store: Store = console_app.state.store
            for index in range(7):
                await send(
                    store,  # type: ignore[arg-type]
                    Sent(
                        message_id=f"msg-{index}",
                        recipient=f"+57300123{index:04d}",
                        ref=f"order-{index % 2}",
                        status=Status.DELIVERED if index % 2 else Status.SENT,
                        provider="nrs360",
                        source="nrs360",
                        received=T0 + timedelta(minutes=index),
                    ),
                )
            yield client


async def ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    answer = await client.get("/v1/messages", params=params)
    assert answer.status_code == 200, answer.text
    return [message["message_id"] for message in answer.json()["messages"]]


async def test_search_by_each_filter_newest_first(client: httpx.AsyncClient) -> None:
    assert await ids(client) == [f"msg-{i}" for i in range(6, -1, -1)]
    assert await ids(client, correlation_id="order-1") == ["msg-5", "msg-3", "msg-1"]
    assert await ids(client, message_id="msg-4") == ["msg-4"]
    assert await ids(client, recipient="0003") == ["msg-3"]
    assert await ids(client, recipient="+573001230003") == ["msg-3"]
    assert await ids(client, status="sent") == ["msg-6", "msg-4", "msg-2", "msg-0"]
    assert await ids(client, provider="360nrs", since=(T0 + timedelta(minutes=5)).isoformat()) == [
        "msg-6",
        "msg-5",
    ]
    assert await ids(client, until="2000-01-01T00:00:00Z") == []


async def test_pages_follow_the_cursor_to_the_end(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    params = {"limit": "3"}
    while True:
        page = (await client.get("/v1/messages", params=params)).json()
        seen += [message["message_id"] for message in page["messages"]]
        if page["next_before_seq"] is None:
            break
        params["before_seq"] = str(page["next_before_seq"])
    assert seen == [f"msg-{i}" for i in range(6, -1, -1)]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"recipient": "123"}, "4"),
        ({"status": "lost"}, "status"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"before_seq": "-1"}, "before_seq"),
        ({"ref": "x"}, "unknown query parameter"),
        ({"message_id": "x" * 201}, "longer than"),
        ({"correlation_id": "a\x00b"}, "control characters"),
    ],
)
async def test_a_bad_search_is_a_400_that_says_why(
    client: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    answer = await client.get("/v1/messages", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request" and says in answer.json()["detail"]


async def test_search_needs_a_token(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/messages", headers={"Authorization": ""})
    assert answer.status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await client.get("/v1/messages", headers=admin)).status_code == 200
