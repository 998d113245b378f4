"""The SQLite store: group commit, dedupe, the never-regressing message state, quarantine."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.event import Event, EventType, Status
from dlrhub.store import (
    Accept,
    EventFilter,
    Probe,
    Quarantine,
    Reprocess,
    SQLiteStore,
    SQLStore,
    StoreUnavailable,
)
from tests.payloads import T0, raw, status_event
from tests.store.backends import StoreMaker
from tests.strategies import events as any_event


@pytest.fixture
async def store(make_store: StoreMaker) -> AsyncIterator[SQLStore]:
    sizes: list[int] = []
    opened = make_store(on_commit=sizes.append)
    opened.commit_sizes = sizes  # type: ignore[attr-defined]
    await opened.open()
    yield opened
    await opened.close()


async def test_store_assigns_increasing_seq_and_dedupes(store: SQLStore) -> None:
    first = await store.write(Accept(raw("a"), [status_event("m", Status.SENT, 0)]))
    second = await store.write(Accept(raw("b"), [status_event("m", Status.DELIVERED, 1)]))
    again = await store.write(Accept(raw("a"), [status_event("m", Status.SENT, 0, "other-id")]))
    assert (first.outcome, second.outcome, again.outcome) == ("stored", "stored", "duplicate")
    assert first.events[0].seq < second.events[0].seq
    assert again.events == first.events
    stored = await store.events(EventFilter())
    assert [e.id for e in stored] == [first.events[0].id, second.events[0].id]


async def test_concurrent_writes_are_committed_in_groups(store: SQLStore) -> None:
    results = await asyncio.gather(
        *(
            store.write(Accept(raw(f"body-{i}"), [status_event(f"m{i}", Status.SENT, 0)]))
            for i in range(300)
        )
    )
    sizes: list[int] = store.commit_sizes  # type: ignore[attr-defined]
    assert {r.outcome for r in results} == {"stored"}
    assert sum(sizes) == 300
    assert max(sizes) > 1, "concurrent writes should share a commit"
    seqs = [r.events[0].seq for r in results]
    assert len(set(seqs)) == 300


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.sampled_from(list(Status)), st.integers(0, 30)), min_size=1, max_size=8),
    st.randoms(),
)
async def test_message_state_is_the_lattice_maximum_whatever_the_order(
    store: SQLStore,
    updates: list[tuple[Status, int]],
    shuffler: random.Random,
) -> None:
    message_id = f"m-{uuid.uuid4()}"
    shuffler.shuffle(updates)
    for index, (status, minute) in enumerate(updates):
        event = status_event(message_id, status, minute)
        await store.write(Accept(raw(f"{message_id}/{index}"), [event]))
    state = await store.message("nrs360", message_id)
    assert state is not None
    best = max((status.rank, minute) for status, minute in updates)
    assert (state.status.rank, state.occurred_at) == (best[0], T0 + timedelta(minutes=best[1]))
    if any(status is not Status.UNKNOWN for status, _ in updates):
        assert state.status is not Status.UNKNOWN
    history = await store.events(EventFilter(provider="nrs360", message_id=message_id))
    assert len(history) == len(updates)


async def test_engagement_events_never_change_delivery_state(store: SQLStore) -> None:
    await store.write(Accept(raw("d"), [status_event("m", Status.DELIVERED, 1)]))
    opened = msgspec.structs.replace(
        status_event("m", Status.DELIVERED, 5),
        type=EventType.MESSAGE_ENGAGEMENT,
        status=None,
        provider_status="opened",
    )
    await store.write(Accept(raw("o"), [opened]))
    state = await store.message("nrs360", "m")
    assert state is not None
    assert (state.status, state.provider_status) == (Status.DELIVERED, "delivered")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(any_event, min_size=1, max_size=4, unique_by=lambda e: e.id))
async def test_any_stored_event_reads_back_equal(store: SQLStore, generated: list[Event]) -> None:
    generated = [msgspec.structs.replace(e, id=f"{e.id}-{uuid.uuid4()}") for e in generated]
    result = await store.write(Accept(raw(str(uuid.uuid4())), generated))
    assert result.outcome == "stored"
    read = await store.events(EventFilter(after_seq=result.events[0].seq - 1, limit=10))
    assert read == result.events
    assert [msgspec.structs.replace(e, seq=0) for e in read] == generated


async def test_quarantine_reprocess_and_failing_again(store: SQLStore) -> None:
    quarantined = await store.write(Quarantine(raw("broken"), "no event field"))
    assert quarantined.outcome == "quarantined"
    entry_id = quarantined.quarantine_id
    assert entry_id is not None
    retried = await store.write(Quarantine(raw("broken"), "no event field"))
    assert (retried.outcome, retried.quarantine_id) == ("duplicate", entry_id)
    assert await store.quarantine_pending_count() == 1

    failed = await store.write(Reprocess(entry_id, None, "still no event field"))
    assert failed.outcome == "failed_again"
    entry = await store.quarantine_entry(entry_id)
    assert entry is not None
    assert (entry.reason, entry.attempts, entry.state) == ("still no event field", 2, "pending")
    assert entry.raw.body == b"broken"

    done = await store.write(Reprocess(entry_id, [status_event("q", Status.SENT, 0)]))
    assert done.outcome == "reprocessed"
    again = await store.write(Reprocess(entry_id, [status_event("q", Status.SENT, 0)]))
    assert again.outcome == "duplicate"
    assert again.events == done.events
    assert await store.quarantine_pending_count() == 0
    listed = await store.quarantine_entries(state="reprocessed")
    assert [e.event_ids for e in listed] == [[done.events[0].id]]


async def test_probe_and_closed_store(make_store: StoreMaker) -> None:
    store = make_store()
    await store.open()
    assert (await store.write(Probe())).outcome == "probed"
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.write(Probe())
    with pytest.raises(StoreUnavailable):
        await store.events(EventFilter())


async def test_unopenable_store_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SQLiteStore(tmp_path / "file" / "store.sqlite3")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await store.open()


async def test_a_store_that_is_not_sqlite_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable):
        await SQLiteStore(path).open()


async def test_close_commits_what_is_queued_and_leaves_nobody_waiting(
    make_store: StoreMaker,
) -> None:
    store = make_store()
    await store.open()
    writes = [
        asyncio.create_task(
            store.write(Accept(raw(f"q{i}"), [status_event(f"m{i}", Status.SENT, 0)]))
        )
        for i in range(100)
    ]
    await asyncio.sleep(0)  # every write is queued
    await store.close()
    results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 5)
    assert all(not isinstance(r, BaseException) and r.outcome == "stored" for r in results)
    reopened = make_store()
    await reopened.open()
    try:
        assert len(await reopened.events(EventFilter(limit=1000))) == 100
        missing = await reopened.write(Reprocess(999, None, "x"))
        assert missing.outcome == "not_found"
    finally:
        await reopened.close()


async def test_a_transaction_that_fails_midway_leaves_nothing(store: SQLStore) -> None:
    from dlrhub.store.sql_statements import Execute, Fetch, Transaction

    def half_done() -> Transaction[None]:
        yield Execute("INSERT INTO meta (key, value) VALUES ('half', 'done')")
        (row,) = yield Fetch("SELECT count(*) FROM meta WHERE key = 'half'")
        assert row[0] == 1  # visible inside the transaction
        yield Execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(store.backend.errors):
        await store.backend.transact(half_done())
    assert await store.backend.read("SELECT value FROM meta WHERE key = 'half'", []) == []
    written = await store.write(Accept(raw("after"), [status_event("m", Status.SENT, 0)]))
    assert written.outcome == "stored"


async def test_sqlite_writes_wait_for_another_writer_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    import sqlite3

    store = SQLiteStore(tmp_path / "store.sqlite3")
    await store.open()
    other = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # e.g. `dlrhub quarantine reprocess` in another process
        write = asyncio.create_task(
            store.write(Accept(raw("waits"), [status_event("m", Status.SENT, 0)]))
        )
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20
        assert not write.done()
        other.execute("COMMIT")
        written = await asyncio.wait_for(write, 10)
        assert written.outcome == "stored"
        assert [e.id for e in await store.events(EventFilter())] == [written.events[0].id]
    finally:
        other.close()
        await store.close()


async def test_a_blocking_commit_store_waits_for_another_writer_then_commits(
    tmp_path: Path,
) -> None:
    import sqlite3
    import threading

    store = SQLiteStore(tmp_path / "store.sqlite3", blocking_commit=True)
    await store.open()
    other = sqlite3.connect(
        tmp_path / "store.sqlite3", isolation_level=None, check_same_thread=False
    )
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a while
        other.execute("INSERT INTO meta (key, value) VALUES ('other', 'first')")
        release = threading.Timer(0.3, other.execute, ["COMMIT"])
        release.start()
        written = await asyncio.wait_for(
            store.write(Accept(raw("waits"), [status_event("m", Status.SENT, 0)])), 10
        )
        release.join()
        assert written.outcome == "stored"
        assert [e.id for e in await store.events(EventFilter())] == [written.events[0].id]
        assert await store.backend.read("SELECT value FROM meta WHERE key = 'other'", []) == [
            ("first",)
        ]
    finally:
        other.close()
        await store.close()


@pytest.mark.parametrize("blocking_commit", [False, True])
async def test_sqlite_checkpoints_the_wal_at_16_mib_not_sqlites_4(
    tmp_path: Path, blocking_commit: bool
) -> None:
    """Fewer, larger checkpoints copy each often-rewritten page less often."""
    from dlrhub.store.sqlite import WAL_AUTOCHECKPOINT_PAGES

    path = tmp_path / "store.sqlite3"
    wal = path.with_name(path.name + "-wal")
    store = SQLiteStore(path, blocking_commit=blocking_commit)
    await store.open()
    try:
        largest = 0
        for batch in range(60):  # about 4,000 pages of WAL
            await asyncio.gather(
                *(
                    store.write(
                        Accept(raw(f"b{batch}-{n}" * 40), [status_event(f"m{n}", Status.SENT, 0)])
                    )
                    for n in range(50)
                )
            )
            largest = max(largest, wal.stat().st_size)
    finally:
        await store.close()
    page_and_header = 4096 + 24
    # SQLite's default would have checkpointed and reused the WAL from its start at
    # about 1,000 pages; dlrhub's writers let it grow past that.
    assert largest > 1_500 * page_and_header
    assert largest < (WAL_AUTOCHECKPOINT_PAGES + 500) * page_and_header


async def test_quarantine_drop_by_id_and_all_resolved(store: SQLStore) -> None:
    ids = []
    for body in ("junk-1", "junk-2", "junk-3"):
        result = await store.write(Quarantine(raw(body), "unreadable"))
        assert result.quarantine_id is not None
        ids.append(result.quarantine_id)
    first, second, third = ids
    done = await store.write(Reprocess(second, [status_event("d", Status.SENT, 0)]))
    assert done.outcome == "reprocessed"

    assert await store.drop_quarantine([first, 999]) == [first]
    assert await store.quarantine_entry(first) is None
    assert await store.drop_quarantine([first]) == []
    # The callback itself stays: the provider retrying it is still a duplicate.
    retried = await store.write(Quarantine(raw("junk-1"), "unreadable"))
    assert (retried.outcome, retried.quarantine_id) == ("duplicate", None)

    assert await store.drop_resolved_quarantine() == [second]
    assert [entry.id for entry in await store.quarantine_entries()] == [third]
    assert (await store.events(EventFilter()))[0].id == done.events[0].id

    # A dropped id is never given out again, even the highest one.
    assert await store.drop_quarantine([third]) == [third]
    fresh = await store.write(Quarantine(raw("junk-4"), "unreadable"))
    assert fresh.quarantine_id == third + 1
    assert await store.drop_resolved_quarantine() == []
