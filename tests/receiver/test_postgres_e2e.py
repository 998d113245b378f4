"""Two receivers behind one load balancer share a PostgreSQL store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlencode

import httpx

from dlrhub.app import create_app
from dlrhub.config import load_config
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_two_receivers_store_each_callback_once(tmp_path: Path) -> None:
    async with fresh_schema() as schema:
        store = f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{schema}"\n'
        apps = [  # the second one ingests through its worker process
            create_app(
                load_config(write_config(tmp_path / name, extra=store), env={}),
                ingest_worker=name == "b",
            )
            for name in ("a", "b")
        ]
        async with (
            serve_app(apps[0]) as first,
            serve_app(apps[1]) as second,
            httpx.AsyncClient() as client,
        ):

            async def post(base: str, index: int) -> httpx.Response:
                body = urlencode({"id": f"m-{index}", "event": "delivered", "channel": "sms"})
                return await client.post(
                    f"{base}/hooks/nrs360/events?token={SOURCE_TOKEN}", content=body, headers=FORM
                )

            # Every callback goes to one receiver, and its retry to the other.
            answers = await asyncio.gather(
                *(post(first if i % 2 else second, i) for i in range(100)),
                *(post(second if i % 2 else first, i) for i in range(100)),
            )
            assert {answer.status_code for answer in answers} == {200}
            assert sum(not answer.json()["duplicate"] for answer in answers) == 100

            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            for base in (first, second):
                page = await client.get(f"{base}/v1/events?limit=1000", headers=admin)
                events = page.json()["events"]
                assert [event["seq"] for event in events] == list(range(1, 101))
                assert {event["message_id"] for event in events} == {f"m-{i}" for i in range(100)}
            state = await client.get(f"{second}/v1/messages/nrs360/m-7", headers=admin)
            assert state.json()["message"]["status"] == "delivered"
            assert (await client.get(f"{first}/readyz")).status_code == 200
