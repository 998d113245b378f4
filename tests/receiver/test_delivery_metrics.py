"""`/metrics` shows each provider's delivery rate and time to receipt, from the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from dlrhub.analytics.histogram import bucket_of
from dlrhub.config import Config
from dlrhub.event import Event, EventType, Status
from dlrhub.receiver.delivery_metrics import cumulative_buckets
from dlrhub.store import Accept
from dlrhub.store.settings import open_store
from tests.conftest import run_app
from tests.payloads import raw

NOW = datetime.now(UTC)
# provider, message, submitted this long ago, final status, seconds to it
MESSAGES = [
    ("nrs360", "m1", timedelta(minutes=20), Status.DELIVERED, 3),
    ("nrs360", "m2", timedelta(minutes=20), Status.FAILED, 40),
    ("nrs360", "m3", timedelta(minutes=20), None, 0),  # pending
    ("nrs360", "m4", timedelta(hours=10), Status.DELIVERED, 100),
    ("onurix", "o1", timedelta(hours=10), Status.DELIVERED, 2_000),
    ("onurix", "o2", timedelta(hours=30), Status.FAILED, 5),  # before the 24 h window
]


def event(provider: str, message: str, status: Status, at: datetime) -> Event:
    return Event(
        id=f"{message}-{status.value}",
        source="nrs360",
        provider=provider,
        type=EventType.MESSAGE_STATUS,
        received_at=at,
        message_id=message,
        status=status,
        occurred_at=at,
    )


async def write_messages(config: Config) -> None:
    store = open_store(config.store, config.data_dir, place=config.number_places())
    await store.open()
    try:
        for provider, message, ago, final, seconds in MESSAGES:
            events = [event(provider, message, Status.ACCEPTED, NOW - ago)]
            if final is not None:
                events.append(
                    event(provider, message, final, NOW - ago + timedelta(seconds=seconds))
                )
            callback = raw(message, received_at=NOW, provider=provider)
            assert (await store.write(Accept(callback, events))).outcome == "stored"
    finally:
        await store.close()


async def test_metrics_show_delivery_rate_and_time_to_receipt_per_provider(
    config: Config,
) -> None:
    await write_messages(config)
    async with run_app(config, ingest_worker=False) as running:
        page = (await running.client.get("/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name.startswith(("dlrhub_delivery", "dlrhub_time_to_receipt"))
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("dlrhub_delivery_rate", provider="nrs360", window="1h") == 0.5
    assert value("dlrhub_delivery_rate", provider="nrs360", window="24h") == 2 / 3
    assert value("dlrhub_delivery_rate", provider="onurix", window="24h") == 1.0
    assert value("dlrhub_delivery_rate", provider="onurix", window="1h") is None  # none settled
    assert value("dlrhub_delivery_messages", provider="nrs360", window="1h", status="pending") == 1
    assert value("dlrhub_delivery_messages", provider="nrs360", window="24h", status="failed") == 1
    assert value("dlrhub_delivery_messages", provider="onurix", window="24h", status="failed") == 0

    def le(provider: str) -> list[float | None]:
        return [
            value("dlrhub_time_to_receipt_seconds_bucket", provider=provider, le=bound)
            for bound in ("1.0", "5.0", "10.0", "30.0", "60.0", "300.0", "1800.0", "3600.0", "+Inf")
        ]

    assert le("nrs360") == [0, 1, 1, 1, 2, 3, 3, 3, 3]  # 3 s, 40 s, 100 s
    assert le("onurix") == [0, 0, 0, 0, 0, 0, 0, 1, 1]  # 2000 s; the 30 h old one is out
    assert value("dlrhub_time_to_receipt_seconds_count", provider="nrs360") == 3
    assert value("dlrhub_time_to_receipt_seconds_sum", provider="nrs360") == 143.0


def test_log_buckets_fall_under_the_first_le_at_or_above_their_middle() -> None:
    latency = {bucket_of(0): 2, bucket_of(900): 1, bucket_of(55_000): 1, bucket_of(10**9): 1}
    assert cumulative_buckets(latency) == [
        ("1.0", 3.0),
        ("5.0", 3.0),
        ("10.0", 3.0),
        ("30.0", 3.0),
        ("60.0", 4.0),
        ("300.0", 4.0),
        ("600.0", 4.0),
        ("1800.0", 4.0),
        ("3600.0", 4.0),
        ("+Inf", 5.0),
    ]
