"""The UVox fake speaks the document by default: HTTP 200 with its three-digit codes, a
status that advances with time (not per query), and other answers only as named faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dlrhub.providers.uvox.fake import FakeUvox
from dlrhub.testing.faults import Fault
from dlrhub.testing.progress import ManualClock
from tests.serving import serve_app

DOCUMENTED = {"001", "002", "003", "004", "005", "009", "010", "011", "012", "013", "016", "017"}
DOCUMENTED |= {"500"}


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeUvox, httpx.AsyncClient, ManualClock]]:
    clock = ManualClock()
    fake = FakeUvox(clock=clock, step_seconds=2.0)
    async with (
        serve_app(fake.app) as base_url,
        httpx.AsyncClient(base_url=f"{base_url}/api/get-api/v1") as http,
    ):
        yield fake, http, clock


def credentials(fake: FakeUvox, **extra: str) -> dict[str, str]:
    return {"accountnumber": fake.accountnumber, "apikey": fake.apikey, **extra}


async def test_every_answer_is_200_with_a_documented_code(
    served: tuple[FakeUvox, httpx.AsyncClient, ManualClock],
) -> None:
    fake, http, _ = served
    answers = {
        "001": await http.get("/sms-api", params={**credentials(fake), "apikey": "wrong"}),
        "016": await http.get("/sms-api", params={"accountnumber": fake.accountnumber}),
        "003": await http.get("/sms-api", params=credentials(fake, **{"from": "U", "to": "1"})),
        "002": await http.get(
            "/sms-api", params=credentials(fake, **{"from": "U", "to": "13055454xx", "text": "x"})
        ),
        "010": await http.get("/sms-status", params=credentials(fake, messageId="999")),
        "004": await http.put("/sms-api", params=credentials(fake)),
        "017": await http.get("/no-such-api", params=credentials(fake)),
    }
    for code, answer in answers.items():
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["code"] == code and body["code"] in DOCUMENTED
        assert {"version", "code", "status", "resultstring", "statusmessage"} <= set(body)


async def test_status_advances_with_time_and_waits_without_credit(
    served: tuple[FakeUvox, httpx.AsyncClient, ManualClock],
) -> None:
    fake, http, clock = served

    async def code(message_id: str) -> str:
        answer = await http.get("/sms-status", params=credentials(fake, messageId=message_id))
        return str(answer.json()["code"])

    message_id = fake.add_message()
    assert [await code(message_id) for _ in range(4)] == ["011"] * 4
    clock.advance(2.0)
    assert await code(message_id) == "013"
    fake.no_credit = True
    sent = await http.get(
        "/sms-api", params=credentials(fake, **{"from": "U", "to": "13058888888", "text": "x"})
    )
    held = str(sent.json()["id"])
    assert sent.json()["code"] == "009"
    clock.advance(10.0)
    assert (await code(held), await code(message_id)) == ("012", "013")  # a final stays final
    fake.no_credit = False
    assert await code(held) == "011"  # its progression starts once there is credit
    clock.advance(2.0)
    assert await code(held) == "013"
    assert fake.messages[message_id].queried_after_final() == 1


async def test_other_answers_are_named_faults(
    served: tuple[FakeUvox, httpx.AsyncClient, ManualClock],
) -> None:
    fake, http, _ = served
    message_id = fake.add_message()
    fake.inject(Fault("unauthorized", path=fake.status_path))
    fake.inject(Fault("rate_limited", path=fake.status_path))
    fake.inject(Fault("html_502", path=fake.status_path))
    query = credentials(fake, messageId=message_id)
    unauthorized = await http.get("/sms-status", params=query)
    assert (unauthorized.status_code, unauthorized.json()["code"]) == (401, "001")
    limited = await http.get("/sms-status", params=query)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert (await http.get("/sms-status", params=query)).status_code == 502
    assert (await http.get("/sms-status", params=query)).json()["code"] == "011"
