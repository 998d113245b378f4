"""Whatever a caller sends, the receiver answers with a deliberate status and JSON.

Drives the real app in-process (httpx's ASGI transport) so hypothesis can try
many inputs quickly; the end-to-end tests cover the same app under Uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.app import create_app
from dlrhub.config import load_config
from tests.conftest import SOURCE_TOKEN, write_config

FIELDS = ["id", "channel", "event", "eventDate", "extra", "contactId", "campaignName"]
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_config(write_config(tmp_path), env={}))
    await app.state.store.open()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dlrhub") as client:
            yield client
    finally:
        await app.state.store.close()


def assert_deliberate(answer: httpx.Response) -> None:
    assert answer.status_code in {200, 400, 401, 413, 415}, answer.text
    body = orjson.loads(answer.content)
    if answer.status_code == 200:
        assert body["status"] in {"stored", "duplicate", "quarantined"}
    else:
        assert set(body) == {"error", "detail"}


@PROPERTY_SETTINGS
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=40)).map(
            lambda d: httpx.QueryParams(d).__str__().encode()
        ),
    )
)
async def test_any_event_form_body(client: httpx.AsyncClient, body: bytes) -> None:
    answer = await client.post(
        f"/hooks/nrs360/events?token={SOURCE_TOKEN}",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_deliberate(answer)


@PROPERTY_SETTINGS
@given(
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"),
        max_size=200,
    )
)
async def test_any_dlr_query(client: httpx.AsyncClient, query: str) -> None:
    url = httpx.URL(f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}").copy_with(
        query=f"token={SOURCE_TOKEN}&{query}".encode("ascii")
    )
    assert_deliberate(await client.get(url))


@PROPERTY_SETTINGS
@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=8), inner, max_size=3)
            ),
            max_leaves=10,
        ).map(orjson.dumps),
    )
)
async def test_any_progress_body(client: httpx.AsyncClient, body: bytes) -> None:
    answer = await client.post(
        f"/hooks/nrs360/progress?token={SOURCE_TOKEN}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert_deliberate(answer)


@PROPERTY_SETTINGS
@given(st.text(max_size=30), st.sampled_from(["events", "dlr", "progress"]))
async def test_any_token_or_source_name(client: httpx.AsyncClient, token: str, kind: str) -> None:
    method = "GET" if kind == "dlr" else "POST"
    answer = await client.request(
        method, f"/hooks/nrs360/{kind}", params={"token": token}, content=b"event=sent"
    )
    assert answer.status_code in {401, 415} or token == SOURCE_TOKEN
