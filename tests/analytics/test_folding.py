"""The rollups' folding process: pages folded off the writer's loop, and what happens when
that process dies, hangs, cannot start, raises, or loses a race with another roller.

Whatever happens to it, every committed event is counted once: the rollups equal an
independent recount (`tests/analytics/model.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import signal
import sqlite3
from pathlib import Path

import pytest

import dlrhub.store.sql as store_sql
from dlrhub.analytics.facts import Place
from dlrhub.analytics.numbers import NumberPlaces, SourcePlaces
from dlrhub.event import Event
from dlrhub.store import SQLStore, StoreUnavailable, folding
from dlrhub.store.fold_worker import read_frame, serve
from dlrhub.store.folding import write_frame
from dlrhub.store.rollups import Folded, Page, apply_page, catch_up
from tests.analytics.model import expected_tables
from tests.analytics.stores import BACKENDS, PLACE, fresh_store, rollup_tables
from tests.analytics.test_follow import _database, callback
from tests.waiting import eventually_async


async def write(store: SQLStore, numbers: range) -> list[Event]:
    results = await asyncio.gather(*(store.write(callback(n)) for n in numbers))
    return [event for result in results for event in result.events]


def worker_pid() -> int | None:
    process = folding._WORKER._process
    return None if process is None or process.poll() is not None else process.pid


async def rolled_up_by_a_worker(store: SQLStore, numbers: range) -> tuple[list[Event], int]:
    """`numbers` written and rolled up; the events and the folding process's pid."""
    stored = await write(store, numbers)
    await store.catch_up_rollups()
    pid = worker_pid()
    assert pid is not None
    return stored, pid


@pytest.mark.parametrize("backend", BACKENDS)
async def test_pages_are_folded_in_another_process(backend: str, tmp_path: Path) -> None:
    async with fresh_store(backend, tmp_path) as store:
        stored = await write(store, range(60))
        assert await rollup_tables(store) == expected_tables(stored, PLACE)
        pid = worker_pid()
        assert pid is not None and pid != os.getpid()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_killed_folding_process_is_replaced_and_nothing_is_lost(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_store(backend, tmp_path) as store:
        stored, killed = await rolled_up_by_a_worker(store, range(40))
        os.kill(killed, signal.SIGKILL)
        stored += await write(store, range(40, 100))
        assert await rollup_tables(store) == expected_tables(stored, PLACE)
        assert worker_pid() not in (None, killed)


async def test_a_hung_folding_process_is_killed_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folding, "FOLD_TIMEOUT_SECONDS", 1.0)
    async with fresh_store("sqlite", tmp_path) as store:
        stored, hung = await rolled_up_by_a_worker(store, range(20))
        os.kill(hung, signal.SIGSTOP)
        try:
            stored += await write(store, range(20, 60))
            assert await rollup_tables(store) == expected_tables(stored, PLACE)
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed and reaped, as it should be
                os.kill(hung, signal.SIGCONT)
        assert worker_pid() not in (None, hung)


async def test_without_a_folding_process_pages_are_folded_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(folding, "_WORKER", folding._Worker())
    monkeypatch.setattr(folding, "WORKER", [str(tmp_path / "no-such-python")])
    async with fresh_store("sqlite", tmp_path) as store:
        stored = await write(store, range(30))
        assert await rollup_tables(store) == expected_tables(stored, PLACE)
    assert "folding process cannot start" in caplog.text


class Exploding(SourcePlaces):
    """A place that raises in the folding process: a bug there, as the writer sees it."""

    def __call__(self, recipient: str | None, source: str) -> tuple[str, str]:
        raise RuntimeError("placing failed")

    def __reduce__(self) -> tuple[type[Exploding], tuple[object, ...]]:
        return Exploding, self.settings


async def test_a_fold_that_raises_fails_the_read_and_the_next_one_counts_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with fresh_store("sqlite", tmp_path) as store:
        store.place = Exploding("CO", ())
        stored = await write(store, range(10))
        with pytest.raises(StoreUnavailable, match="could not roll up"):
            await store.catch_up_rollups()
        assert "RuntimeError: placing failed" in caplog.text  # the worker's traceback
        store.place = PLACE
        stored += await write(store, range(10, 20))
        assert await rollup_tables(store) == expected_tables(stored, PLACE)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_page_rolled_up_meanwhile_by_another_is_not_written_twice(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_store(backend, tmp_path) as store:
        stored, _ = await rolled_up_by_a_worker(store, range(30))
        more = await write(store, range(30, 50))
        # The next page as the writer reads it (on SQLite, the folding process reads it).
        folded = folding.fold_request(await store._next_page(), PLACE)
        assert folded.events == 20
        database = _database(store, tmp_path)  # another process's connection
        await database.open()
        try:
            # Another process (or the retention pass) rolls the same events up first.
            done = await database.transact(catch_up(PLACE, database.dialect))
            assert done == 20
            applied = await database.transact(apply_page(folded, database.dialect))
        finally:
            await database.close()
        assert applied is False
        assert await rollup_tables(store) == expected_tables(stored + more, PLACE)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_writer_reads_the_next_page_again_after_losing_a_race(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's own fold loses to a catch-up run between its read and its write."""
    async with fresh_store(backend, tmp_path) as store:
        database = _database(store, tmp_path)  # another process's connection
        await database.open()
        raced = asyncio.Event()

        async def racing_fold(request: folding.FoldRequest, place: Place) -> Folded:
            folded = folding.fold_request(request, place)
            if not raced.is_set():
                raced.set()
                await database.transact(catch_up(place, database.dialect))
            return folded

        monkeypatch.setattr(store_sql, "fold_elsewhere", racing_fold)
        try:
            stored = await write(store, range(40))
            await eventually_async(raced.is_set, 10, "the writer to fold a page")
            stored += await write(store, range(40, 60))
            assert await rollup_tables(store) == expected_tables(stored, PLACE)
        finally:
            await database.close()


def test_a_source_places_is_sent_as_its_settings_and_keeps_its_cache() -> None:
    places = NumberPlaces("CO").place_for({"madrid": "ES"})
    assert places("3001234567", "cdmx") == ("CO", places("+573001234567", "x")[1])
    copy = pickle.loads(pickle.dumps(places))  # noqa: S301 (made here)
    assert copy is places  # this process's one instance for these settings
    assert len(pickle.dumps(places)) < 200  # never its cache


def test_the_worker_answers_each_frame_and_ends_with_its_input() -> None:
    page = Page(0, [], [])
    requests = io.BytesIO()
    write_frame(requests, pickle.dumps((page, PLACE)))
    write_frame(requests, b"not a pickle")
    requests.write(b"\x00\x00")  # a torn last frame: the end of input
    requests.seek(0)
    answers = io.BytesIO()
    serve(requests, answers)
    answers.seek(0)
    first, second = read_frame(answers), read_frame(answers)
    assert first is not None and second is not None and read_frame(answers) is None
    ok, folded = pickle.loads(first)  # noqa: S301 (made here)
    assert ok and folded.events == 0
    ok, error = pickle.loads(second)  # noqa: S301 (made here)
    assert not ok and "UnpicklingError" in error


def test_a_removed_store_file_is_not_made_again_by_the_helper(tmp_path: Path) -> None:
    gone = tmp_path / "gone.sqlite3"
    with pytest.raises(sqlite3.OperationalError):
        folding.fold_request(folding.SQLitePage(str(gone), 10), PLACE)
    assert not gone.exists()
