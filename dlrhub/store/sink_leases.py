"""Which worker delivers which sink: leases with fencing tokens, and the workers alive.

| table          | row                                  | written by                          |
|----------------|--------------------------------------|-------------------------------------|
| `sink_leases`  | sink, owner, token, expires_us       | acquire (token + 1), renew, release |
| `sink_workers` | owner, heartbeat_us                  | every round of each worker          |

Times are the database's clock (`Dialect.now_us`), the one clock every worker
shares, never a host's. A lease is taken when it is free, expired or already
the taker's, and every take adds one to its token, so a worker that lost it
holds a stale token: the sink state's fenced writes (`sink_state_sql.py`) then
match no row. Release sets `expires_us = 0`: another worker takes the sink at
its next round instead of after a whole lease. Rows are never deleted, so the
token only grows.
"""

from __future__ import annotations

from dlrhub.store.base import StoreUnavailable
from dlrhub.store.database import Database
from dlrhub.store.sink_state import SinkStateUnavailable
from dlrhub.store.sql_statements import Execute, Fetch, Rows, T, Transaction

FORGET_WORKERS_AFTER = 20  # leases; a worker row this old is deleted


class SinkLeases:
    """The lease statements of one worker (`owner`), on the sink state's database."""

    def __init__(self, database: Database, owner: str, lease_seconds: float) -> None:
        self.database = database
        self.owner = owner
        self.lease_us = round(lease_seconds * 1e6)
        self.now = database.dialect.now_us

    async def acquire(self, sink: str, *, force: bool = False) -> int | None:
        """The new token if the lease was free, expired or ours; None if another holds it.

        `force` takes it whoever holds it: only for a deliverer that knows it is the only
        one (SQLite's one-deliverer lock).
        """
        condition = (
            ""
            if force
            else f" WHERE sink_leases.expires_us <= {self.now}"
            " OR sink_leases.owner = excluded.owner"
        )
        rows = await self._transact(
            _fetch(
                "INSERT INTO sink_leases (sink, owner, token, expires_us)"  # noqa: S608
                f" VALUES (?, ?, 1, {self.now} + ?) ON CONFLICT (sink) DO UPDATE"
                " SET owner = excluded.owner, token = sink_leases.token + 1,"
                f" expires_us = excluded.expires_us{condition} RETURNING token",
                (sink, self.owner, self.lease_us),
            )
        )
        return int(rows[0][0]) if rows else None

    async def expired(self) -> set[str]:
        """Sinks whose holder stopped renewing (dead or cut off), not released ones."""
        try:
            rows = await self.database.read(
                f"SELECT sink FROM sink_leases WHERE expires_us > 0 AND expires_us <= {self.now}"  # noqa: S608
            )
        except StoreUnavailable as error:
            raise SinkStateUnavailable(f"the sink leases could not be read: {error}") from error
        return {str(row[0]) for row in rows}

    async def take_expired(self, sink: str) -> int | None:
        """The new token if the sink's lease expired (and was not released); else None."""
        rows = await self._transact(
            _fetch(
                f"UPDATE sink_leases SET owner = ?, token = token + 1, expires_us = {self.now} + ?"  # noqa: S608
                f" WHERE sink = ? AND expires_us > 0 AND expires_us <= {self.now} RETURNING token",
                (self.owner, self.lease_us, sink),
            )
        )
        return int(rows[0][0]) if rows else None

    async def renew(self, held: dict[str, int]) -> set[str]:
        """Extend the leases `held` (sink -> token); answer the sinks still ours."""

        def transaction() -> Transaction[set[str]]:
            kept = set()
            for sink, token in held.items():
                if (
                    yield Fetch(
                        f"UPDATE sink_leases SET expires_us = {self.now} + ?"  # noqa: S608
                        " WHERE sink = ? AND owner = ? AND token = ? RETURNING sink",
                        (self.lease_us, sink, self.owner, token),
                    )
                ):
                    kept.add(sink)
            return kept

        return await self._transact(transaction()) if held else set()

    async def release(self, sink: str, token: int) -> None:
        """Let the sink go now (only if the lease is still this token)."""
        await self._transact(
            _execute(
                "UPDATE sink_leases SET expires_us = 0 WHERE sink = ? AND owner = ? AND token = ?",
                (sink, self.owner, token),
            )
        )

    async def heartbeat(self) -> int:
        """Say this worker is alive; answer how many workers are (this one included)."""

        def transaction() -> Transaction[int]:
            yield Execute(
                "INSERT INTO sink_workers (owner, heartbeat_us)"  # noqa: S608
                f" VALUES (?, {self.now}) ON CONFLICT (owner) DO UPDATE"
                " SET heartbeat_us = excluded.heartbeat_us",
                (self.owner,),
            )
            yield Execute(
                f"DELETE FROM sink_workers WHERE heartbeat_us < {self.now} - ?",  # noqa: S608
                (self.lease_us * FORGET_WORKERS_AFTER,),
            )
            (row,) = yield Fetch(
                f"SELECT count(*) FROM sink_workers WHERE heartbeat_us > {self.now} - ?",  # noqa: S608
                (self.lease_us,),
            )
            return max(int(row[0]), 1)

        return await self._transact(transaction())

    async def leave(self) -> None:
        """This worker stops: the others need not count it any more."""
        await self._transact(_execute("DELETE FROM sink_workers WHERE owner = ?", (self.owner,)))

    async def _transact(self, transaction: Transaction[T]) -> T:
        try:
            return await self.database.transact(transaction)
        except StoreUnavailable as error:
            raise SinkStateUnavailable(f"the sink leases could not be written: {error}") from error


def _execute(sql: str, params: tuple[object, ...]) -> Transaction[None]:
    yield Execute(sql, params)


def _fetch(sql: str, params: tuple[object, ...]) -> Transaction[Rows]:
    return (yield Fetch(sql, params))
