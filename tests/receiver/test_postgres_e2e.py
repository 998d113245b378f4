"""Receivers on a PostgreSQL store: two behind one load balancer; lost connections."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import load_config
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.postgres import POSTGRES_DSN, backends, fresh_schema, named_dsn, terminate_backends
from tests.processes import dlrhub_serve
from tests.serving import serve_app
from tests.waiting import eventually_async

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


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


@pytest.mark.parametrize("ingest_worker", [True, False], ids=["ingest_worker", "in_process"])
async def test_terminated_backends_answer_503_then_200_on_fresh_connections(
    tmp_path: Path, ingest_worker: bool
) -> None:
    """`pg_terminate_backend` on every connection of a `dlrhub serve` under load, three times.

    Callbacks and /v1 reads answer 200 or 503 with Retry-After, never 500; nothing is
    logged with a traceback; once the backends are replaced every callback answers 200
    at the first try; the provider's retries of the 503s are stored, and each callback
    once.
    """
    async with fresh_schema() as schema:
        name = f"dlrhub_{schema}"  # only this server's connections are terminated
        config = write_config(
            tmp_path,
            extra=f'[store]\nbackend = "postgres"\ndsn = "{named_dsn(name)}"\n'
            f'schema = "{schema}"\n[server]\naccess_log = false\n'
            f"ingest_worker = {str(ingest_worker).lower()}\n",
        )
        answers: dict[str, list[httpx.Response]] = defaultdict(list)
        reads: list[httpx.Response] = []
        async with (
            dlrhub_serve("--config", str(config), log_dir=tmp_path) as server,
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
        ):

            async def post(message_id: str) -> httpx.Response:
                body = urlencode({"id": message_id, "event": "delivered", "channel": "sms"})
                answer = await client.post(
                    f"/hooks/nrs360/events?token={SOURCE_TOKEN}", content=body, headers=FORM
                )
                answers[message_id].append(answer)
                return answer

            stop = asyncio.Event()
            numbers = itertools.count()

            async def send() -> None:
                while not stop.is_set():
                    await post(f"m-{next(numbers)}")

            async def read() -> None:
                while not stop.is_set():
                    reads.append(await client.get("/v1/events?limit=5", headers=ADMIN))

            async def terminate_three_times() -> None:
                try:
                    for _ in range(3):
                        terminated = await terminate_backends(name)
                        assert terminated, "the server had connections to terminate"
                        await eventually_async(  # under load it connected again
                            lambda gone=terminated: has_backend_besides(name, gone), 30
                        )
                finally:
                    stop.set()

            await asyncio.gather(
                terminate_three_times(), *(send() for _ in range(12)), *(read() for _ in range(2))
            )
            outcomes = Counter(a.status_code for each in answers.values() for a in each)
            assert set(outcomes) <= {200, 503}, outcomes
            assert {answer.status_code for answer in reads} <= {200, 503}
            for answer in [*(a for each in answers.values() for a in each), *reads]:
                if answer.status_code == 503:
                    assert answer.headers["Retry-After"] == "5"
                    assert answer.json()["error"] == "store_unavailable"
            assert outcomes[200] > 0

            # The provider retries what was answered 503, until it is answered 200.
            for message_id, tries in list(answers.items()):
                if tries[-1].status_code != 200:
                    await eventually_async(
                        lambda m=message_id: retried(post, m), 30, f"{message_id} answered 200"
                    )
            # The broken connections are gone: the next callbacks are stored at once.
            for index in range(20):
                answer = await post(f"after-{index}")
                assert answer.status_code == 200, answer.text
                assert answer.json()["duplicate"] is False

            stored: Counter[str] = Counter()
            after = 0
            while page := (
                await client.get(f"/v1/events?limit=1000&after_seq={after}", headers=ADMIN)
            ).json()["events"]:
                stored.update(event["message_id"] for event in page)
                after = page[-1]["seq"]
            assert stored == Counter(set(answers)), "every callback answered 200 stored once"
        output = server.output()
        assert "Traceback" not in output, output
        assert "unexpected error" not in output, output


async def has_backend_besides(name: str, terminated: list[int]) -> bool:
    return bool(set(await backends(name)) - set(terminated))


async def retried(post: Callable[[str], Awaitable[httpx.Response]], message_id: str) -> bool:
    return (await post(message_id)).status_code == 200
