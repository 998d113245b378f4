"""What only the PostgreSQL backend has to show: several writers, lost connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from dlrhub.event import Status
from dlrhub.store import Accept, EventFilter, StoreUnavailable, WriteResult
from dlrhub.store.postgres import PostgresStore
from tests.payloads import raw, status_event
from tests.postgres import POSTGRES_DSN, fresh_schema, named_dsn, terminate_backends

T = TypeVar("T")


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
        yield name


async def test_two_writers_and_a_reader_see_one_gapless_log(schema: str) -> None:
    first = PostgresStore(POSTGRES_DSN, schema=schema)
    second = PostgresStore(POSTGRES_DSN, schema=schema)
    await first.open()
    await second.open()
    seen: list[int] = []
    done = asyncio.Event()

    async def follow() -> None:
        """Page by after_seq while the writers run, as a sink cursor does."""
        after = 0
        while True:
            finished = done.is_set()
            page = await first.events(EventFilter(after_seq=after, limit=1000))
            seen.extend(event.seq for event in page)
            after = page[-1].seq if page else after
            if finished and not page:
                return
            await asyncio.sleep(0.005)

    async def write(store: PostgresStore, prefix: str) -> list[str]:
        results = await asyncio.gather(
            *(
                store.write(
                    Accept(raw(f"{prefix}-{i}"), [status_event(f"{prefix}-{i}", Status.SENT, 0)])
                )
                for i in range(400)
            )
        )
        return [result.outcome for result in results]

    try:
        follower = asyncio.create_task(follow())
        outcomes = await asyncio.gather(
            write(first, "a"),
            write(second, "b"),
            write(second, "a"),  # "a" twice: duplicates
        )
        done.set()
        await follower
    finally:
        await first.close()
        await second.close()
    stored = sum(outcome == "stored" for batch in outcomes for outcome in batch)
    assert stored == 800, "each distinct callback is stored once, whichever writer had it"
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 800
    assert seen == list(range(1, 801)), "the reader never skipped a seq committed late"


async def test_an_unreachable_database_is_unavailable_without_its_password(
    refused_port: int,
) -> None:
    dsn = f"postgresql://dlrhub:very-secret-pass@127.0.0.1:{refused_port}/dlrhub"
    store = PostgresStore(dsn)
    with pytest.raises(StoreUnavailable) as error:
        await store.open()
    assert "very-secret-pass" not in str(error.value)
    assert "[REDACTED]" in str(error.value)


async def retry_once(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except StoreUnavailable:
        return await call()


async def test_a_dropped_connection_is_503_then_reconnects(schema: str) -> None:
    name = f"dlrhub_{schema}"  # only this test's connections are terminated
    store = PostgresStore(named_dsn(name), schema=schema)
    await store.open()
    try:
        first = await store.write(Accept(raw("before"), [status_event("m", Status.SENT, 0)]))
        assert first.outcome == "stored"
        assert await terminate_backends(name)
        # A write may fail once (503, the provider retries); the next one reconnects.
        again = await retry_once(
            lambda: store.write(Accept(raw("after"), [status_event("m", Status.DELIVERED, 1)]))
        )
        assert again.outcome == "stored"
        assert again.events[0].seq == first.events[0].seq + 1
        events = await retry_once(lambda: store.events(EventFilter()))
        assert [event.seq for event in events] == [1, 2]
        state = await store.message("nrs360", "m")
        assert state is not None and state.status is Status.DELIVERED
    finally:
        await store.close()


# What asyncpg holds after `pg_terminate_backend` when it has read the server's FATAL
# but not yet the socket's end (under load, a query is sent in between): an
# ErrorResponse while idle puts its protocol in "consume until ReadyForQuery", and the
# connection still says it is open. Fed here by hand, so the race happens every time.
ADMIN_SHUTDOWN = b"".join(
    (b"S", b"FATAL", b"\0", b"C", b"57P01", b"\0", b"M", b"terminating connection", b"\0", b"\0")
)
FATAL_FRAME = b"E" + (len(ADMIN_SHUTDOWN) + 4).to_bytes(4, "big") + ADMIN_SHUTDOWN


def half_terminated(connection: asyncpg.Connection) -> asyncpg.Connection:
    connection._protocol.data_received(FATAL_FRAME)
    assert not connection.is_closed(), "asyncpg should not know yet (else this shows nothing)"
    return connection


async def test_a_connection_that_failed_is_never_used_again(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(POSTGRES_DSN, schema=schema)
    await store.open()
    try:

        async def write(ref: str) -> WriteResult:
            return await store.write(Accept(raw(ref), [status_event(ref, Status.SENT, 0)]))

        assert (await write("first")).outcome == "stored"
        await store.catch_up_rollups()  # the writer rolls up after answering: now it is idle
        writer = half_terminated(store.backend._writer)
        with pytest.raises(StoreUnavailable):  # answered 503; the provider retries
            await write("second")
        assert writer.is_closed(), "the failed writer connection was dropped"
        assert (await write("second")).outcome == "stored", "the next batch connects afresh"
        assert store.backend._writer is not writer

        await store.events(EventFilter())
        (reader,) = [holder._con for holder in store.backend._readers._holders if holder._con]
        half_terminated(reader)
        with pytest.raises(StoreUnavailable):
            await store.events(EventFilter())
        assert reader.is_closed(), "the failed reader connection left the pool"
        events = await store.events(EventFilter())
        assert [event.message_id for event in events] == ["first", "second"]
    finally:
        await store.close()
    assert not [record for record in caplog.records if record.exc_info], "no traceback logged"
