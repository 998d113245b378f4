"""Folding rollup pages in a worker process, off the store writer's event loop.

Rolling up costs about 20 us of Python per event (placing new recipients with
phonenumbers, folding their facts, adding up the cells). On SQLite the writer's
event loop also runs every commit, so folding there took a quarter of ingest's
rate (bench/README.md). The writer reads a page on its reader, has it folded
here, and writes the rows in a short transaction (`dlrhub/store/rollups.py`).

One worker process (`python -m dlrhub.store.fold_worker`, on pipes) serves
every store of this process, started on first use, one page at a time. Its
number cache stays warm between pages: a `SourcePlaces` is sent as its
settings. It ends with this process (end of its input). A worker that dies,
garbles an answer or takes longer than `FOLD_TIMEOUT_SECONDS` is killed and
started anew for the page; if none can start, the page is folded on the loop
(logged) so the rollups never stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import select
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dlrhub.analytics.facts import Place
from dlrhub.store.dialect import SQLITE
from dlrhub.store.rollups import Folded, Page, fold_page, read_page
from dlrhub.store.sql_statements import Fetch, Rows, Statement, run_transaction

log = logging.getLogger(__name__)

FOLD_TIMEOUT_SECONDS = 60.0  # a page of 5,000 events folds in 0.1-0.25 s
WORKER = [sys.executable, "-m", "dlrhub.store.fold_worker"]
HEADER = struct.Struct("!Q")  # a frame: its length, then a pickle (fold_worker.py)


def write_frame(stream: IO[bytes], data: bytes) -> None:
    """One frame, both ways: a request to the worker, its answer back."""
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


@dataclass(frozen=True, slots=True)
class SQLitePage:
    """Asks the worker to read the next page itself, from this SQLite file: the rows
    (a megabyte a page) then never pass through the writer's process (WAL: a reader
    never waits for the writer, nor the writer for it)."""

    path: str
    size: int


FoldRequest = Page | SQLitePage
READ_BUSY_TIMEOUT_MS = 10_000


def fold_request(request: FoldRequest, place: Place) -> Folded:
    """The page `request` names, folded (what the worker runs for each frame)."""
    return fold_page(request if isinstance(request, Page) else _read_sqlite(request), place)


def _read_sqlite(request: SQLitePage) -> Page:
    # Read-only: a store's file removed meanwhile is an error here, not a new empty file.
    uri = f"{Path(request.path).resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
        db.execute("BEGIN")  # one snapshot for the cursor, the events and their facts

        def fetch(statement: Statement) -> Rows:
            assert isinstance(statement, Fetch)
            return db.execute(statement.sql, statement.params).fetchall()

        return run_transaction(read_page(request.size, SQLITE), fetch)
    finally:
        db.close()


class FoldFailed(Exception):
    """The worker raised while folding: a bug, with its traceback."""


class _WorkerLost(Exception):
    """The worker died, garbled its answer or took too long."""


async def fold_elsewhere(request: FoldRequest, place: Place) -> Folded:
    """`fold_request(request, place)` in the worker process (here if none can run)."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, _WORKER.fold, request, place)
    except OSError as error:  # no worker could start (no executable, no processes)
        log.error("the rollups' folding process cannot start (%s): folding here", error)
        return fold_request(request, place)


class _Worker:
    """The worker process and its pipes; `fold` is called from executor threads."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def fold(self, request: FoldRequest, place: Place) -> Folded:
        frame = pickle.dumps((request, place), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            for attempt in (1, 2):
                process = self._running()
                try:
                    answer = self._ask(process, frame)
                except _WorkerLost as error:
                    self._stop()
                    if attempt == 2:
                        raise OSError(f"the folding process failed twice: {error}") from error
                    log.warning("the rollups' folding process failed (%s): starting another", error)
                    continue
                ok, value = answer
                if not ok:
                    raise FoldFailed(str(value))
                assert isinstance(value, Folded)
                return value
        raise AssertionError("unreachable")

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
            )
        return self._process

    def _ask(self, process: subprocess.Popen[bytes], request: bytes) -> tuple[bool, object]:
        assert process.stdin is not None and process.stdout is not None
        deadline = time.monotonic() + FOLD_TIMEOUT_SECONDS
        try:
            write_frame(process.stdin, request)
            (size,) = HEADER.unpack(_read(process, HEADER.size, deadline))
            answer = pickle.loads(_read(process, size, deadline))  # noqa: S301 (our worker)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as error:
            raise _WorkerLost(repr(error)) from error
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise _WorkerLost(f"an answer that is not one: {type(answer).__name__}")
        return answer

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()


def _read(process: subprocess.Popen[bytes], size: int, deadline: float) -> bytes:
    """`size` bytes of the worker's answer, by `deadline`."""
    assert process.stdout is not None
    chunks, wanted = [], size
    descriptor = process.stdout.fileno()
    while wanted:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            raise _WorkerLost(f"no answer within {FOLD_TIMEOUT_SECONDS:.0f} s")
        chunk = os.read(descriptor, wanted)  # not the buffered reader: select sees the fd
        if not chunk:
            raise EOFError("the folding process ended")
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


_WORKER = _Worker()
