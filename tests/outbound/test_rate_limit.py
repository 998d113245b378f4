"""`rate_limit` holds for every request to an account's provider: sends, polls and
retries together, in one process or several sharing the data directory.

The fake Onurix records when each request arrived; `max_requests_per_second` is the
most that arrived within any one-second window. Requests start 1/rate apart, so a
window holds `rate` starts; arrivals may bunch by `SLACK` more when a busy machine
delays one request's trip and not the next one's (seen: 12 at rate 10 with three
processes during the full suite). Without a shared budget each case doubles or more.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from dlrhub.outbound.poller import Poller
from dlrhub.outbound.ratelimit import RateLimiter
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.store.database import SQLiteDatabase
from dlrhub.store.tracking_sql import SQLTrackingStore
from dlrhub.testing.faults import Fault
from tests.outbound.conftest import Stores, outbound_config
from tests.outbound.test_poller import onurix_account
from tests.waiting import eventually_async

SEND = "/api/v1/send-sms"
STATE = "/api/v1/messages-state"
SLACK = 2


class Sleeps:
    """A clock that moves only when a limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


async def test_the_budget_spaces_turns_per_account_and_honours_a_deferral(
    stores: Stores, tmp_path: Path
) -> None:
    time = Sleeps()
    other = stores.other_tracking()  # another process's connection
    await other.open()
    here = RateLimiter(4, "a", stores.tracking, clock=time.clock, sleep=time.sleep)
    there = RateLimiter(4, "a", other, clock=time.clock, sleep=time.sleep)
    elsewhere = RateLimiter(4, "b", other, clock=time.clock, sleep=time.sleep)
    await here.acquire()
    await elsewhere.acquire()  # account b has its own budget
    assert time.waits == []
    await there.acquire()  # account a's next turn is 0.25 s after the first
    assert time.waits == [0.25]
    await there.defer(time.now + 2)  # as after a Retry-After of 2 s
    await here.acquire()
    assert time.waits == [0.25, 2.0]
    time.now += 10  # an idle account saves no burst: the next two are spaced again
    await here.acquire()
    await there.acquire()
    assert time.waits == [0.25, 2.0, 0.25]
    await other.close()


async def test_a_request_woken_late_takes_a_new_turn(stores: Stores) -> None:
    time = Sleeps()
    limiter = RateLimiter(4, "a", stores.tracking, clock=time.clock, sleep=time.sleep)
    await limiter.acquire()
    time.now -= 0.001  # the next turn is 0.001 s away
    stalled = time.sleep

    async def oversleep(seconds: float) -> None:  # the process stalls 0.5 s once
        await stalled(seconds + 0.5)
        limiter.sleep = stalled

    limiter.sleep = oversleep
    await limiter.acquire()  # its turn (0.25 s) went by while it slept: it takes 0.75 s
    await limiter.acquire()  # so the next one is 0.25 s later, not at once beside it
    assert time.waits == [0.751, 0.25]


class SlowBudget:
    """A shared budget whose every reservation takes 3 ms of the clock (a round trip)."""

    def __init__(self, time: Sleeps) -> None:
        self.time = time
        self.next = 0.0
        self.reservations = 0

    async def reserve_request(self, account: str, interval: float, now: float) -> float:
        self.reservations += 1
        start = max(now, self.next)
        self.next = start + interval
        self.time.now += 0.003
        return start

    async def defer_requests(self, account: str, until: float) -> None:
        self.next = max(self.next, until)


async def test_turns_are_reserved_ahead_by_the_round_trip_so_none_is_wasted() -> None:
    time = Sleeps()
    budget = SlowBudget(time)
    limiter = RateLimiter(200, "a", budget, clock=time.clock, sleep=time.sleep)
    waited = []
    for _ in range(100):
        asked = time.now
        await limiter.acquire()
        waited.append(time.now - asked)
        time.now += 0.006  # the request itself: the budget is idle when the next one asks
    # At 200/s half an interval is 2.5 ms, less than the round trip: a turn reserved for
    # "now" came back late and was thrown away for another, every time (200 reservations,
    # each request waiting 6 ms). Reserved one round trip ahead, it is on time.
    assert budget.reservations <= 105
    assert max(waited[5:]) <= 0.0031


async def test_no_limit_takes_no_turn_from_the_store(tmp_path: Path) -> None:
    closed = SQLTrackingStore(SQLiteDatabase(tmp_path / "never-opened.sqlite3"))
    await RateLimiter(0, "a", closed).acquire()  # would raise StoreUnavailable if asked


async def test_100_sends_at_once_keep_to_20_per_second(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Path
) -> None:
    fake, base = onurix
    config = outbound_config(stores, [onurix_account(fake, base, rate_limit=20)])
    outbound = Outbound(config, stores.store, stores.tracking)
    sends = [outbound.send("onx", [f"5731501{i:05d}"], "Hola") for i in range(100)]
    results = await asyncio.gather(*sends)
    await outbound.aclose()
    assert all(sent.status is not None for (sent,) in results)
    assert len(fake.requests_to(SEND)) == 100
    assert fake.max_requests_per_second(SEND) <= 20 + SLACK  # 100 unlimited


async def test_sends_and_polls_of_one_account_share_the_limit(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Path
) -> None:
    fake, base = onurix
    config = outbound_config(stores, [onurix_account(fake, base, rate_limit=20, concurrency=8)])
    outbound = Outbound(config, stores.store, stores.tracking)
    ids = [fake.add_message(f"5731502{i:05d}").id for i in range(30)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    # The poller on its own connection to the store, as in another process.
    tracking = stores.other_tracking()
    await tracking.open()
    poller = Poller(config, stores.store, tracking)
    await poller.open()
    sends = [outbound.send("onx", [f"5731503{i:05d}"], "Hola") for i in range(30)]
    polled, *_ = await asyncio.gather(poller.run_once(), *sends)
    await poller.close()
    await tracking.close()
    await outbound.aclose()
    assert polled == 30
    assert len(fake.requests_to(SEND)) == 30 and len(fake.requests_to(STATE)) == 30
    assert fake.max_requests_per_second() <= 20 + SLACK  # 40 if each kept its own 20


async def test_automatic_retries_take_turns_too(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Path
) -> None:
    fake, base = onurix
    account = onurix_account(fake, base, rate_limit=10, retries=3, concurrency=8)
    config = outbound_config(stores, [account])
    outbound = Outbound(config, stores.store, stores.tracking)
    ids = [fake.add_message(f"5731504{i:05d}").id for i in range(8)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    # Every first attempt and its retries fail: 32 requests, backoff 1 ms.
    fake.inject(Fault("status", path=STATE, times=32, status=503))
    poller = Poller(config, stores.store, stores.tracking)
    await poller.open()
    assert await poller.run_once() == 8
    await poller.close()
    assert len(fake.requests_to(STATE)) == 32
    assert fake.max_requests_per_second(STATE) <= 10 + SLACK  # ~40 if retries skip


def write_config(
    directory: Path, base: str, fake: FakeOnurix, rate: int, store: dict[str, str]
) -> Path:
    """A configuration file for `dlrhub` processes; `store`: the `[store]` table."""
    path = directory / "dlrhub.toml"
    store_table = "".join(f'{key} = "{value}"\n' for key, value in store.items())
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
log_level = "info"

[store]
{store_table}

[poller]
first_interval = "30s"
jitter = 0
batch_size = 4
idle_sleep = "20ms"

[[accounts]]
name = "onx"
provider = "onurix"
base_url = "{base}/api/v1"
client = "{fake.client}"
key = "{fake.key}"
backoff = "1ms"
rate_limit = {rate}
concurrency = 4
""",
        encoding="utf-8",
    )
    return path


async def test_two_pollers_and_senders_in_other_processes_share_the_limit(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Path
) -> None:
    fake, base = onurix
    config_path = write_config(tmp_path, base, fake, rate=10, store=stores.section)
    config = outbound_config(stores, [onurix_account(fake, base)])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}

    async def dlrhub(name: str, *arguments: str) -> tuple[asyncio.subprocess.Process, Path]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dlrhub",
                *arguments,
                "--config",
                str(config_path),
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        return process, log

    pollers = [await dlrhub(f"poll-{n}", "poll") for n in range(2)]
    try:
        for process, log in pollers:
            await eventually_async(
                lambda log=log, process=process: (
                    "started for account" in log.read_text() or process.returncode is not None
                ),
                what="both pollers to start",
            )
            assert process.returncode is None, log.read_text()
        # The senders start (and fork) before the first request: forking stalls this
        # process, and with it the fake's record of arrival times.
        senders = [
            await dlrhub(
                f"send-{n}", "send", "--account", "onx", "--to", f"57315060000{n}", "--text", "x"
            )
            for n in range(3)
        ]
        # Due only now, so both pollers (4 rows a claim) share the work.
        ids = [fake.add_message(f"5731505{i:05d}").id for i in range(40)]
        outbound = Outbound(config, stores.store, stores.tracking)
        await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
        for process, log in senders:
            assert await asyncio.wait_for(process.wait(), 60) == 0, log.read_text()

        def all_polled() -> bool:
            return all(fake.messages[message_id].queries >= 1 for message_id in ids)

        await eventually_async(all_polled, what="every tracked message to be polled once")
    finally:
        for process, _ in pollers:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), 30)
    assert len(fake.requests_to(STATE)) == 40 and len(fake.requests_to(SEND)) == 3
    assert fake.max_requests_per_second() <= 10 + SLACK  # 20 or more if each process kept its own


async def test_a_429_met_by_the_poller_holds_the_sends_of_the_account_too(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Path
) -> None:
    """The Retry-After defers the account's shared budget: a send made after the poller met
    the 429 (here, or in another process on the data directory) waits it out."""
    fake, base = onurix
    config = outbound_config(stores, [onurix_account(fake, base, rate_limit=50)])
    outbound = Outbound(config, stores.store, stores.tracking)
    message = fake.add_message("573150600001")
    await outbound.track("onx", [TrackRequest(message.id)])
    fake.inject(Fault("rate_limited", STATE, seconds=1))
    poller = Poller(config, stores.store, stores.tracking)
    await poller.open()
    assert await poller.run_once() == 1
    (busy,) = fake.requests_to(STATE)
    await outbound.send("onx", ["573150600002"], "Hola")
    (sent,) = fake.requests_to(SEND)
    await poller.close()
    await outbound.aclose()
    assert sent.at - busy.at >= 0.9  # the send waited out the 1 s Retry-After
