"""`jsonl` sink: append one JSON event per line to a file, fsynced before the cursor moves.

| key            | default    | meaning                                                   |
|----------------|------------|-----------------------------------------------------------|
| `path`         | (required) | the file written to, created 0600 (its directory 0700)    |
| `rotate_bytes` | 0          | rotate before a write would take the file past this size  |
| `rotate_daily` | false      | rotate when the UTC day changes                           |

Rotation renames the file to `<stem>.<UTC time of rotation><suffix>`
(`events.20261120T101500123456.jsonl`) and starts a new one; readers tail
`path` and pick up rotated files by name. A write that crashed half-way left
an unacknowledged partial line: it is cut off when the file is next opened, and
the events are written again (so a line may repeat, never be torn).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

from dlrhub.event import Event
from dlrhub.private_files import open_private_append
from dlrhub.settings_schema import Check, Required
from dlrhub.sinks.base import DeliveryFailed, Sink, SinkKind

if TYPE_CHECKING:
    from dlrhub.sinks.settings import SinkConfig


@dataclass(frozen=True, slots=True)
class JsonlOptions:
    path: Annotated[Path, Required("is required for a jsonl sink")]
    rotate_bytes: Annotated[
        int, Check(lambda size: None if size >= 0 else "must be 0 (never) or more")
    ] = 0
    rotate_daily: bool = False

    def secrets(self) -> tuple[str, ...]:
        return ()


class JsonlSink:
    def __init__(self, config: SinkConfig) -> None:
        options = config.options
        assert isinstance(options, JsonlOptions)
        self.options = options
        self._file: IO[bytes] | None = None
        self._size = 0
        self._day: date | None = None
        self._lock = asyncio.Lock()  # lanes (max_in_flight > 1) take turns at the file

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    async def deliver(self, batch: Sequence[Event]) -> None:
        data = b"".join(event.to_json() + b"\n" for event in batch)
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, data)
        except OSError as error:
            await asyncio.to_thread(self._close)
            raise DeliveryFailed(
                f"cannot append to {self.options.path}: {error.strerror or error}"
            ) from None

    # Blocking part, run in a thread ----------------------------------------------

    def _append(self, data: bytes) -> None:
        file = self._file or self._open()
        today = datetime.now(UTC).date()
        too_big = 0 < self.options.rotate_bytes < self._size + len(data)
        new_day = self.options.rotate_daily and self._day is not None and today != self._day
        if self._size > 0 and (too_big or new_day):
            self._rotate()
            file = self._open()
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
        self._size += len(data)

    def _open(self) -> IO[bytes]:
        path = self.options.path
        file = os.fdopen(open_private_append(path), "a+b")
        self._cut_partial_line(file)
        file.seek(0, os.SEEK_END)
        self._size = file.tell()
        stamp = os.fstat(file.fileno()).st_mtime if self._size else None
        now = datetime.now(UTC)
        self._day = datetime.fromtimestamp(stamp, UTC).date() if stamp else now.date()
        self._file = file
        return file

    @staticmethod
    def _cut_partial_line(file: IO[bytes]) -> None:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        position = size
        chunk = 4096
        while position > 0:
            start = max(position - chunk, 0)
            file.seek(start)
            block = file.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                if end != size:
                    file.truncate(end)
                    os.fsync(file.fileno())
                return
            position = start
        file.truncate(0)
        os.fsync(file.fileno())

    def _rotate(self) -> None:
        self._close()
        path = self.options.path
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        os.replace(path, path.with_name(f"{path.stem}.{stamp}{path.suffix}"))
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def create(config: SinkConfig) -> Sink:
    return JsonlSink(config)


KIND = SinkKind(
    name="jsonl",
    options=JsonlOptions,
    create=create,
    batch_size=500,
    max_in_flight=1,
)
