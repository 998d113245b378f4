"""360NRS events-report backfill: fills the gap callbacks left, never twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from dlrhub.app import create_app
from dlrhub.outbound.sending import Outbound
from dlrhub.providers.nrs360.backfill import backfill_sending
from dlrhub.providers.nrs360.fake import FakeNrs360
from dlrhub.store import EventFilter
from dlrhub.store.tracking_sql import open_tracking
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN
from tests.outbound.conftest import Stores, outbound_config
from tests.serving import serve_app


async def test_csv_backfill_fills_a_gap_without_duplicates(
    stores: Stores, nrs360: tuple[FakeNrs360, str]
) -> None:
    fake, base = nrs360
    account = {
        "name": "nrs",
        "provider": "360nrs",
        "base_url": f"{base}/api/rest",
        "username": fake.username,
        "password": fake.password,
        "sender": "SHOP",
        "source": "nrs360",
    }
    config = outbound_config(stores, [account])
    app = create_app(config)
    async with serve_app(app) as hub:
        fake.events_url = f"{hub}/hooks/nrs360/events?token={SOURCE_TOKEN}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=hub, headers=headers) as admin:
            to = ["34666555441", "34666555442", "34666555443"]
            sent = await admin.post("/v1/messages", json={"account": "nrs", "to": to, "text": "Hi"})
            assert sent.status_code == 200, sent.text
            ids = [message["message_id"] for message in sent.json()["messages"]]
            await fake.notify(ids[0], dlr=False)  # sent and delivered arrive
            await fake.notify(ids[1], events=("sent",), dlr=False)  # delivered is lost
            # ids[2]: the receiver was down, nothing arrived
            store = app.state.store
            tracking = open_tracking(config.store, config.data_dir)
            await tracking.open()
            outbound = Outbound(config, store, tracking)
            sending_id = str(fake.messages[ids[0]].sending_id)
            now = datetime.now(UTC)
            window = (now - timedelta(hours=1), now + timedelta(hours=1))
            first = await backfill_sending(outbound, "nrs", sending_id, *window)
            again = await backfill_sending(outbound, "nrs", sending_id, *window)
            await outbound.aclose()
            await tracking.close()

            counts: Counter[tuple[str, str]] = Counter()
            for message_id in ids:
                for event in await store.events(
                    EventFilter(provider="nrs360", message_id=message_id, limit=100)
                ):
                    counts[(message_id, event.provider_status or "")] += 1
    assert (first.rows, first.stored, first.known) == (6, 3, 3)
    assert (again.rows, again.stored, again.known) == (6, 0, 6)
    for message_id in ids:
        assert counts[(message_id, "sent")] == 1, counts
        assert counts[(message_id, "delivered")] == 1, counts
        assert counts[(message_id, "accepted")] == 1, counts
