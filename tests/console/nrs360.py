"""A 360NRS source for console tests, and real callbacks posted to its hook routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.payloads import FORM, event_form

SOURCE_TOKEN = "console-source-token-0001"


def nrs360_source(token: str = SOURCE_TOKEN) -> dict[str, Any]:
    """The `[[sources]]` entry the hook routes `/hooks/nrs360/...` need."""
    return {"name": "nrs360", "provider": "360nrs", "token": token}


async def post_event(
    client: httpx.AsyncClient,
    event: str,
    message_id: str,
    token: str = SOURCE_TOKEN,
    **fields: str,
) -> httpx.Response:
    """A 360NRS event notification (form POST) for `message_id`."""
    answer = await client.post(
        "/hooks/nrs360/events",
        params={"token": token},
        content=event_form(event, message_id, **fields),
        headers=FORM,
    )
    assert answer.status_code == 200, answer.text
    return answer


async def post_receipt(
    client: httpx.AsyncClient, status: str, token: str = SOURCE_TOKEN, **params: str
) -> httpx.Response:
    """A 360NRS delivery receipt (GET on `notificationUrl`): `ref`, `phone`, `id`..."""
    answer = await client.get(
        "/hooks/nrs360/dlr", params={"token": token, "status": status, **params}
    )
    assert answer.status_code == 200, answer.text
    return answer


@contextlib.asynccontextmanager
async def signed_in(base_url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client holding a console session for `token`."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.post("/console/login", data={"token": token})
        assert answer.status_code == 303, answer.text
        yield client
