"""The Onurix fake speaks the document by default: 520 `{error, msg}` for every refusal,
states that advance with time (not per query), and other answers only as named faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.testing.faults import Fault
from dlrhub.testing.progress import ManualClock
from tests.serving import serve_app


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeOnurix, httpx.AsyncClient, ManualClock]]:
    clock = ManualClock()
    fake = FakeOnurix(clock=clock)
    async with (
        serve_app(fake.app) as base_url,
        httpx.AsyncClient(base_url=f"{base_url}/api/v1") as http,
    ):
        yield fake, http, clock


def credentials(fake: FakeOnurix, **extra: str) -> dict[str, str]:
    return {"client": fake.client, "key": fake.key, **extra}


async def test_every_refusal_is_520_with_error_and_msg(
    served: tuple[FakeOnurix, httpx.AsyncClient, ManualClock],
) -> None:
    fake, http, _ = served
    refusals = [
        await http.get("/messages-state", params={"client": fake.client, "key": "x", "id": "1"}),
        await http.post("/send-sms", data={"client": "0", "key": fake.key, "phone": "57315"}),
        await http.get("/messages-state", params=credentials(fake, id="msg-404")),
        await http.post("/send-sms", data=credentials(fake, phone="573150123456", sms="")),
        await http.post("/call/send", data=credentials(fake)),
        await http.post("/messages-state", data=credentials(fake, id="1")),
        await http.get("/no-such-path"),
    ]
    for answer in refusals:
        assert answer.status_code == 520, answer.text
        body = answer.json()
        assert set(body) == {"error", "msg"} and body["msg"].startswith("Parametros invalidos")
    assert "key" in refusals[0].json()["msg"] and "key" in refusals[1].json()["msg"]
    assert "no existe" in refusals[2].json()["msg"]


async def test_states_advance_with_time_not_with_queries(
    served: tuple[FakeOnurix, httpx.AsyncClient, ManualClock],
) -> None:
    fake, http, clock = served
    fake.step_seconds = (1.0, 5.0)  # Pendiente for 1 s, Enviado for 5 s, then Entregado

    async def state(message_id: str) -> str:
        answer = await http.get("/messages-state", params=credentials(fake, id=message_id))
        return str(answer.json()["state"])

    sent = await http.post("/send-sms", data=credentials(fake, phone="573150123456", sms="Hola"))
    (item,) = sent.json()["data"]
    assert [await state(item["id"]) for _ in range(5)] == ["Pendiente"] * 5
    clock.advance(1.0)
    assert await state(item["id"]) == "Enviado"
    clock.advance(4.9)
    assert await state(item["id"]) == "Enviado"
    clock.advance(0.1)
    assert [await state(item["id"]) for _ in range(2)] == ["Entregado"] * 2
    message = fake.messages[item["id"]]
    assert message.queries == 9 and [a.final for a in message.answers][-2:] == [True, True]
    assert message.timeline.queried_after_final() == 1  # the over-poll shows
    group = await http.get("/messages-state", params=credentials(fake, id=sent.json()["id"]))
    assert [entry["state"] for entry in group.json()] == ["Entregado"]


async def test_other_answers_are_named_faults(
    served: tuple[FakeOnurix, httpx.AsyncClient, ManualClock],
) -> None:
    fake, http, _ = served
    fake.add_message("573150123456")
    query = credentials(fake, id="msg-1")
    fake.inject(Fault("unauthorized", path="/api/v1/messages-state"))
    fake.inject(Fault("rate_limited", path="/api/v1/messages-state", seconds=3))
    fake.inject(Fault("html_502", path="/api/v1/messages-state"))
    fake.inject(Fault("garbage", path="/api/v1/messages-state"))
    unauthorized = await http.get("/messages-state", params=query)
    assert (unauthorized.status_code, unauthorized.json()["error"]) == (401, "401")
    limited = await http.get("/messages-state", params=query)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    html = await http.get("/messages-state", params=query)
    assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
    garbage = await http.get("/messages-state", params=query)
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        garbage.json()
    assert (await http.get("/messages-state", params=query)).json()["state"] == "Pendiente"
    fake.refuse_credentials_with = 401
    wrong = await http.get("/messages-state", params={**query, "key": "wrong"})
    assert wrong.status_code == 401
