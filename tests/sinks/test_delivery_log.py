"""The sink's line per delivery attempt: its outcome, level and the events' request ids."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from tests.sinks.conftest import harness, ingest, make_events
from tests.sinks.test_engine import FakeSink, config_for, run_until


async def test_each_attempt_logs_its_outcome_with_the_events_request_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, batch_size=1)
    events = [
        msgspec.structs.replace(event, extra={**event.extra, "request_id": f"req-{number}"})
        for number, event in enumerate(make_events(3))
    ]
    poisoned = events[1]
    caplog.set_level(logging.DEBUG, logger="dlrhub.sinks.engine")
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(poison={poisoned.id})
        running = await run_until(h, sink, lambda: len(sink.delivered) == 2 and sink.calls == 2 + 3)
        assert running.runners[0].stats.failed_attempts == 3
    lines = [
        (record.levelname, record.__dict__["outcome"], record.__dict__["attempt"], record)
        for record in caplog.records
        if "outcome" in record.__dict__
    ]
    about_poisoned = [line[:3] for line in lines if line[3].__dict__["event_id"] == poisoned.id]
    assert about_poisoned == [
        ("WARNING", "retrying", 1),
        ("WARNING", "retrying", 2),
        ("WARNING", "given_up", 3),
    ]
    delivered = [line[3] for line in lines if line[1] == "delivered"]
    assert [record.levelname for record in delivered] == ["DEBUG", "DEBUG"]
    assert [record.__dict__["request_id"] for record in delivered] == ["req-0", "req-2"]
    failed = next(line[3] for line in lines if line[1] == "given_up")
    assert failed.__dict__["request_ids"] == ["req-1"]
    assert failed.__dict__["error"] == "answered 500"
    assert "req-1" in failed.getMessage() and "answered 500" in failed.getMessage()
