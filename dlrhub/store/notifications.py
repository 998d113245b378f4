"""Hearing about changes at once: PostgreSQL `LISTEN` on a connection of its own.

Every commit that stores events notifies `dlrhub_events` (`dlrhub/store/postgres.py`),
so a sink worker that listens starts delivering at once rather than at its next
look at the table; adding tracked rows notifies `dlrhub_tracking`
(`dlrhub/store/tracking_sql.py`), which wakes pollers. The listening connection
carries nothing else. When it is down the listener falls back to its slow poll
and `listening` is False; it reconnects after a pause, and hears `None` (wake
everything) on connecting, since notifications sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from dlrhub.redact import redact_dsn
from dlrhub.store.postgres import CONNECT_TIMEOUT_SECONDS, EVENTS_CHANNEL, PostgresBackend

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 2.0
CHECK_SECONDS = 5.0  # how often a quiet connection is checked


class Notifications:
    """Calls `heard(payload)` for each notification on `channel`, and `heard(None)` on
    each (re)connection, for as long as `listen()` runs."""

    def __init__(self, dsn: str, channel: str, heard: Callable[[str | None], None]) -> None:
        self.dsn = dsn
        self.channel = channel
        self.heard = heard
        self.listening = False

    async def listen(self) -> None:
        """Listen until cancelled, reconnecting after a failure."""
        while True:
            try:
                await self._listen_once()
            except PostgresBackend.errors as error:
                if self.listening:
                    log.warning(
                        "lost the LISTEN %s connection to %s (%s); polling slowly until it is back",
                        self.channel,
                        redact_dsn(self.dsn),
                        error,
                    )
            finally:
                self.listening = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": "dlrhub-listen"},
        )
        closed = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: closed.set())
            await connection.add_listener(self.channel, self._notified)
            self.listening = True
            self.heard(None)  # what was committed while nobody listened
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), CHECK_SECONDS)
                if not closed.is_set():
                    await connection.fetchval("SELECT 1", timeout=CHECK_SECONDS)
            raise ConnectionError("the connection closed")
        finally:
            connection.terminate()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        self.heard(str(payload))


class EventNotifications(Notifications):
    """Calls `on_events(last_seq)` for each commit that stored events (0: not known)."""

    def __init__(self, dsn: str, on_events: Callable[[int], None]) -> None:
        def heard(payload: str | None) -> None:
            on_events(int(payload) if payload is not None and payload.isdigit() else 0)

        super().__init__(dsn, EVENTS_CHANNEL, heard)
