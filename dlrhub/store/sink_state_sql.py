"""The sink state, written once for SQLite and PostgreSQL over `dlrhub/store/database.py`.

The tables are the event store's (migrations 1 and 3): open the event store
first. Each method is one short transaction of its own. On SQLite the
connection runs `synchronous=NORMAL` (`open_sink_database`): in WAL mode that
is safe against a crashed process, and a power cut can only roll back the last
cursor moves, which means redelivery, never loss.

A write given a `Fence` carries the condition "the writer still holds the
sink's lease with this token" (`sink_leases.py`) and returns the rows it
touched; none means the lease went to another worker: `LeaseLost`. On
PostgreSQL the condition reads the lease row `FOR SHARE`, so a takeover that
commits meanwhile waits for the write, or the write sees the new token.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dlrhub.event import Event, format_time, parse_time
from dlrhub.store.base import StoreUnavailable
from dlrhub.store.database import Database, open_database
from dlrhub.store.settings import StoreConfig
from dlrhub.store.sink_state import (
    DeadLetter,
    DeadLetterState,
    DeliveryAttempt,
    Fence,
    LeaseLost,
    ReplayJob,
    RetryCount,
    SinkState,
    SinkStateUnavailable,
)
from dlrhub.store.sql_statements import (
    Execute,
    ExecuteMany,
    Fetch,
    Rows,
    Transaction,
    now_text,
)

DEAD_LETTER_COLUMNS = "id, sink, seq, doc, error, attempts, state, created_at, updated_at"
ATTEMPT_COLUMNS = "sink, seq, event_id, attempt, at_us, outcome, duration_ms, answer"
INSERT_ATTEMPT = (
    f"INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
)
IDS_PER_QUERY = 500  # SQLite's `IN (?, ...)`: well under its 32,766 variables
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def open_sink_database(settings: StoreConfig, data_dir: Path) -> Database:
    """The database of the sink state (not yet opened); on SQLite with `synchronous=NORMAL`."""
    return open_database(settings, data_dir, synchronous="NORMAL")


class SQLSinkState:
    """`SinkStateStore` on a `Database`; it opens and closes the database it is given."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.dialect = database.dialect
        share = " FOR SHARE" if self.dialect.name == "postgres" else ""
        # `{sink}` is the column or placeholder naming the sink of the row written.
        self._held = (
            "EXISTS (SELECT 1 FROM sink_leases l WHERE l.sink = {sink} AND l.owner = ?"  # noqa: S608
            f" AND l.token = ?{share})"
        )
        self._state_columns = f"""
c.sink, c.after_seq, c.paused, c.disabled_reason, c.last_error, c.last_error_at,
c.last_delivered_at, c.delivered,
(SELECT count(*) FROM sink_dead_letters d WHERE d.sink = c.sink),
(SELECT count(*) FROM sink_replays r WHERE r.sink = c.sink),
(SELECT count(*) FROM sink_dead_letters d WHERE d.sink = c.sink AND d.state = 'retry'),
(SELECT l.owner FROM sink_leases l WHERE l.sink = c.sink AND l.expires_us > {self.dialect.now_us})
"""  # noqa: S608

    async def open(self) -> None:
        try:
            await self.database.open()
        except StoreUnavailable as error:
            raise SinkStateUnavailable(f"cannot open the sink state: {error}") from error

    async def close(self) -> None:
        await self.database.close()

    # Cursors and control ------------------------------------------------------

    async def ensure(self, sink: str, *, start_after: int) -> SinkState:
        await self._execute(
            "INSERT INTO sink_cursors (sink, after_seq, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (sink) DO NOTHING",
            (sink, start_after, now_text()),
        )
        state = await self.state(sink)
        assert state is not None
        return state

    async def state(self, sink: str) -> SinkState | None:
        rows = await self._read(
            f"SELECT {self._state_columns} FROM sink_cursors c WHERE c.sink = ?",  # noqa: S608
            (sink,),
        )
        return _state(rows[0]) if rows else None

    async def states(self) -> list[SinkState]:
        rows = await self._read(
            f"SELECT {self._state_columns} FROM sink_cursors c ORDER BY c.sink"  # noqa: S608
        )
        return [_state(row) for row in rows]

    async def advance(
        self,
        sink: str,
        after_seq: int,
        *,
        delivered: int,
        delivered_at: datetime | None,
        fence: Fence | None = None,
        attempts: Sequence[DeliveryAttempt] = (),
    ) -> None:
        greatest = self.dialect.greatest
        move = (
            f"UPDATE sink_cursors SET after_seq = {greatest}(after_seq, ?),"  # noqa: S608
            " delivered = delivered + ?, last_delivered_at = coalesce(?, last_delivered_at),"
            " updated_at = ? WHERE sink = ?"
        )
        params = (after_seq, delivered, _optional_time(delivered_at), now_text(), sink)

        def transaction() -> Transaction[None]:
            yield from self._fenced(move, params, "?", sink, fence)
            yield Execute(
                "DELETE FROM sink_attempts WHERE sink = ? AND seq <= ?", (sink, after_seq)
            )
            if attempts:
                yield ExecuteMany(INSERT_ATTEMPT, _attempt_rows(attempts))

        await self._transact(transaction())

    async def count_delivered(
        self, sink: str, delivered: int, delivered_at: datetime, *, fence: Fence | None = None
    ) -> None:
        await self._write_fenced(
            "UPDATE sink_cursors SET delivered = delivered + ?, last_delivered_at = ?,"
            " updated_at = ? WHERE sink = ?",
            (delivered, format_time(delivered_at), now_text(), sink),
            "?",
            sink,
            fence,
        )

    async def set_paused(self, sink: str, paused: bool) -> None:
        if paused:
            sql = "UPDATE sink_cursors SET paused = 1, updated_at = ? WHERE sink = ?"
        else:
            sql = (
                "UPDATE sink_cursors SET paused = 0, disabled_reason = NULL, updated_at = ?"
                " WHERE sink = ?"
            )
        await self._execute(sql, (now_text(), sink))

    async def disable(self, sink: str, reason: str) -> None:
        await self._execute(
            "UPDATE sink_cursors SET disabled_reason = ?, updated_at = ? WHERE sink = ?",
            (reason, now_text(), sink),
        )

    async def record_error(self, sink: str, error: str, at: datetime) -> None:
        await self._execute(
            "UPDATE sink_cursors SET last_error = ?, last_error_at = ?, updated_at = ?"
            " WHERE sink = ?",
            (error, format_time(at), now_text(), sink),
        )

    # Dead letters -------------------------------------------------------------

    async def add_dead_letter(
        self, sink: str, event: Event, error: str, attempts: int, *, fence: Fence | None = None
    ) -> int:
        now = now_text()
        values = (sink, event.seq, event.id, event.to_document(), error, attempts, now, now)
        sql = (
            "INSERT INTO sink_dead_letters (sink, seq, event_id, doc, error, attempts,"
            " created_at, updated_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE 1 = 1"
        )
        params: tuple[Any, ...] = values
        if fence is not None:
            sql += " AND " + self._held.format(sink="?")
            params += (sink, fence.owner, fence.token)
        rows = await self._transact(_fetch(sql + " RETURNING id", params))
        if not rows:
            raise _lost(sink, fence)
        return int(rows[0][0])

    async def dead_letters(
        self,
        sink: str,
        *,
        state: DeadLetterState | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]:
        sql = f"SELECT {DEAD_LETTER_COLUMNS} FROM sink_dead_letters WHERE sink = ? AND id > ?"  # noqa: S608
        params: list[Any] = [sink, after_id]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        rows = await self._read(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [_dead_letter(row) for row in rows]

    async def request_retry(self, sink: str, ids: list[int] | None) -> int:
        return await self._change_dead_letters(
            "UPDATE sink_dead_letters SET state = 'retry', updated_at = ?"
            " WHERE sink = ? AND state = 'dead'",
            [now_text(), sink],
            ids,
        )

    async def resolve_dead_letter(self, dead_letter_id: int, *, fence: Fence | None = None) -> None:
        await self._write_fenced(
            "DELETE FROM sink_dead_letters WHERE id = ?",
            (dead_letter_id,),
            "sink_dead_letters.sink",
            f"of dead letter {dead_letter_id}",
            fence,
        )

    async def fail_dead_letter(
        self, dead_letter_id: int, error: str, attempts: int, *, fence: Fence | None = None
    ) -> None:
        await self._write_fenced(
            "UPDATE sink_dead_letters SET state = 'dead', error = ?, attempts = attempts + ?,"
            " updated_at = ? WHERE id = ?",
            (error, attempts, now_text(), dead_letter_id),
            "sink_dead_letters.sink",
            f"of dead letter {dead_letter_id}",
            fence,
        )

    async def drop_dead_letters(self, sink: str, ids: list[int] | None) -> int:
        return await self._change_dead_letters(
            "DELETE FROM sink_dead_letters WHERE sink = ?", [sink], ids
        )

    async def _change_dead_letters(self, sql: str, params: list[Any], ids: list[int] | None) -> int:
        if ids is not None:
            if not ids:
                return 0
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            params += ids
        return len(await self._transact(_fetch(sql + " RETURNING id", params)))

    # Replays ------------------------------------------------------------------

    async def add_replay(self, sink: str, after_seq: int, until_seq: int) -> ReplayJob:
        rows = await self._transact(
            _fetch(
                "INSERT INTO sink_replays (sink, after_seq, until_seq, created_at)"
                " VALUES (?, ?, ?, ?) RETURNING id",
                (sink, after_seq, until_seq, now_text()),
            )
        )
        return ReplayJob(int(rows[0][0]), sink, after_seq, until_seq)

    async def replays(self, sink: str) -> list[ReplayJob]:
        rows = await self._read(
            "SELECT id, sink, after_seq, until_seq FROM sink_replays WHERE sink = ? ORDER BY id",
            (sink,),
        )
        return [ReplayJob(int(row[0]), str(row[1]), int(row[2]), int(row[3])) for row in rows]

    async def advance_replay(
        self, job_id: int, after_seq: int, *, fence: Fence | None = None
    ) -> None:
        greatest = self.dialect.greatest
        move = f"UPDATE sink_replays SET after_seq = {greatest}(after_seq, ?) WHERE id = ?"  # noqa: S608

        def transaction() -> Transaction[None]:
            yield from self._fenced(
                move, (after_seq, job_id), "sink_replays.sink", f"of replay {job_id}", fence
            )
            yield Execute(
                "DELETE FROM sink_replays WHERE id = ? AND after_seq >= until_seq", (job_id,)
            )

        await self._transact(transaction())

    # Retry counts -------------------------------------------------------------

    async def retry_counts(self, sink: str) -> dict[int, RetryCount]:
        rows = await self._read(
            "SELECT seq, attempts, first_failure_us FROM sink_attempts WHERE sink = ?", (sink,)
        )
        return {int(seq): RetryCount(int(count), int(us) / 1e6) for seq, count, us in rows}

    async def save_retry_count(
        self, sink: str, seq: int, count: RetryCount, *, fence: Fence | None = None
    ) -> None:
        sql = (
            "INSERT INTO sink_attempts (sink, seq, attempts, first_failure_us)"
            " SELECT ?, ?, ?, ? WHERE 1 = 1"  # SQLite's upsert wants a WHERE
        )
        params: tuple[Any, ...] = (sink, seq, count.attempts, round(count.first_failure * 1e6))
        if fence is not None:
            sql += " AND " + self._held.format(sink="?")
            params += (sink, fence.owner, fence.token)
        sql += (
            " ON CONFLICT (sink, seq) DO UPDATE SET attempts = excluded.attempts,"
            " first_failure_us = excluded.first_failure_us RETURNING seq"
        )
        if not await self._transact(_fetch(sql, params)):
            raise _lost(sink, fence)

    async def forget_retry_count(self, sink: str, seq: int, *, fence: Fence | None = None) -> None:
        sql = "DELETE FROM sink_attempts WHERE sink = ? AND seq = ?"
        params: tuple[Any, ...] = (sink, seq)
        if fence is not None:
            sql += " AND " + self._held.format(sink="?")
            params += (sink, fence.owner, fence.token)
        await self._execute(sql, params)  # no row: nothing was kept, or a stale writer

    # Delivery attempts --------------------------------------------------------

    async def record_attempts(
        self, rows: Sequence[DeliveryAttempt], *, fence: Fence | None = None
    ) -> None:
        if not rows:
            return
        held = "SELECT 1 WHERE " + self._held.format(sink="?")

        def transaction() -> Transaction[None]:
            if fence is not None:  # checked first: the rows' insert returns nothing to count
                for sink in sorted({row.sink for row in rows}):
                    if not (yield Fetch(held, (sink, fence.owner, fence.token))):
                        raise _lost(sink, fence)
            yield ExecuteMany(INSERT_ATTEMPT, _attempt_rows(rows))

        await self._transact(transaction())

    async def delivery_attempts(self, event_ids: Sequence[str]) -> list[DeliveryAttempt]:
        select = f"SELECT id, {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE event_id"  # noqa: S608
        rows: Rows = []
        if self.dialect.arrays:
            if event_ids:
                rows = await self._read(f"{select} = any(?)", (list(event_ids),))
        else:
            for start in range(0, len(event_ids), IDS_PER_QUERY):
                chunk = list(event_ids[start : start + IDS_PER_QUERY])
                marks = ",".join("?" * len(chunk))
                rows += await self._read(f"{select} IN ({marks})", chunk)
        rows.sort(key=lambda row: (int(row[5]), int(row[0])))  # at, then id
        return [_delivery_attempt(row[1:]) for row in rows]

    # Plumbing -----------------------------------------------------------------

    def _fenced(
        self, sql: str, params: Sequence[Any], sink_column: str, what: str, fence: Fence | None
    ) -> Transaction[None]:
        """`sql` (an UPDATE or DELETE), only while `fence` holds; `LeaseLost` if it does not."""
        if fence is None:
            yield Execute(sql, params)
            return
        condition = self._held.format(sink=sink_column)
        extra = (what,) if sink_column == "?" else ()
        rows = yield Fetch(
            f"{sql} AND {condition} RETURNING 1", (*params, *extra, fence.owner, fence.token)
        )
        if not rows:
            raise _lost(what, fence)

    async def _write_fenced(
        self,
        sql: str,
        params: Sequence[Any],
        sink_column: str,
        what: str,
        fence: Fence | None,
    ) -> None:
        await self._transact(self._fenced(sql, params, sink_column, what, fence))

    async def _execute(self, sql: str, params: Sequence[Any]) -> None:
        await self._transact(_execute(sql, params))

    async def _transact(self, transaction: Transaction[Any]) -> Any:
        try:
            return await self.database.transact(transaction)
        except StoreUnavailable as error:
            raise SinkStateUnavailable(f"the sink state could not be written: {error}") from error

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        try:
            return await self.database.read(sql, params)
        except StoreUnavailable as error:
            raise SinkStateUnavailable(f"the sink state could not be read: {error}") from error


def _execute(sql: str, params: Sequence[Any]) -> Transaction[None]:
    yield Execute(sql, params)


def _fetch(sql: str, params: Sequence[Any]) -> Transaction[Rows]:
    return (yield Fetch(sql, params))


def _lost(what: str, fence: Fence | None) -> LeaseLost:
    token = fence.token if fence is not None else "-"
    return LeaseLost(f"sink {what}: lease {token} is no longer held; another worker delivers it")


def _optional_time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def _parse_optional(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def _state(row: tuple[Any, ...]) -> SinkState:
    return SinkState(
        sink=str(row[0]),
        after_seq=int(row[1]),
        paused=bool(row[2]),
        disabled_reason=row[3],
        last_error=row[4],
        last_error_at=_parse_optional(row[5]),
        last_delivered_at=_parse_optional(row[6]),
        delivered=int(row[7]),
        dead_letters=int(row[8]),
        replays_pending=int(row[9]),
        retries_pending=int(row[10]),
        lease_owner=row[11],
    )


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    dead_letter_id, sink, seq, doc, error, attempts, state, created_at, updated_at = row
    return DeadLetter(
        id=int(dead_letter_id),
        sink=str(sink),
        event=Event.from_json(bytes(doc)).with_seq(int(seq)),
        error=str(error),
        attempts=int(attempts),
        state=state,
        created_at=parse_time(created_at),
        updated_at=parse_time(updated_at),
    )


def _attempt_rows(attempts: Sequence[DeliveryAttempt]) -> list[tuple[Any, ...]]:
    """The rows to insert; the events of a batch share their attempt's time, converted once."""
    micros: dict[datetime, int] = {}
    rows = []
    for attempt in attempts:
        at_us = micros.get(attempt.at)
        if at_us is None:
            at_us = micros[attempt.at] = (attempt.at - EPOCH) // MICROSECOND
        rows.append(
            (
                attempt.sink,
                attempt.seq,
                attempt.event_id,
                attempt.attempt,
                at_us,
                attempt.outcome,
                attempt.duration_ms,
                attempt.answer,
            )
        )
    return rows


def _delivery_attempt(row: tuple[Any, ...]) -> DeliveryAttempt:
    sink, seq, event_id, attempt, at_us, outcome, duration_ms, answer = row
    return DeliveryAttempt(
        sink=str(sink),
        seq=int(seq),
        event_id=str(event_id),
        attempt=int(attempt),
        at=EPOCH + int(at_us) * MICROSECOND,
        outcome=outcome,
        duration_ms=None if duration_ms is None else float(duration_ms),
        answer=answer,
    )
