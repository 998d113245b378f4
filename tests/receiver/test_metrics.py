"""The per-request metrics, kept in plain Python, read as prometheus_client's did."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dlrhub.receiver.metrics import (
    CALLBACKS,
    CALLBACKS_HELP,
    CALLBACKS_LABELS,
    INGEST,
    INGEST_BUCKETS,
    INGEST_HELP,
    Metrics,
)

KINDS = ("events", "dlr", "progress")


def lines(metrics: Metrics) -> list[str]:
    return generate_latest(metrics.registry).decode().splitlines()


def without_created(text: str) -> list[str]:
    """The exposition less the `_created` families, which `Metrics` no longer has."""
    kept, skipping = [], False
    for line in text.splitlines():
        if line.startswith("# HELP "):
            skipping = line.split()[2].endswith("_created")
        if not skipping:
            kept.append(line)
    return kept


def test_callbacks_are_counted_by_source_kind_and_outcome() -> None:
    metrics = Metrics()
    metrics.count_callback("nrs360", "events", "stored")
    metrics.count_callback("", "dlr", "unknown_source")
    metrics.count_callback("nrs360", "events", "stored")
    text = lines(metrics)
    assert text[:4] == [
        f"# HELP dlrhub_callbacks_total {CALLBACKS_HELP}",
        "# TYPE dlrhub_callbacks_total counter",
        'dlrhub_callbacks_total{kind="events",outcome="stored",source="nrs360"} 2.0',
        'dlrhub_callbacks_total{kind="dlr",outcome="unknown_source",source=""} 1.0',
    ]
    assert not [line for line in text if "dlrhub_callbacks_created" in line]


def test_ingest_times_fill_cumulative_buckets_with_inclusive_bounds() -> None:
    metrics = Metrics()
    for seconds in (0.0025, 0.003, 0.0025, 7.0):  # 0.0025 is a bound: it counts in `le="0.0025"`
        metrics.observe_ingest("events", seconds)
    text = [line for line in lines(metrics) if line.startswith("dlrhub_ingest_seconds")]
    expected = {
        "0.001": 0,
        "0.0025": 2,
        "0.005": 3,
        "0.01": 3,
        "0.025": 3,
        "0.05": 3,
        "0.1": 3,
        "0.25": 3,
        "0.5": 3,
        "1.0": 3,
        "2.5": 3,
        "+Inf": 4,
    }
    assert text == [
        *(
            f'dlrhub_ingest_seconds_bucket{{kind="events",le="{le}"}} {n}.0'
            for le, n in expected.items()
        ),
        'dlrhub_ingest_seconds_count{kind="events"} 4.0',
        f'dlrhub_ingest_seconds_sum{{kind="events"}} {0.0025 + 0.003 + 0.0025 + 7.0}',
    ]
    assert f"# HELP dlrhub_ingest_seconds {INGEST_HELP}" in lines(metrics)
    assert "# TYPE dlrhub_ingest_seconds histogram" in lines(metrics)


def test_expected_kinds_show_as_zero_series_from_the_start() -> None:
    metrics = Metrics()
    metrics.expect_ingest_kinds(KINDS)
    counts = [line for line in lines(metrics) if line.startswith("dlrhub_ingest_seconds_count")]
    assert counts == [f'dlrhub_ingest_seconds_count{{kind="{kind}"}} 0.0' for kind in KINDS]


seconds = (
    st.sampled_from(INGEST_BUCKETS)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(0, 3)
)
callbacks = st.tuples(st.sampled_from(["nrs360", "", "uvox"]), st.sampled_from(KINDS), st.text())


@given(
    st.lists(
        st.tuples(st.just("count"), callbacks) | st.tuples(st.sampled_from(KINDS), seconds),
        max_size=30,
    )
)
@example([("dlr", math.nan), ("dlr", 0.001), ("events", math.inf), ("events", -1.0)])
def test_exposition_is_the_one_prometheus_client_gives(
    calls: list[tuple[str, tuple[str, str, str] | float]],
) -> None:
    registry = CollectorRegistry()
    counter = Counter(CALLBACKS, CALLBACKS_HELP, CALLBACKS_LABELS, registry=registry)
    histogram = Histogram(INGEST, INGEST_HELP, ["kind"], buckets=INGEST_BUCKETS, registry=registry)
    metrics = Metrics()
    for name, argument in calls:
        if isinstance(argument, tuple):
            counter.labels(*argument).inc()
            metrics.count_callback(*argument)
        else:
            histogram.labels(name).observe(argument)
            metrics.observe_ingest(name, argument)
    ours = generate_latest(metrics.registry).decode()
    theirs = without_created(generate_latest(registry).decode())
    assert without_created(ours)[: len(theirs)] == theirs


def test_the_names_are_taken_in_the_registry() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter(CALLBACKS, "again", registry=metrics.registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram(INGEST, "again", registry=metrics.registry)
