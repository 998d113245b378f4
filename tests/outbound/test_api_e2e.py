"""The real app on loopback: send and track over the API, the embedded poller, readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import Config
from dlrhub.outbound.poller import Poller
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.providers.uvox.fake import FakeUvox
from dlrhub.testing.faults import Fault
from tests.conftest import ADMIN_TOKEN
from tests.outbound.conftest import Stores, outbound_config
from tests.serving import serve_app
from tests.waiting import eventually_async


def accounts(onurix: tuple[FakeOnurix, str], uvox: tuple[FakeUvox, str]) -> list[dict[str, Any]]:
    (fake_onurix, onurix_base), (fake_uvox, uvox_base) = onurix, uvox
    return [
        {
            "name": "onx",
            "provider": "onurix",
            "base_url": f"{onurix_base}/api/v1",
            "client": fake_onurix.client,
            "key": fake_onurix.key,
        },
        {
            "name": "onx-bad",
            "provider": "onurix",
            "base_url": f"{onurix_base}/api/v1",
            "client": fake_onurix.client,
            "key": "not-the-key-0123",
        },
        {
            "name": "uvx",
            "provider": "uvox",
            "base_url": f"{uvox_base}/api/get-api/v1",
            "accountnumber": fake_uvox.accountnumber,
            "apikey": fake_uvox.apikey,
            "sender": "UVox",
        },
    ]


@pytest.fixture
async def served(
    stores: Stores, onurix: tuple[FakeOnurix, str], uvox: tuple[FakeUvox, str]
) -> AsyncIterator[tuple[Config, httpx.AsyncClient, Poller]]:
    """The app on the `stores` backend (SQLite, then PostgreSQL)."""
    onurix[0].progression = ("Enviado", "Entregado")
    config = outbound_config(stores, accounts(onurix, uvox), enabled=True)
    poller = Poller(config, None)
    app = create_app(config, services=[poller])
    poller.bind(app.state.store, app.state.metrics.registry)
    async with serve_app(app) as base_url:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as admin:
            yield config, admin, poller


async def answered(admin: httpx.AsyncClient, path: str, want: str, seconds: float = 10) -> Any:
    """The JSON of `path` once it answers 200 with `want` in it."""
    answer: httpx.Response | None = None

    async def wanted() -> bool:
        nonlocal answer
        answer = await admin.get(path)
        return answer.status_code == 200 and want in answer.text

    await eventually_async(
        wanted, seconds, lambda: f"{path} to answer 200 with {want}; last: {answer and answer.text}"
    )
    assert answer is not None
    return answer.json()


async def _message_status(admin: httpx.AsyncClient, path: str, status: str) -> bool:
    answer = await admin.get(path)
    return answer.status_code == 200 and (answer.json()["message"] or {}).get("status") == status


async def test_send_over_the_api_then_the_embedded_poller_follows_it(
    served: tuple[Config, httpx.AsyncClient, Poller],
) -> None:
    _, admin, _ = served
    answer = await admin.post(
        "/v1/messages",
        json={"account": "onx", "to": ["573150123456", "5731"], "text": "Hola", "refs": ["a", "b"]},
    )
    assert answer.status_code == 200, answer.text
    accepted, rejected = answer.json()["messages"]
    assert (accepted["status"], accepted["ref"]) == ("accepted", "a")
    assert (rejected["status"], rejected["provider_status"]) == ("rejected", "Rechazado")
    path = f"/v1/messages/onurix/{accepted['message_id']}"
    # The state and the history are two reads: a commit may land between them, so
    # "delivered" in the history alone does not mean the state says it yet.
    await eventually_async(
        lambda: _message_status(admin, path, "delivered"), 10, "the message to be delivered"
    )
    state = (await admin.get(path)).json()
    assert [e["status"] for e in state["events"]] == ["accepted", "sent", "delivered"]
    metrics = (await admin.get("/metrics")).text
    assert 'dlrhub_poller_requests_total{account="onx",outcome="answered"}' in metrics
    ready = (await admin.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["outbound"] == {"paused_accounts": []}


async def test_track_over_the_api_and_an_auth_error_shows_in_readyz(
    served: tuple[Config, httpx.AsyncClient, Poller],
    onurix: tuple[FakeOnurix, str],
    uvox: tuple[FakeUvox, str],
) -> None:
    _, admin, _ = served
    message_id = uvox[0].add_message()
    body = {"account": "uvx", "messages": [{"message_id": message_id, "ref": "t-1"}]}
    first = await admin.post("/v1/tracking", json=body)
    again = await admin.post("/v1/tracking", json=body)
    assert first.json() == {"tracked": 1, "already_tracked": 0}
    assert again.json() == {"tracked": 0, "already_tracked": 1}
    state = await answered(admin, f"/v1/messages/uvox/{message_id}", '"013"')
    assert [e["provider_status"] for e in state["events"]] == ["011", "013"]
    assert state["events"][0]["correlation_id"] == "t-1"

    onurix[0].refuse_credentials_with = 401  # the document shows 520; this is the 401 mode
    bad = {"account": "onx-bad", "messages": [{"message_id": "msg-x"}]}
    assert (await admin.post("/v1/tracking", json=bad)).status_code == 200
    ready = await answered(admin, "/readyz", "onx-bad")
    (pause,) = ready["outbound"]["paused_accounts"]
    assert pause["account"] == "onx-bad" and "HTTP 401" in pause["reason"]
    metrics = (await admin.get("/metrics")).text
    assert 'dlrhub_poller_account_paused{account="onx-bad"} 1.0' in metrics


async def test_a_malformed_answer_shows_on_the_account_in_metrics(
    served: tuple[Config, httpx.AsyncClient, Poller], onurix: tuple[FakeOnurix, str]
) -> None:
    _, admin, _ = served
    fake = onurix[0]
    message = fake.add_message("573150123456")
    fake.inject(Fault("status", "/api/v1/messages-state", status=200, body=b"<html>oops</html>"))
    body = {"account": "onx", "messages": [{"message_id": message.id}]}
    assert (await admin.post("/v1/tracking", json=body)).status_code == 200
    await answered(admin, f"/v1/messages/onurix/{message.id}", "delivered")
    metrics = (await admin.get("/metrics")).text
    assert 'dlrhub_poller_bad_answers_total{account="onx"} 1.0' in metrics
    (last,) = [line for line in metrics.splitlines() if line.startswith("dlrhub_poller_last_bad")]
    assert 'account="onx"' in last and "JSON" in last


async def test_api_refusals_are_json_errors(
    served: tuple[Config, httpx.AsyncClient, Poller], onurix: tuple[FakeOnurix, str]
) -> None:
    _, admin, _ = served
    onurix[0].refuse_credentials_with = 401  # the document shows 520; this is the 401 mode
    unauthorized = await admin.post("/v1/messages", json={}, headers={"Authorization": "Bearer x"})
    assert unauthorized.status_code == 401
    cases = [
        ({"account": "nobody", "to": "1", "text": "x"}, 404, "unknown_account"),
        ({"account": "onx", "to": [], "text": "x"}, 400, "bad_request"),
        ({"account": "onx", "to": "573150123456", "text": "x", "colour": 1}, 400, "bad_request"),
        (
            {"account": "onx", "to": ["1", "2"], "text": "x", "refs": ["same", "same"]},
            400,
            "bad_request",
        ),
        ({"account": "onx-bad", "to": "573150123456", "text": "x"}, 502, "provider_auth_failed"),
    ]
    for body, status, error in cases:
        answer = await admin.post("/v1/messages", json=body)
        assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    provider = await admin.post(
        "/v1/messages", json={"account": "onx-bad", "to": "573150123456", "text": "x"}
    )
    assert provider.json()["provider_code"] == "401"
    not_json = await admin.post(
        "/v1/tracking", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
