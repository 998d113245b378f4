"""Alerts' state, written once for SQLite and PostgreSQL over `dlrhub/store/database.py`.

| table           | row                                                    | written by          |
|-----------------|--------------------------------------------------------|---------------------|
| `alerts`        | one episode of a rule's group: open, then resolved;    | the evaluator       |
|                 | value when opened and last seen, threshold, messages,  |                     |
|                 | which of its transitions reached the event log         |                     |
| `alert_samples` | a measured count (quarantine, dead letters) at a time, | the evaluator       |
|                 | for "growing over the window"                          |                     |
| `alert_leases`  | the one evaluator: owner, token, expiry                | acquire, release    |

At most one open episode per (rule, group): a unique index on the open rows, so two
evaluators that both thought they held the lease still open it once. The lease is
timed by the database's clock (`Dialect.now_us`); a change of owner adds one to its
token, and `apply` writes only while its token is the lease's (`AlertLeaseLost`),
reading the lease row `FOR SHARE` on PostgreSQL so a takeover waits for it.

`notified` says which transitions' events are in the log (0: none, 1: the opening's,
2: the resolution's too): the evaluator writes the event after the state commits and
retries those not yet written, under the same dedupe key, at its next pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from dlrhub.event import epoch_micros, format_time
from dlrhub.store.database import Database
from dlrhub.store.sql_statements import Execute, Fetch, Rows, Transaction

LEASE = "evaluator"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = (
    "id, rule, kind, group_key, state, opened_us, resolved_us, value, last_value, threshold,"
    " message, resolve_message, notified"
)
AlertState = Literal["open", "resolved"]
NOTIFIED_OPEN = 1
NOTIFIED_RESOLVED = 2


class AlertLeaseLost(Exception):
    """Another evaluator took the lease: this one's writes were not made."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One episode of an alert: opened when its rule's condition held for its group."""

    id: int
    rule: str
    kind: str
    group: str  # "" for a rule without groups, else "provider=nrs360,country=ES"
    state: AlertState
    opened_at: datetime
    resolved_at: datetime | None
    value: float | None  # when opened
    last_value: float | None  # at the last evaluation while open, or at resolution
    threshold: float | None
    message: str
    resolve_message: str | None
    notified: int

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "group": self.group,
            "state": self.state,
            "opened_at": format_time(self.opened_at),
            "resolved_at": format_time(self.resolved_at) if self.resolved_at else None,
            "value": self.value,
            "last_value": self.last_value,
            "threshold": self.threshold,
            "message": self.message,
            "resolve_message": self.resolve_message,
        }


@dataclass(frozen=True, slots=True)
class Opening:
    rule: str
    kind: str
    group: str
    value: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True, slots=True)
class Resolution:
    alert_id: int
    value: float | None
    message: str


@dataclass(frozen=True, slots=True)
class Changes:
    """What one evaluation found: alerts to open, to resolve, and open ones' new values."""

    openings: Sequence[Opening] = ()
    resolutions: Sequence[Resolution] = ()
    values: Sequence[tuple[int, float | None]] = ()  # (alert id, value now)


class SQLAlerts:
    """The alerts' tables on a `Database`; it opens and closes the database it is given."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.now = database.dialect.now_us
        self._share = " FOR SHARE" if database.dialect.name == "postgres" else ""

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()

    # The lease ------------------------------------------------------------------

    async def acquire(self, owner: str, lease_seconds: float) -> int | None:
        """The lease's token if it was free, expired or `owner`'s; None if another holds it."""
        rows = await self.database.transact(
            _fetch(
                "INSERT INTO alert_leases (name, owner, token, expires_us)"  # noqa: S608
                f" VALUES (?, ?, 1, {self.now} + ?) ON CONFLICT (name) DO UPDATE"
                " SET token = CASE WHEN alert_leases.owner = excluded.owner"
                " THEN alert_leases.token ELSE alert_leases.token + 1 END,"
                " owner = excluded.owner, expires_us = excluded.expires_us"
                f" WHERE alert_leases.expires_us <= {self.now}"
                " OR alert_leases.owner = excluded.owner RETURNING token",
                (LEASE, owner, round(lease_seconds * 1e6)),
            )
        )
        return int(rows[0][0]) if rows else None

    async def release(self, owner: str, token: int) -> None:
        """Let another evaluator take over at once (a stopping process)."""

        def transaction() -> Transaction[None]:
            yield Execute(
                "UPDATE alert_leases SET expires_us = 0 WHERE name = ? AND owner = ? AND token = ?",
                (LEASE, owner, token),
            )

        await self.database.transact(transaction())

    # Episodes -------------------------------------------------------------------

    async def open_alerts(self) -> list[AlertRecord]:
        rows = await self.database.read(
            f"SELECT {COLUMNS} FROM alerts WHERE state = 'open' ORDER BY id"  # noqa: S608
        )
        return [_record(row) for row in rows]

    async def apply(
        self, owner: str, token: int, now: datetime, changes: Changes
    ) -> list[AlertRecord]:
        """Write `changes` while `owner` holds the lease with `token`; answer the episodes
        opened or resolved. Raises `AlertLeaseLost` (nothing written) if it does not."""
        at = epoch_micros(now)

        def transaction() -> Transaction[list[AlertRecord] | None]:
            held = yield Fetch(
                "SELECT token FROM alert_leases"  # noqa: S608
                f" WHERE name = ? AND owner = ? AND token = ?{self._share}",
                (LEASE, owner, token),
            )
            if not held:
                return None
            changed: list[AlertRecord] = []
            for alert_id, value in changes.values:
                yield Execute(
                    "UPDATE alerts SET last_value = ? WHERE id = ? AND state = 'open'",
                    (value, alert_id),
                )
            for resolution in changes.resolutions:
                rows = yield Fetch(
                    "UPDATE alerts SET state = 'resolved', resolved_us = ?, last_value = ?,"  # noqa: S608
                    " resolve_message = ? WHERE id = ? AND state = 'open'"
                    f" RETURNING {COLUMNS}",
                    (at, resolution.value, resolution.message, resolution.alert_id),
                )
                changed += [_record(row) for row in rows]
            for opening in changes.openings:
                rows = yield Fetch(
                    "INSERT INTO alerts (rule, kind, group_key, state, opened_us, value,"  # noqa: S608
                    " last_value, threshold, message) VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)"
                    " ON CONFLICT (rule, group_key) WHERE state = 'open' DO NOTHING"
                    f" RETURNING {COLUMNS}",
                    (
                        opening.rule,
                        opening.kind,
                        opening.group,
                        at,
                        opening.value,
                        opening.value,
                        opening.threshold,
                        opening.message,
                    ),
                )
                changed += [_record(row) for row in rows]
            return changed

        changed = await self.database.transact(transaction())
        if changed is None:
            raise AlertLeaseLost("another evaluator holds the alerts' lease")
        return changed

    async def unnotified(self) -> list[AlertRecord]:
        """Episodes with a transition whose event is not in the log yet, oldest first."""
        rows = await self.database.read(
            f"SELECT {COLUMNS} FROM alerts WHERE (state = 'open' AND notified < ?)"  # noqa: S608
            " OR (state = 'resolved' AND notified < ?) ORDER BY id",
            (NOTIFIED_OPEN, NOTIFIED_RESOLVED),
        )
        return [_record(row) for row in rows]

    async def mark_notified(self, alert_id: int, level: int) -> None:
        def transaction() -> Transaction[None]:
            yield Execute(
                "UPDATE alerts SET notified = ? WHERE id = ? AND notified < ?",
                (level, alert_id, level),
            )

        await self.database.transact(transaction())

    async def alerts(self, state: AlertState | None = None, limit: int = 100) -> list[AlertRecord]:
        """Open episodes first (newest first), then resolved ones (last resolved first)."""
        where = "" if state is None else "WHERE state = ?"
        params: list[Any] = [] if state is None else [state]
        rows = await self.database.read(
            f"SELECT {COLUMNS} FROM alerts {where}"  # noqa: S608
            " ORDER BY CASE WHEN state = 'open' THEN 0 ELSE 1 END,"
            " coalesce(resolved_us, opened_us) DESC, id DESC LIMIT ?",
            [*params, limit],
        )
        return [_record(row) for row in rows]

    # Samples ----------------------------------------------------------------------

    async def sample(
        self, rule: str, group: str, now: datetime, value: int, window_seconds: float
    ) -> int:
        """Keep `value` as measured at `now`; answer the value at the window's start: the
        last sample at or before it, else the first kept. Samples older than two windows go.
        """
        at = epoch_micros(now)
        start = at - round(window_seconds * 1e6)

        def transaction() -> Transaction[int]:
            yield Execute(
                "INSERT INTO alert_samples (rule, group_key, at_us, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (rule, group_key, at_us) DO UPDATE SET value = excluded.value",
                (rule, group, at, value),
            )
            yield Execute(
                "DELETE FROM alert_samples WHERE rule = ? AND group_key = ? AND at_us < ?"
                " AND at_us < (SELECT max(at_us) FROM alert_samples"
                " WHERE rule = ? AND group_key = ? AND at_us <= ?)",
                (rule, group, start - round(window_seconds * 1e6), rule, group, start),
            )
            rows = yield Fetch(
                "SELECT value FROM alert_samples WHERE rule = ? AND group_key = ?"
                " AND at_us <= ? ORDER BY at_us DESC LIMIT 1",
                (rule, group, start),
            )
            if not rows:
                rows = yield Fetch(
                    "SELECT value FROM alert_samples WHERE rule = ? AND group_key = ?"
                    " ORDER BY at_us LIMIT 1",
                    (rule, group),
                )
            return int(rows[0][0])

        return await self.database.transact(transaction())


def _record(row: Sequence[Any]) -> AlertRecord:
    (
        alert_id,
        rule,
        kind,
        group,
        state,
        opened_us,
        resolved_us,
        value,
        last_value,
        threshold,
        message,
        resolve_message,
        notified,
    ) = row
    return AlertRecord(
        id=int(alert_id),
        rule=str(rule),
        kind=str(kind),
        group=str(group),
        state="open" if state == "open" else "resolved",
        opened_at=_time(int(opened_us)),
        resolved_at=None if resolved_us is None else _time(int(resolved_us)),
        value=_number(value),
        last_value=_number(last_value),
        threshold=_number(threshold),
        message=str(message),
        resolve_message=None if resolve_message is None else str(resolve_message),
        notified=int(notified),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _time(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _fetch(sql: str, params: tuple[object, ...]) -> Transaction[Rows]:
    return (yield Fetch(sql, params))
