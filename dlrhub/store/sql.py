"""The store over SQL, shared by the SQLite and PostgreSQL backends.

One writer task takes every queued write, commits them in one transaction
(group commit) and only then answers each caller, so durability costs one sync
per batch rather than per request. Each backend's write transaction holds a
lock that serializes writers (SQLite's `BEGIN IMMEDIATE`, a PostgreSQL advisory
lock), and sequence numbers are allocated inside it: a reader paging by `seq`
never sees a gap that fills in later, even with several writer processes.
The same transaction adds its callbacks to the per-minute counts (`callback_counts`,
by received minute, source and outcome), so they add up across writer processes.
Reads use their own connections and never wait for the writer. SQL is written
once, with `?` placeholders; a backend translates what its driver needs.

A write transaction is a generator that yields the statements it wants run and
receives each one's rows (`Transaction`), so each backend runs it its own way:
PostgreSQL awaits each statement; SQLite runs them as plain calls on the event
loop and hands only the COMMIT to a thread (why: `dlrhub/store/sqlite.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from dlrhub.analytics.facts import Place
from dlrhub.analytics.figures import DeliveryQuery, Sums
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.event import (
    Event,
    EventType,
    RawCallback,
    Status,
    epoch_micros,
    format_time,
    parse_time,
)
from dlrhub.log_limits import LimitedLog
from dlrhub.store.base import (
    Accept,
    CallbackCount,
    Drop,
    EventFilter,
    KeepSecret,
    MessageSearch,
    MessageState,
    Probe,
    Quarantine,
    QuarantineEntry,
    QuarantineState,
    Reprocess,
    RollUp,
    StoredCallback,
    StoreUnavailable,
    WriteItem,
    WriteResult,
)
from dlrhub.store.dialect import Dialect
from dlrhub.store.folding import FoldRequest, fold_elsewhere
from dlrhub.store.message_search import MESSAGE_COLUMNS, reversed_digits, search_statement
from dlrhub.store.migrations import SchemaReport, event_columns
from dlrhub.store.rollup_reads import GroupKey, delivery_sums
from dlrhub.store.rollups import PAGE as ROLLUP_PAGE
from dlrhub.store.rollups import (
    Folded,
    RebuildReport,
    apply_page,
    read_page,
    rebuild,
)
from dlrhub.store.sql_statements import (
    Execute,
    ExecuteMany,
    Fetch,
    Statement,
    T,
    Transaction,
    now_text,
    run_transaction_async,
)

log = logging.getLogger(__name__)
V = TypeVar("V")


class SQLBackend(Protocol):
    """What differs between databases: connections, schema, locks, errors."""

    name: str  # for messages, e.g. "SQLite store at /var/lib/dlrhub/dlrhub.sqlite3"
    errors: tuple[type[Exception], ...]  # what means "the database is unavailable"
    dialect: Dialect

    async def open(self) -> SchemaReport:
        """Connect, and check or migrate the schema (`dlrhub/store/migrations.py`)."""

    async def close(self) -> None: ...

    async def transact(self, transaction: Transaction[T], *, writers_lock: bool = True) -> T:
        """Run `transaction` holding the writers' lock (unless `writers_lock` is false: rolling
        up takes its own); commit if it returns, else roll back."""
        ...

    async def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...


# The lattice in one comparison: a higher rank wins; at equal rank the later one.
UPSERT_MESSAGE = """
INSERT INTO messages (provider, message_id, source, status, provider_status, rank,
                      ordering_us, last_seq, recipient, correlation_id, recipient_rev)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (provider, message_id) DO UPDATE SET
    source = excluded.source,
    status = excluded.status,
    provider_status = excluded.provider_status,
    rank = excluded.rank,
    ordering_us = excluded.ordering_us,
    last_seq = excluded.last_seq,
    recipient = coalesce(excluded.recipient, messages.recipient),
    correlation_id = coalesce(excluded.correlation_id, messages.correlation_id),
    recipient_rev = coalesce(excluded.recipient_rev, messages.recipient_rev)
WHERE (excluded.rank, excluded.ordering_us) > (messages.rank, messages.ordering_us)
"""

INSERT_RAW = """
INSERT INTO raw_callbacks (id, dedupe_key, source, provider, kind, method, query,
                           content_type, body, remote_addr, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_EVENT = """
INSERT INTO events (seq, id, raw_id, source, provider, type, status, message_id, doc,
                    received_at, occurred_at, recipient, correlation_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# One row per (minute, source, outcome) a commit saw: the count is exact with several
# writers because it is added in the transaction that stores the callbacks.
COUNT_CALLBACKS = """
INSERT INTO callback_counts (minute_us, source, outcome, count) VALUES (?, ?, ?, ?)
ON CONFLICT (minute_us, source, outcome) DO UPDATE SET
    count = callback_counts.count + excluded.count
"""
MINUTE_US = 60_000_000

INSERT_QUARANTINE = "INSERT INTO quarantine (id, raw_id, reason, updated_at) VALUES (?, ?, ?, ?)"

UPDATE_QUARANTINE = """
UPDATE quarantine SET state = ?, reason = coalesce(?, reason), attempts = attempts + 1,
       updated_at = ?
WHERE id = ?
"""

QUARANTINE_COLUMNS = """
q.id, q.reason, q.state, q.attempts, r.source, r.provider, r.kind, r.method, r.query,
r.content_type, r.body, r.remote_addr, r.received_at, r.id
"""

MAX_VARIABLES = 500
SECRET_PREFIX = "secret:"  # noqa: S105 (a meta key prefix, not a secret: `shared_secret`)
SECRET_BYTES = 32
CLOSE_TIMEOUT_SECONDS = 15.0
# The writer rolls up once this long passes without a write (or a page has piled up): a
# busy writer rolls up thousands of events at a time, a quiet one within this delay.
ROLLUP_IDLE_SECONDS = 0.05
_Pending = tuple[WriteItem, "asyncio.Future[WriteResult]"]


class _Folded(enum.Enum):
    """Put in the writer's queue when a rollup page's fold is done."""

    FOLDED = "folded"


FOLDED = _Folded.FOLDED


@dataclass
class _Batch:
    """Rows gathered for one transaction, and each item's eventual result."""

    next_raw_id: int
    next_seq: int
    raws: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    quarantines: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine_updates: list[tuple[Any, ...]] = field(default_factory=list)
    counts: Counter[tuple[int, str, str]] = field(default_factory=Counter)

    def count(self, raw: RawCallback, outcome: str) -> None:
        """Count a received callback (or poll answer) under its minute, source and outcome."""
        minute = epoch_micros(raw.received_at) // MINUTE_US * MINUTE_US
        self.counts[(minute, raw.source, outcome)] += 1

    def add_raw(self, raw: RawCallback, key: str) -> int:
        raw_id = self.next_raw_id
        self.next_raw_id += 1
        self.raws.append(
            (
                raw_id,
                key,
                raw.source,
                raw.provider,
                raw.kind,
                raw.method,
                raw.query,
                raw.content_type,
                raw.body,
                raw.remote_addr,
                format_time(raw.received_at),
            )
        )
        return raw_id

    def add_events(self, raw_id: int, events: Iterable[Event]) -> list[Event]:
        stored = []
        for event in events:
            stored_event = event.with_seq(self.next_seq)
            self.next_seq += 1
            stored.append(stored_event)
            self.events.append(
                (
                    stored_event.seq,
                    event.id,
                    raw_id,
                    event.source,
                    event.provider,
                    event.type.value,
                    event.status.value if event.status is not None else None,
                    event.message_id,
                    event.to_document(),
                    *event_columns(event),
                )
            )
            if (
                event.type is EventType.MESSAGE_STATUS
                and event.message_id is not None
                and event.status is not None
            ):
                self.messages.append(
                    (
                        event.provider,
                        event.message_id,
                        event.source,
                        event.status.value,
                        event.provider_status,
                        event.status.rank,
                        epoch_micros(event.ordering_time),
                        stored_event.seq,
                        event.recipient,
                        event.correlation_id,
                        reversed_digits(event.recipient),
                    )
                )
        return stored


class SQLStore:
    """Group commit, dedupe, lattice and reads over any `SQLBackend`."""

    def __init__(
        self,
        backend: SQLBackend,
        *,
        max_batch: int = 512,
        on_commit: Callable[[int], None] | None = None,
        place: Place | None = None,
    ) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.on_commit = on_commit
        # Recipients' country and operator for the delivery rollups (dlrhub/store/rollups.py).
        self.place = place or NumberPlaces().place_for({})
        # Rolling up: the last seq this process committed and the last it saw rolled up;
        # `_behind`: more may wait (a whole page, or another process rolled up first).
        self._tip = 0
        self._rolled = 0
        self._behind = False
        self._quiet = False  # a roll-up failed: not again when idle until the next commit
        self._asked: list[asyncio.Future[WriteResult]] = []  # reads waiting for a fold
        self._fold: asyncio.Task[Folded] | None = None
        self._fold_asked: list[asyncio.Future[WriteResult]] = []  # its page answers them
        self.rollup_page = ROLLUP_PAGE  # events per rollup transaction
        # One transaction at a time on the writer's connection: the writer's, or a rebuild.
        self._transacting = asyncio.Lock()
        self._queue: asyncio.Queue[_Pending | _Folded | None] = asyncio.Queue()  # None: stop
        self._task: asyncio.Task[None] | None = None
        # A full disk fails every commit: one line per interval with a count, not per commit.
        self._commit_failures = LimitedLog(log)
        self._rollup_failures = LimitedLog(log)  # its own count: another problem than commits
        self.schema: SchemaReport | None = None  # what opening found and did

    async def open(self) -> None:
        try:
            self.schema = await self.backend.open()
        except self.backend.errors as error:
            await self.backend.close()
            raise StoreUnavailable(f"cannot open the {self.backend.name}: {error}") from error
        except BaseException:  # SchemaError: this dlrhub cannot run against the schema
            await self.backend.close()
            raise
        if self.schema.applied and self.schema.before > 0:  # an upgrade, not a creation
            log.info("%s: %s", self.backend.name, self.schema.describe())
        self._task = asyncio.create_task(self._run_writer(), name="dlrhub-store-writer")

    async def close(self) -> None:
        """Commit what is queued, then stop; later writes get `StoreUnavailable`."""
        task, self._task = self._task, None
        if task is not None:
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT_SECONDS)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fail_queued(StoreUnavailable("the store was closed"))
        await self.backend.close()

    async def write(self, item: WriteItem) -> WriteResult:
        # Not shielded: if the caller goes away the item is still committed, and the
        # writer skips answering a cancelled future.
        return await self.submit(item)

    def submit(self, item: WriteItem) -> asyncio.Future[WriteResult]:
        if self._task is None or self._task.done():
            raise StoreUnavailable("the store is not open")
        # The loop the writer runs on: asking asyncio for it costs a getpid() per call.
        future: asyncio.Future[WriteResult] = self._task.get_loop().create_future()
        self._queue.put_nowait((item, future))
        return future

    async def _run_writer(self) -> None:
        try:
            await self._write_batches()
        finally:
            fold, self._fold = self._fold, None
            if fold is not None:
                fold.cancel()  # the cursor keeps its page for the next roll-up
            waiting = [*self._fold_asked, *self._asked]
            self._fold_asked, self._asked = [], []
            _fail_futures(waiting, StoreUnavailable("the store was closed"))

    async def _write_batches(self) -> None:
        while True:
            if self._fold is None and self._queue.empty() and self._idle_work():
                try:  # idle for a moment with events to roll up: roll them up
                    first = await asyncio.wait_for(self._queue.get(), ROLLUP_IDLE_SECONDS)
                except TimeoutError:
                    self._start_fold()
                    continue
            else:
                first = await self._queue.get()
            if first is None:
                return
            if first is FOLDED:
                await self._apply_fold()
                continue
            pending: list[_Pending] = [first]
            folded = False  # the fold finished while the batch was gathered
            while len(pending) < self.max_batch and not self._queue.empty():
                queued = self._queue.get_nowait()
                if queued is None:
                    self._queue.put_nowait(None)  # finish this batch, then stop
                    break
                if queued is FOLDED:
                    folded = True
                else:
                    pending.append(queued)
            await self._commit_batch(pending)
            if folded:
                await self._apply_fold()
            self._fold_if_due()

    async def _commit_batch(self, pending: list[_Pending]) -> None:
        items = [item for item, _ in pending]
        try:
            results = await self._commit(items)
        except self.backend.errors as error:
            self._commit_failures.happened("store commits failed: %s", error)
            message = f"the {self.backend.name} could not commit: {error}"
            _fail(pending, StoreUnavailable(message))
            return
        except asyncio.CancelledError:
            _fail(pending, StoreUnavailable("the store was closed mid-commit"))
            raise
        except Exception as error:  # a bug must not leave callers waiting forever
            self._commit_failures.happened(
                "store commits failed unexpectedly: %r", error, exc_info=True
            )
            _fail(pending, StoreUnavailable(f"the store could not commit: {error!r}"))
            return
        if self._commit_failures.ongoing:
            self._commit_failures.ended("store commits succeed again after failing")
        for (item, future), result in zip(pending, results, strict=True):
            if not future.done() and not isinstance(item, RollUp):
                future.set_result(result)
        # After the results, so that `on_commit` may answer the callers at once: the
        # ingest worker writes its answers there, before its loop reads more input.
        if self.on_commit is not None:
            self.on_commit(len(items))
        self._tip = max([self._tip, *(e.seq for r in results for e in r.events if e.seq)])
        self._quiet = False
        self._asked += [future for item, future in pending if isinstance(item, RollUp)]

    # Rolling up (dlrhub/store/rollups.py) follows the commits: a page is read on the
    # reader and folded in another process (dlrhub/store/folding.py) while the writer
    # goes on committing; when the fold is done (FOLDED comes through the queue) the
    # writer writes its rows, if no one else rolled up meanwhile.

    def _idle_work(self) -> bool:
        return not self._quiet and (self._tip > self._rolled or self._behind)

    def _fold_if_due(self) -> None:
        """Fold now for a waiting read or a page of events; else when idle."""
        due = self._asked or self._tip - self._rolled >= self.rollup_page
        if self._fold is None and due:
            self._start_fold()

    def _start_fold(self) -> None:
        """Read and fold the next page; a read that asked before now is answered by it."""
        self._fold_asked, self._asked = self._asked, []
        self._fold = asyncio.create_task(self._read_and_fold(), name="dlrhub-rollup-fold")
        self._fold.add_done_callback(lambda _: self._queue.put_nowait(FOLDED))

    async def _read_and_fold(self) -> Folded:
        return await fold_elsewhere(await self._next_page(), self.place)

    async def _next_page(self) -> FoldRequest:
        """The next page to fold, read on the reader (SQLiteStore has the worker read it)."""
        return await run_transaction_async(
            read_page(self.rollup_page, self.backend.dialect), self._fetch
        )

    async def _fetch(self, statement: Statement) -> list[tuple[Any, ...]]:
        assert isinstance(statement, Fetch)  # reading a page only reads
        return await self._read(statement.sql, statement.params)

    async def _apply_fold(self) -> None:
        fold, self._fold = self._fold, None
        asked, self._fold_asked = self._fold_asked, []
        if fold is None:
            return
        try:
            folded = fold.result()
            applied = True
            if folded.events:
                async with self._transacting:
                    applied = await self.backend.transact(
                        apply_page(folded, self.backend.dialect), writers_lock=False
                    )
        except Exception as error:  # the database's errors, or a bug: never a stuck reader
            # Tried again after the next commit or by the next read, not in a loop: the
            # cursor keeps every event for it.
            self._quiet = True
            self._rollup_failures.happened(
                "delivery rollups failed: %r", error, exc_info=not self._is_outage(error)
            )
            _fail_futures(asked, StoreUnavailable(f"the {self.backend.name} could not roll up"))
            return
        if self._rollup_failures.ongoing:
            self._rollup_failures.ended("delivery rollups succeed again after failing")
        whole = folded.events >= self.rollup_page
        if applied:
            self._rolled, self._behind = folded.last_seq, whole
        else:  # another process rolled up first: read again for a waiting read, else
            # when idle or a page of this process's events has piled up since
            self._rolled, self._behind = max(self._rolled, folded.last_seq), True
        if applied and not whole:
            for future in asked:  # caught up with every commit before they asked
                if not future.done():
                    future.set_result(WriteResult("rolled_up"))
        else:
            self._asked = asked + self._asked
        self._fold_if_due()

    def _is_outage(self, error: BaseException) -> bool:
        return isinstance(error, self.backend.errors)

    def _fail_queued(self, error: StoreUnavailable) -> None:
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None and queued is not FOLDED:
                _fail([queued], error)

    async def _commit(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        async with self._transacting:
            return await self.backend.transact(_apply(items, self.backend.dialect, self.place))

    async def rebuild_rollups(self) -> RebuildReport:
        """Recompute the delivery rollups from the kept events (`dlrhub/store/rollups.py`)."""
        async with self._transacting:
            return await self.backend.transact(rebuild(self.place, self.backend.dialect))

    # Reads ---------------------------------------------------------------

    async def catch_up_rollups(self) -> None:
        """Roll up every event committed so far (by any process) before this returns."""
        await self.write(RollUp())

    async def delivery_sums(self, query: DeliveryQuery) -> dict[GroupKey, Sums]:
        """The delivery rollups' sums per group of `query` (`dlrhub/store/rollup_reads.py`),
        counting every event committed before the call."""
        await self.catch_up_rollups()
        return await delivery_sums(self._read, query)

    async def events(self, query: EventFilter) -> list[Event]:
        sql, params = event_query(query)
        rows = await self._read(sql, params)
        return [Event.from_json(doc).with_seq(int(seq)) for seq, doc in rows]

    async def callbacks_of(self, seqs: Sequence[int]) -> dict[int, StoredCallback]:
        found: dict[int, StoredCallback] = {}
        for chunk, marks in _in_chunks(sorted(set(seqs))):
            rows = await self._read(
                "SELECT e.seq, r.id, r.source, r.provider, r.kind, r.method, r.query,"  # noqa: S608
                " r.content_type, r.body, r.remote_addr, r.received_at"
                f" FROM events e JOIN raw_callbacks r ON r.id = e.raw_id WHERE e.seq IN ({marks})",
                chunk,
            )
            for seq, raw_id, *columns in rows:
                found[int(seq)] = StoredCallback(int(raw_id), _raw_callback(columns))
        return found

    async def message(self, provider: str, message_id: str) -> MessageState | None:
        rows = await self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages"  # noqa: S608
            " WHERE provider = ? AND message_id = ?",
            [provider, message_id],
        )
        states = await self._message_states(rows)
        return states[0] if states else None

    async def search_messages(self, query: MessageSearch) -> list[MessageState]:
        statement = search_statement(query, self.backend.dialect)
        return await self._message_states(await self._read(statement.sql, statement.params))

    async def callback_counts(self, since: datetime) -> list[CallbackCount]:
        start = epoch_micros(since if since.tzinfo else since.replace(tzinfo=UTC))
        rows = await self._read(
            "SELECT minute_us, source, outcome, count FROM callback_counts WHERE minute_us >= ?"
            " ORDER BY minute_us, source, outcome",
            [start // MINUTE_US * MINUTE_US],
        )
        return [
            CallbackCount(_from_micros(int(minute)), str(source), str(outcome), int(count))
            for minute, source, outcome, count in rows
        ]

    async def shared_secret(self, name: str) -> str:
        # Created once, by whichever process commits first; read back by all of them.
        key = SECRET_PREFIX + name
        rows = await self._read("SELECT value FROM meta WHERE key = ?", [key])
        if not rows:
            await self.write(KeepSecret(name, secrets.token_urlsafe(SECRET_BYTES)))
            rows = await self._read("SELECT value FROM meta WHERE key = ?", [key])
        return str(rows[0][0])

    async def _message_states(self, rows: list[tuple[Any, ...]]) -> list[MessageState]:
        """Rows of `MESSAGE_COLUMNS` as states, with when each one's last event came in."""
        received = await self._received_at([int(row[6]) for row in rows])
        return [
            MessageState(
                provider=provider,
                message_id=message_id,
                source=source,
                status=Status(status),
                provider_status=provider_status,
                occurred_at=_from_micros(int(ordering_us)),
                last_seq=int(last_seq),
                recipient=recipient,
                correlation_id=correlation,
                updated_at=received.get(int(last_seq)),
            )
            for (
                provider,
                message_id,
                source,
                status,
                provider_status,
                ordering_us,
                last_seq,
                recipient,
                correlation,
            ) in rows
        ]

    async def _received_at(self, seqs: list[int]) -> dict[int, datetime]:
        found: dict[int, datetime] = {}
        if not seqs:
            return found
        if self.backend.dialect.arrays:
            rows = await self._read(
                "SELECT seq, received_at FROM events WHERE seq = any(?)", [seqs]
            )
        else:
            rows = []
            for chunk, marks in _in_chunks(seqs):
                rows += await self._read(
                    f"SELECT seq, received_at FROM events WHERE seq IN ({marks})",  # noqa: S608
                    chunk,
                )
        for seq, received_at in rows:
            if received_at is not None:
                found[int(seq)] = parse_time(str(received_at))
        return found

    async def quarantine_entries(
        self, *, state: QuarantineState | None = None, after_id: int = 0, limit: int = 100
    ) -> list[QuarantineEntry]:
        sql = (
            f"SELECT {QUARANTINE_COLUMNS} FROM quarantine q JOIN raw_callbacks r"  # noqa: S608
            " ON r.id = q.raw_id WHERE q.id > ?"
        )
        params: list[Any] = [after_id]
        if state is not None:
            sql += " AND q.state = ?"
            params.append(state)
        rows = await self._read(sql + " ORDER BY q.id LIMIT ?", [*params, limit])
        return [await self._quarantine_entry(row) for row in rows]

    async def quarantine_entry(self, entry_id: int) -> QuarantineEntry | None:
        rows = await self._read(
            f"SELECT {QUARANTINE_COLUMNS} FROM quarantine q JOIN raw_callbacks r"  # noqa: S608
            " ON r.id = q.raw_id WHERE q.id = ?",
            [entry_id],
        )
        return await self._quarantine_entry(rows[0]) if rows else None

    async def quarantine_pending_count(self) -> int:
        rows = await self._read("SELECT count(*) FROM quarantine WHERE state = 'pending'", [])
        return int(rows[0][0])

    async def drop_quarantine(self, entry_ids: Sequence[int]) -> list[int]:
        # Submitted together, so they share one commit unless the writer is busy.
        futures = [self.submit(Drop(entry_id)) for entry_id in entry_ids]
        results = await asyncio.gather(*futures)
        return [
            entry_id
            for entry_id, result in zip(entry_ids, results, strict=True)
            if result.outcome == "dropped"
        ]

    async def drop_resolved_quarantine(self) -> list[int]:
        # An entry never goes back from reprocessed to pending, so what this lists
        # is still resolved when its Drop commits.
        dropped: list[int] = []
        after = 0
        while rows := await self._read(
            "SELECT id FROM quarantine WHERE state = 'reprocessed' AND id > ? ORDER BY id LIMIT ?",
            [after, MAX_VARIABLES],
        ):
            page = [int(entry_id) for (entry_id,) in rows]
            dropped += await self.drop_quarantine(page)
            after = page[-1]
        return dropped

    async def _quarantine_entry(self, row: tuple[Any, ...]) -> QuarantineEntry:
        entry_id, reason, state, attempts = row[:4]
        raw_id = row[13]
        event_rows = await self._read(
            "SELECT id FROM events WHERE raw_id = ? ORDER BY seq", [raw_id]
        )
        raw = _raw_callback(row[4:13])
        return QuarantineEntry(
            id=int(entry_id),
            raw=raw,
            reason=reason,
            state=state,
            attempts=int(attempts),
            event_ids=[str(event_id) for (event_id,) in event_rows],
        )

    async def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._task is None:
            raise StoreUnavailable("the store is not open")
        try:
            return await self.backend.read(sql, params)
        except self.backend.errors as error:
            raise StoreUnavailable(f"the {self.backend.name} could not be read: {error}") from error


def event_query(query: EventFilter) -> tuple[str, list[object]]:
    """The SELECT (and its parameters) reading the events `query` asks for.

    Each filter is an equality or range on an indexed column (`events_by_message`,
    `events_by_recipient`, `events_by_correlation`, `events_by_received_seq`), so the
    database can start from the narrowest one; times compare as `format_time` text.
    """
    clauses: list[str] = []
    params: list[object] = []
    if query.after_seq:  # not `seq > 0`: SQLite would then read by seq, not by the filter's index
        clauses.append("seq > ?")
        params.append(query.after_seq)
    if query.before_seq:
        clauses.append("seq < ?")
        params.append(query.before_seq)
    for column, value in (
        ("source", query.source),
        ("provider", query.provider),
        ("message_id", query.message_id),
        ("type", query.type.value if query.type else None),
        ("status", query.status.value if query.status else None),
        ("correlation_id", query.correlation_id),
        ("recipient", query.recipient),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("received_at >= ?")
        params.append(format_time(query.since))
    if query.until is not None:
        clauses.append("received_at < ?")
        params.append(format_time(query.until))
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    # Reading by seq from the far end of a time window would pass every event outside it:
    # then `+seq`, which no index orders, so the database starts from the time index.
    from_window = (query.since is not None and not query.descending and not query.after_seq) or (
        query.until is not None and query.descending and not query.before_seq
    )
    order = ("+seq" if from_window else "seq") + (" DESC" if query.descending else "")
    sql = f"SELECT seq, doc FROM events {where}ORDER BY {order} LIMIT ?"  # noqa: S608
    return sql, [*params, query.limit]


def _raw_callback(columns: Sequence[Any]) -> RawCallback:
    """A `RawCallback` from the columns source .. received_at of `raw_callbacks`."""
    source, provider, kind, method, query, content_type, body, remote_addr, received_at = columns
    return RawCallback(
        source=source,
        provider=provider,
        kind=kind,
        method=method,
        query=query,
        content_type=content_type,
        body=bytes(body),
        received_at=parse_time(received_at),
        remote_addr=remote_addr,
    )


def _apply(
    items: Sequence[WriteItem], dialect: Dialect, place: Place
) -> Transaction[list[WriteResult]]:
    keyed = [item for item in items if isinstance(item, Accept | Quarantine)]
    known = yield from _known_raw_ids([item.raw.dedupe_key() for item in keyed], dialect)
    (row,) = yield Fetch(
        "SELECT (SELECT coalesce(max(id), 0) FROM raw_callbacks),"
        " (SELECT coalesce(max(seq), 0) FROM events)"
    )
    batch = _Batch(next_raw_id=row[0] + 1, next_seq=row[1] + 1)
    results: list[WriteResult | int] = []  # an int is the raw id of a duplicate
    added: dict[str, int] = {}  # dedupe key -> index in results, for repeats in the batch
    for item in items:
        if isinstance(item, Probe):
            yield Execute(
                "INSERT INTO meta (key, value) VALUES ('probe', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (now_text(),),
            )
            results.append(WriteResult("probed"))
        elif isinstance(item, KeepSecret):
            yield Execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (SECRET_PREFIX + item.name, item.value),
            )
            results.append(WriteResult("kept"))
        elif isinstance(item, Reprocess):
            results.append((yield from _reprocess(batch, item)))
        elif isinstance(item, Drop):
            results.append((yield from _drop(item)))
        elif isinstance(item, RollUp):
            results.append(WriteResult("rolled_up"))  # by the writer, after this commit
        else:
            key = item.raw.dedupe_key()
            if key in known:
                batch.count(item.raw, "duplicate")
                results.append(known[key])
            elif key in added:
                batch.count(item.raw, "duplicate")
                first = results[added[key]]
                assert isinstance(first, WriteResult)
                results.append(_as_duplicate(first))
            else:
                added[key] = len(results)
                raw_id = batch.add_raw(item.raw, key)
                if isinstance(item, Accept):
                    batch.count(item.raw, "stored")
                    results.append(WriteResult("stored", batch.add_events(raw_id, item.events)))
                else:
                    batch.count(item.raw, "quarantined")
                    quarantine_id = yield from _next_quarantine_id(batch)
                    batch.quarantines.append((quarantine_id, raw_id, item.reason, now_text()))
                    results.append(WriteResult("quarantined", quarantine_id=quarantine_id))
    for sql, rows in (
        (INSERT_RAW, batch.raws),
        (INSERT_EVENT, batch.events),
        (UPSERT_MESSAGE, batch.messages),
        (INSERT_QUARANTINE, batch.quarantines),
        (UPDATE_QUARANTINE, batch.quarantine_updates),
        (COUNT_CALLBACKS, [(*group, count) for group, count in sorted(batch.counts.items())]),
    ):
        if rows:
            yield ExecuteMany(sql, rows)
    duplicates = {value for value in results if isinstance(value, int)}
    previous = (yield from _previous_outcomes(duplicates)) if duplicates else {}
    return [previous[value] if isinstance(value, int) else value for value in results]


def _next_quarantine_id(batch: _Batch) -> Transaction[int]:
    if batch.quarantines:
        return int(batch.quarantines[-1][0]) + 1
    (row,) = yield Fetch("SELECT coalesce(max(id), 0) FROM quarantine")
    dropped = yield from _last_dropped_quarantine_id()
    return max(int(row[0]), dropped) + 1


def _last_dropped_quarantine_id() -> Transaction[int]:
    """The highest id ever dropped: a new entry never takes the id of a dropped one."""
    rows = yield Fetch("SELECT value FROM meta WHERE key = 'quarantine_last_dropped'")
    return int(rows[0][0]) if rows else 0


def _drop(item: Drop) -> Transaction[WriteResult]:
    """Delete the entry now, not with the batch's rows: a later item in the batch sees it gone."""
    rows = yield Fetch("SELECT id FROM quarantine WHERE id = ?", (item.quarantine_id,))
    if not rows:
        return WriteResult("not_found", quarantine_id=item.quarantine_id)
    if item.quarantine_id > (yield from _last_dropped_quarantine_id()):
        yield Execute(
            "INSERT INTO meta (key, value) VALUES ('quarantine_last_dropped', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(item.quarantine_id),),
        )
    yield Execute("DELETE FROM quarantine WHERE id = ?", (item.quarantine_id,))
    return WriteResult("dropped", quarantine_id=item.quarantine_id)


def _reprocess(batch: _Batch, item: Reprocess) -> Transaction[WriteResult]:
    rows = yield Fetch("SELECT raw_id, state FROM quarantine WHERE id = ?", (item.quarantine_id,))
    if not rows:
        return WriteResult("not_found", quarantine_id=item.quarantine_id)
    raw_id, state = int(rows[0][0]), str(rows[0][1])
    if state == "reprocessed":
        return (yield from _previous_outcomes({raw_id}))[raw_id]
    if item.events is None:
        batch.quarantine_updates.append(("pending", item.reason, now_text(), item.quarantine_id))
        return WriteResult("failed_again", quarantine_id=item.quarantine_id)
    stored = batch.add_events(raw_id, item.events)
    batch.quarantine_updates.append(("reprocessed", None, now_text(), item.quarantine_id))
    return WriteResult("reprocessed", stored, quarantine_id=item.quarantine_id)


def _in_chunks(values: Sequence[V]) -> Iterator[tuple[Sequence[V], str]]:
    """`values` in pieces small enough for one `IN (...)`, each with its placeholders."""
    for start in range(0, len(values), MAX_VARIABLES):
        chunk = values[start : start + MAX_VARIABLES]
        yield chunk, ",".join("?" * len(chunk))


def _known_raw_ids(keys: list[str], dialect: Dialect) -> Transaction[dict[str, int]]:
    known: dict[str, int] = {}
    if dialect.arrays:
        rows = yield Fetch(
            "SELECT dedupe_key, id FROM raw_callbacks WHERE dedupe_key = any(?)", (keys,)
        )
        return {str(key): int(raw_id) for key, raw_id in rows}
    for chunk, marks in _in_chunks(keys):
        rows = yield Fetch(
            f"SELECT dedupe_key, id FROM raw_callbacks WHERE dedupe_key IN ({marks})",  # noqa: S608
            chunk,
        )
        known.update({str(key): int(raw_id) for key, raw_id in rows})
    return known


def _previous_outcomes(raw_ids: set[int]) -> Transaction[dict[int, WriteResult]]:
    """What an earlier delivery of the same callback led to, as a duplicate's answer."""
    events: dict[int, list[Event]] = {raw_id: [] for raw_id in raw_ids}
    quarantined: dict[int, int] = {}
    for chunk, marks in _in_chunks(sorted(raw_ids)):
        rows = yield Fetch(
            f"SELECT raw_id, seq, doc FROM events WHERE raw_id IN ({marks}) ORDER BY seq",  # noqa: S608
            chunk,
        )
        for raw_id, seq, doc in rows:
            events[int(raw_id)].append(Event.from_json(doc).with_seq(int(seq)))
        rows = yield Fetch(
            f"SELECT raw_id, id FROM quarantine WHERE raw_id IN ({marks})",  # noqa: S608
            chunk,
        )
        quarantined.update({int(raw_id): int(entry) for raw_id, entry in rows})
    return {
        raw_id: WriteResult("duplicate", events[raw_id], quarantined.get(raw_id))
        for raw_id in raw_ids
    }


def _from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC)


def _fail_futures(futures: Iterable[asyncio.Future[WriteResult]], error: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


def _fail(pending: Iterable[_Pending], error: Exception) -> None:
    _fail_futures((future for _, future in pending), error)


def _as_duplicate(result: WriteResult) -> WriteResult:
    return WriteResult("duplicate", result.events, result.quarantine_id)
