"""One log line per status request of the poller: account, messages, outcome, duration."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dlrhub.outbound.poller import Poller
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.providers.onurix.fake import FakeOnurix
from tests.outbound.conftest import Clock, Stores, outbound_config
from tests.outbound.test_poller import onurix_account


async def test_each_poll_logs_one_line_with_its_account_messages_and_outcome(
    onurix: tuple[FakeOnurix, str],
    stores: Stores,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, base = onurix
    config = outbound_config(
        tmp_path, [onurix_account(fake, base)], first_interval="10s", max_interval="1h"
    )
    clock = Clock()
    messages = [fake.add_message("573150123456") for _ in range(2)]
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    await outbound.track("onx", [TrackRequest(message.id) for message in messages])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    caplog.set_level(logging.INFO, logger="dlrhub.outbound.poller")
    try:
        row = await stores.tracking.find("onx", messages[0].id)
        assert row is not None and row.next_poll_at is not None
        clock.moment = row.next_poll_at
        assert await poller.run_once() == 2
    finally:
        await poller.close()
        await outbound.aclose()
    polls = [record for record in caplog.records if record.getMessage().startswith("poll of")]
    requests = len(fake.requests_to("/api/v1/messages-state"))
    assert len(polls) == requests >= 1
    fields = [
        (record.__dict__["account"], record.__dict__["outcome"], record.levelname)
        for record in polls
    ]
    assert fields == [("onx", "answered", "INFO")] * requests
    assert sum(record.__dict__["messages"] for record in polls) == 2
    assert all(record.__dict__["duration_ms"] >= 0 for record in polls)
