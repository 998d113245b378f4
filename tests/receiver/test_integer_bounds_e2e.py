"""Integers a user gives the `/v1` API: out of range or not integers at all, each is a
400 with the JSON error shape, never a 500, on SQLite and on PostgreSQL.

The integer parameters are read from the served OpenAPI document, so a new one is
checked without changing this test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import load_config
from dlrhub.store.base import MAX_INTEGER
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app

NOT_ACCEPTED = [
    "99999999999999999999",  # the after_seq
    str(MAX_INTEGER + 1),  # 2^63
    str(2**64),
    "-1",
    str(-(2**63)),
    "abc",
    "1.5",
    "1e3",
    "0x10",
    "+5",
    " 5",
    "5 ",
    "1_000",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it
    "9" * 5000,  # int() refuses over 4300 digits with a ValueError of its own
]


@contextlib.asynccontextmanager
async def admin_client(tmp_path: Path, backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with contextlib.AsyncExitStack() as stack:
        extra = ""
        if backend == "postgres":
            schema = await stack.enter_async_context(fresh_schema())
            extra = f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{schema}"\n'
        config = load_config(write_config(tmp_path, extra=extra), env={})
        base_url = await stack.enter_async_context(
            serve_app(create_app(config, ingest_worker=False))
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        )
        yield client


def integer_parameters(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) of every integer parameter of a `/v1` route."""
    found = []
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["schema"].get("type") == "integer":
                    found.append((method, path, parameter["in"], parameter["name"]))
    return found


def request_for(
    method: str, path: str, where: str, name: str, value: str
) -> tuple[str, str, dict[str, str]]:
    if where == "path":
        return method.upper(), path.replace(f"{{{name}}}", quote(value, safe="")), {}
    filled = path.replace("{entry_id}", "1")
    return method.upper(), filled, {name: value}


def assert_bad_request(answer: httpx.Response, name: str) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "bad_request"
    assert name in body["detail"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_every_v1_integer_out_of_range_or_not_an_integer_is_a_json_400(
    tmp_path: Path, backend: str
) -> None:
    async with admin_client(tmp_path, backend) as admin:
        document = (await admin.get("/openapi.json")).json()
        parameters = integer_parameters(document)
        assert {(path, name) for _, path, _, name in parameters} >= {
            ("/v1/events", "after_seq"),
            ("/v1/events", "limit"),
            ("/v1/quarantine", "after_id"),
            ("/v1/quarantine", "limit"),
            ("/v1/quarantine/{entry_id}", "entry_id"),
            ("/v1/quarantine/{entry_id}/reprocess", "entry_id"),
        }
        for method, path, where, name in parameters:
            high = document["paths"][path][method]["parameters"]
            schema = next(p["schema"] for p in high if p["name"] == name)
            assert schema["maximum"] <= MAX_INTEGER
            for value in [*NOT_ACCEPTED, str(schema["maximum"] + 1), str(schema["minimum"] - 1)]:
                verb, url, params = request_for(method, path, where, name, value)
                answer = await admin.request(verb, url, params=params)
                assert_bad_request(answer, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_largest_integers_reach_the_store_and_answer(
    tmp_path: Path, backend: str
) -> None:
    async with admin_client(tmp_path, backend) as admin:
        hook = f"/hooks/nrs360/events?token={SOURCE_TOKEN}"
        stored = await admin.post(
            hook,
            content="id=m-1&event=sent",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert stored.status_code == 200, stored.text
        top = str(MAX_INTEGER)
        page = await admin.get("/v1/events", params={"after_seq": top, "limit": "1000"})
        assert page.json() == {"events": [], "next_after_seq": MAX_INTEGER}
        first = await admin.get("/v1/events", params={"after_seq": "000", "limit": "1"})
        assert [event["message_id"] for event in first.json()["events"]] == ["m-1"]
        entries = await admin.get("/v1/quarantine", params={"after_id": top})
        assert entries.json() == {"entries": [], "next_after_id": MAX_INTEGER}
        for path in (f"/v1/quarantine/{top}", "/v1/quarantine/0"):
            assert (await admin.get(path)).status_code == 404
            assert (await admin.post(f"{path}/reprocess")).status_code == 404


async def test_outbound_api_integers_where_text_is_due_are_a_json_400(tmp_path: Path) -> None:
    async with admin_client(tmp_path, "sqlite") as admin:
        for body in (
            b'{"account": 99999999999999999999, "to": "1", "text": "x"}',
            b'{"account": "a", "to": [18446744073709551616], "text": "x"}',
            b'{"account": "a", "to": "1", "text": "x", "refs": [-9223372036854775809]}',
            b'{"account": "a", "to": "1", "text": 1e400}',
        ):
            answer = await admin.post(
                "/v1/messages", content=body, headers={"Content-Type": "application/json"}
            )
            assert_bad_request(answer, "")
        tracked = await admin.post(
            "/v1/tracking",
            json={"account": "a", "messages": [{"message_id": 2**64, "sent_at": 2**63}]},
        )
        assert_bad_request(tracked, "")
