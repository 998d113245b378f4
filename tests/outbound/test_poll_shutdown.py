"""SIGTERM on `dlrhub poll`: it stops claiming, gives back the rows it holds at once
(due again, for another poller, not at the end of their lease) and exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from dlrhub.outbound.poller import Poller
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.testing.faults import Fault
from tests.outbound.conftest import Stores, outbound_config
from tests.outbound.test_poller import onurix_account
from tests.serving import serve_app
from tests.waiting import eventually_async

STATE = "/api/v1/messages-state"


def poller_config(directory: Path, base: str, fake: FakeOnurix, store: dict[str, str]) -> Path:
    """A `dlrhub poll` whose rows stay leased for 10 minutes unless it gives them back."""
    path = directory / "dlrhub.toml"
    store_table = "".join(f'{key} = "{value}"\n' for key, value in store.items())
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
shutdown_timeout = "10s"

[store]
{store_table}

[poller]
first_interval = "30s"
lease = "10m"
idle_sleep = "20ms"

[[accounts]]
name = "onx"
provider = "onurix"
base_url = "{base}/api/v1"
client = "{fake.client}"
key = "{fake.key}"
timeout = "5m"
retries = 0
rate_limit = 0
concurrency = 4
""",
        encoding="utf-8",
    )
    return path


async def test_sigterm_gives_the_claimed_rows_back_at_once_and_exits(
    stores: Stores, tmp_path: Path
) -> None:
    fake = FakeOnurix(progression=("Entregado",))
    # The hanging answers are dropped when the fake stops, not waited for.
    async with serve_app(fake.app, timeout_graceful_shutdown=1) as base:
        await sigterm_gives_the_claimed_rows_back(fake, base, stores, tmp_path)


async def sigterm_gives_the_claimed_rows_back(
    fake: FakeOnurix, base: str, stores: Stores, tmp_path: Path
) -> None:
    fake.inject(Fault("delay", STATE, seconds=60, times=4))  # every first query hangs
    ids = [fake.add_message(f"5731508{n:05d}").id for n in range(4)]
    config = outbound_config(stores, [onurix_account(fake, base)])
    outbound = Outbound(config, stores.store, stores.tracking)
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    log = tmp_path / "poll.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dlrhub",
            "poll",
            "--config",
            str(poller_config(tmp_path, base, fake, stores.section)),
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    try:
        await eventually_async(
            lambda: len(fake.requests_to(STATE)) == 4 or process.returncode is not None,
            what="the poller to ask about the 4 messages",
        )
        assert process.returncode is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # It exited with its 4 queries still unanswered, and gave their rows back: due now,
    # unpolled, where a lost lease would keep them for 10 minutes.
    assert all(fake.messages[message_id].queries == 0 for message_id in ids)
    assert "stopped" in log.read_text()
    rows = [await stores.tracking.find("onx", message_id) for message_id in ids]
    assert all(row is not None and row.attempts == 0 for row in rows), rows
    other = Poller(config, stores.store, stores.tracking, owner="other")
    await other.open()
    try:
        assert await other.run_once() == 4  # another poller takes them over at once
    finally:
        await other.close()
        await outbound.aclose()
    assert all(fake.messages[message_id].answers[-1].final for message_id in ids)


async def test_a_stopping_poller_keeps_the_answer_it_is_waiting_for(
    onurix: tuple[FakeOnurix, str], stores: Stores
) -> None:
    """Stop while a query is in flight: its answer is stored and its row written back
    (not given back due now, which would make another poller ask again at once); the
    message whose query was not sent yet is given back unasked."""
    fake, base = onurix
    fake.progression = ("Entregado",)
    fake.inject(Fault("delay", STATE, seconds=1, times=1))  # the first query takes a second
    first, second = fake.add_message("573150800001").id, fake.add_message("573150800002").id
    config = outbound_config(stores, [onurix_account(fake, base, concurrency=1, rate_limit=0)])
    outbound = Outbound(config, stores.store, stores.tracking)
    await outbound.track("onx", [TrackRequest(first), TrackRequest(second)])
    poller = Poller(config, stores.store, stores.tracking)
    await poller.start()
    try:
        await eventually_async(lambda: len(fake.requests_to(STATE)) == 1, what="the first query")
    finally:
        await poller.stop(grace=10)
        await outbound.aclose()
    asked = [fake.messages[m].queries for m in (first, second)]
    assert sorted(asked) == [0, 1]
    answered, unasked = (first, second) if asked[0] == 1 else (second, first)
    row = await stores.tracking.find("onx", answered)
    assert row is not None and row.attempts == 1 and row.stopped_reason == "final_status"
    waiting = await stores.tracking.find("onx", unasked)
    assert waiting is not None and waiting.attempts == 0 and waiting.next_poll_at is not None
