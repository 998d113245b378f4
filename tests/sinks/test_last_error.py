"""`LastError`: an error that comes back after a delivery is recorded again at once,
so `sinks status` (error newer than the last delivery: failing) never shows a
failing sink as ok."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dlrhub.sinks.last_error import LastError
from dlrhub.sinks.reporting import SinkStats
from tests.sinks.conftest import sink_config


class RecordedErrors:
    def __init__(self) -> None:
        self.errors: list[str] = []

    async def record_error(self, sink: str, error: str, at: datetime) -> None:
        self.errors.append(error)


async def test_the_same_error_after_a_delivery_is_recorded_again(
    tmp_path: Path, store_toml: str
) -> None:
    config = sink_config(tmp_path, '[[sinks]]\nname = "print"\nkind = "stdout"\n', store=store_toml)
    state = RecordedErrors()
    last_error = LastError(config.sinks[0], state, SinkStats())  # type: ignore[arg-type]
    await last_error.record("answered 503")
    await last_error.record("answered 503")  # within 2 s: not written again
    assert state.errors == ["answered 503"]
    last_error.delivered()
    await last_error.record("answered 503")
    assert state.errors == ["answered 503", "answered 503"]
