"""Time-to-receipt histograms: percentiles within 4.9 %, merging is adding, any float fits."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from dlrhub.analytics.histogram import (
    FLOOR_MS,
    MAX_BUCKET,
    RELATIVE_ERROR,
    bucket_of,
    from_bytes,
    lower_bound,
    merge,
    pack,
    percentile,
    to_bytes,
    unpack,
)

THIRTY_DAYS_MS = 30 * 86_400_000
times = st.integers(0, THIRTY_DAYS_MS) | st.floats(0, THIRTY_DAYS_MS, allow_nan=False)
fractions = st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0]) | st.floats(0, 1)


def histogram_of(values: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[bucket_of(value)] = counts.get(bucket_of(value), 0) + 1
    return counts


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered) - 1e-9)) - 1]


@given(st.lists(times, min_size=1, max_size=200), fractions)
def test_a_percentile_is_within_the_relative_error_of_the_exact_nearest_rank(
    values: list[float], fraction: float
) -> None:
    found = percentile(histogram_of(values), fraction)
    exact = nearest_rank(values, fraction)
    assert found is not None
    if exact < FLOOR_MS:  # "at once": reported as 0
        assert found == 0
    else:
        assert abs(found - exact) <= exact * RELATIVE_ERROR * (1 + 1e-9)
    assert RELATIVE_ERROR < 0.049


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.5) is None
    assert percentile({3: 0}, 0.5) is None


@given(st.lists(st.lists(times, max_size=30), max_size=5))
def test_merging_histograms_is_the_histogram_of_the_concatenation(
    parts: list[list[float]],
) -> None:
    merged = merge(histogram_of(part) for part in parts)
    assert merged == histogram_of([value for part in parts for value in part])


@given(times, times)
def test_bucket_of_is_monotone(first: float, second: float) -> None:
    low, high = sorted((first, second))
    assert bucket_of(low) <= bucket_of(high)


@given(times.filter(lambda value: value >= FLOOR_MS))
def test_a_value_lies_within_its_bucket_bounds(value: float) -> None:
    bucket = bucket_of(value)
    assert lower_bound(bucket) <= value < lower_bound(bucket + 1)


@given(st.floats(allow_nan=True, allow_infinity=True))
@example(math.nan)
@example(math.inf)
@example(-math.inf)
@example(1e308)
@example(-0.0)
def test_any_float_has_a_bucket(value: float) -> None:
    """NaN and negative times (clock skew) count as "at once"; infinity as the last bucket."""
    bucket = bucket_of(value)
    assert 0 <= bucket <= MAX_BUCKET
    if math.isnan(value) or value < FLOOR_MS:
        assert bucket == 0
    if value == math.inf or value > 1e40:
        assert bucket == MAX_BUCKET


def test_thirty_days_fit_in_under_230_buckets() -> None:
    assert bucket_of(THIRTY_DAYS_MS) < 230


histograms = st.dictionaries(st.integers(0, MAX_BUCKET), st.integers(1, 2**40 - 1), max_size=60)


@given(histograms)
def test_a_packed_histogram_unpacks_to_itself(histogram: dict[int, int]) -> None:
    assert unpack(from_bytes(to_bytes(pack(histogram)))) == histogram


@given(st.lists(histograms, max_size=5))
def test_adding_packed_histograms_merges_them(parts: list[dict[int, int]]) -> None:
    small = [{bucket: count % 2**20 for bucket, count in part.items()} for part in parts]
    assert unpack(sum(pack(part) for part in small)) == merge(small)


@given(histograms, histograms)
def test_taking_a_packed_part_away_leaves_the_rest(
    rest: dict[int, int], part: dict[int, int]
) -> None:
    rest = {bucket: count % 2**39 for bucket, count in rest.items()}
    part = {bucket: count % 2**39 for bucket, count in part.items()}
    whole = merge([rest, part])
    assert unpack(pack(whole) - pack(part)) == {b: c for b, c in rest.items() if c}
