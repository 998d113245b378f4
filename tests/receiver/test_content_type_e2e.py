"""Which Content-Type each callback route takes, against the real app under Uvicorn.

360NRS's document shows its progress notifications' JSON and never their
Content-Type (providers/360nrs-api.txt ~l.5061), so that route takes any when the
body parses as JSON; every other route keeps its 415.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dlrhub.providers import PROVIDERS
from dlrhub.providers.base import Route
from tests.conftest import SOURCE_TOKEN, Running
from tests.payloads import FORM, event_form

TOKEN = {"token": SOURCE_TOKEN}
PROGRESS = orjson.dumps(
    {"data": {"id": 2, "status": "finished", "finishedAt": "2018-09-20T07:23:56+00:00"}}
)


async def post_progress(running: Running, body: bytes, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    answer = await running.client.post(
        "/hooks/nrs360/progress", params=TOKEN, content=body, headers=headers
    )
    if content_type is None:
        assert "content-type" not in answer.request.headers
    return answer


async def stored_events(running: Running) -> list[dict[str, Any]]:
    answer = await running.admin.get("/v1/events")
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "text/plain; charset=UTF-8",
    "application/x-www-form-urlencoded",
    "",
    None,
]


async def test_progress_json_is_taken_whatever_its_content_type(running: Running) -> None:
    for index, content_type in enumerate(CONTENT_TYPES):
        body = orjson.dumps({"data": {"id": index, "status": "finished"}})
        answer = await post_progress(running, body, content_type)
        assert answer.status_code == 200, (content_type, answer.text)
        assert answer.json()["status"] == "stored"
    events = await stored_events(running)
    assert [(e["type"], e["message_id"]) for e in events] == [
        ("job.progress", str(index)) for index in range(len(CONTENT_TYPES))
    ]


async def test_progress_that_is_not_json_under_another_content_type_is_415(
    running: Running,
) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        for body in (b"", b"status=finished", b'{"data": ', b"\xff\xfe", PROGRESS[:-1]):
            answer = await post_progress(running, body, content_type)
            assert answer.status_code == 415, (content_type, body, answer.text)
            assert answer.json()["error"] == "unsupported_media_type"
            assert set(answer.json()) == {"error", "detail"}
    assert await stored_events(running) == []
    assert (await running.admin.get("/v1/quarantine")).json()["entries"] == []


async def test_progress_declared_json_that_does_not_parse_is_still_quarantined(
    running: Running,
) -> None:
    answer = await post_progress(running, b'{"data": ', "application/json")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "quarantined"


async def test_every_other_route_still_checks_its_content_type(running: Running) -> None:
    as_json = await running.client.post(
        "/hooks/nrs360/events", params=TOKEN, content=b'{"event": "sent"}'
    )
    as_text = await running.client.post(
        "/hooks/nrs360/events",
        params=TOKEN,
        content=event_form("sent"),
        headers={"Content-Type": "text/plain"},
    )
    for answer in (as_json, as_text):
        assert answer.status_code == 415, answer.text
        assert answer.json()["error"] == "unsupported_media_type"
    taken = await running.client.post(
        "/hooks/nrs360/events", params=TOKEN, content=event_form("sent"), headers=FORM
    )
    assert taken.status_code == 200
    unauthorized = await running.client.post(
        "/hooks/nrs360/progress",
        params={"token": "wrong-token-0123456789"},
        content=PROGRESS,
        headers={"Content-Type": "text/plain"},
    )
    assert unauthorized.status_code == 401  # leniency comes after authentication


async def test_the_openapi_document_says_which_routes_take_any_content_type(
    running: Running,
) -> None:
    paths = (await running.client.get("/openapi.json")).json()["paths"]
    progress = paths["/hooks/{source}/progress"]["post"]
    assert set(progress["requestBody"]["content"]) == {"application/json", "*/*"}
    assert "parses as JSON" in progress["requestBody"]["description"]
    assert "not JSON" in progress["responses"]["415"]["description"]
    events = paths["/hooks/{source}/events"]["post"]
    assert set(events["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert "description" not in events["requestBody"]


def test_only_360nrs_progress_is_lenient_and_only_a_json_route_can_be() -> None:
    lenient = [
        (provider.name, route.kind)
        for provider in PROVIDERS.values()
        if provider.source is not None
        for route in provider.source.routes
        if route.lenient_content_type
    ]
    assert lenient == [("nrs360", "progress")]
    with pytest.raises(ValueError, match="JSON body"):
        Route("dlr", ("POST",), body="form", lenient_content_type=True)
