"""`GET /v1/analytics/delivery` and `dlrhub analytics` on a recorded day, on both backends.

The expected figures are worked out by hand from tests/data/analytics/day.jsonl
(its `note`s say what each line is), with the measures of docs/analytics.md:
a message counts in the hour it was submitted (its first event, or its send),
time to receipt runs to its final status. Percentiles are compared within the
histogram's 4.9 %.

The day, 2026-11-20, message by message (seconds to the receipt):

| message | provider   | country/operator | hour | final       | s     |
|---------|------------|------------------|------|-------------|-------|
| N7      | nrs360     | ""/""            | 08   | delivered   | 28800 | late receipt, 16:00
| N1      | nrs360     | ""/""            | 09   | delivered   | 4     | + a click
| N2      | nrs360     | ""/""            | 09   | delivered   | 30    | receipt posted twice
| K1      | smsgateway | ES/Vodafone      | 09   | delivered   | 12    | number without +
| K2      | smsgateway | ES/Vodafone      | 09   | undelivered | 60    | "2", err 001
| N3      | nrs360     | ""/""            | 10   | delivered   | 0     | receipt before sent
| O1      | onurix     | CO/Movistar      | 10   | delivered   | 60    | poll answer twice
| D1      | nrs360     | ES/Vodafone      | 10   | delivered   | 5     | 360NRS DLRs
| N4      | nrs360     | ""/""            | 11   | undelivered | 120   |
| O2      | onurix     | CO/""            | 11   | undelivered | 300   | "No entregado"
| N5      | nrs360     | ""/"" (mailing)  | 12   | delivered   | 2     | + an open
| U1      | uvox       | US/""            | 12   | (pending)   |       | sent by dlrhub
| N6      | nrs360     | ""/""            | 13   | (pending)   |       | never settles
| N8      | nrs360     | ""/""            | 14   | rejected    | 1     |
| K3      | smsgateway | ES/Vodafone      | 15   | expired     | 600   | "34", err 000
| J1      | smsgateway | ""/""            | 16   | undelivered | 0     | Jasmin: UNDELIV, err 045
| N9      | nrs360     | ""/""            | 23   | delivered   | 10800 | receipt on the 21st

The day before: P1 delivered (10 s), P2 undelivered (60 s); the day after: X1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dlrhub.event import parse_time
from tests.analytics.recorded_day import DAY, Day, recorded_day

RELATIVE_ERROR = 0.049  # the histogram's (dlrhub/analytics/histogram.py)

# The whole day: 17 messages, 15 settled.
TOTAL = {
    "messages": 17,
    "delivered": 9,
    "undelivered": 4,
    "failed": 0,
    "rejected": 1,
    "expired": 1,
    "pending": 2,
    "delivery_rate": 0.6,  # 9 / 15
    "delivery_rate_of_submitted": round(9 / 17, 6),
}
# Sorted: 0 0 1 2 4 5 12 30 60 60 120 300 600 10800 28800; nearest rank of 15.
TOTAL_TIMES = {
    "p50": 30.0,  # rank 8
    "p90": 10800.0,  # rank 14
    "p99": 28800.0,  # rank 15
    "mean": round(40794 / 15, 4),
    "within_5s": 0.4,  # 6 / 15
    "within_60s": round(10 / 15, 6),
    "within_600s": round(13 / 15, 6),
}
REASONS = [  # count 1 each: ordered by (status, provider status, code)
    {"status": "expired", "provider_status": "34", "error_code": "000", "count": 1},
    {"status": "rejected", "provider_status": "rejected", "error_code": "", "count": 1},
    {"status": "undelivered", "provider_status": "2", "error_code": "001", "count": 1},
    {"status": "undelivered", "provider_status": "No entregado", "error_code": "", "count": 1},
    {"status": "undelivered", "provider_status": "UNDELIV", "error_code": "045", "count": 1},
    {"status": "undelivered", "provider_status": "undelivered", "error_code": "", "count": 1},
]
BY_PROVIDER = {
    # provider: messages, delivered, undelivered, rejected, expired, pending, p50, p90, mean
    "nrs360": (10, 7, 1, 1, 0, 1, 5.0, 28800.0, 39762 / 9),
    "onurix": (2, 1, 1, 0, 0, 0, 60.0, 300.0, 180.0),
    "smsgateway": (4, 1, 2, 0, 1, 0, 12.0, 600.0, 168.0),  # 0 12 60 600
    "uvox": (1, 0, 0, 0, 0, 1, None, None, None),
}
BY_HOUR = {  # cohort hour: messages, delivered, pending
    "2026-11-20T08:00:00Z": (1, 1, 0),
    "2026-11-20T09:00:00Z": (4, 3, 0),
    "2026-11-20T10:00:00Z": (3, 3, 0),
    "2026-11-20T11:00:00Z": (2, 0, 0),
    "2026-11-20T12:00:00Z": (2, 1, 1),
    "2026-11-20T13:00:00Z": (1, 0, 1),
    "2026-11-20T14:00:00Z": (1, 0, 0),
    "2026-11-20T15:00:00Z": (1, 0, 0),
    "2026-11-20T16:00:00Z": (1, 0, 0),
    "2026-11-20T23:00:00Z": (1, 1, 0),
}


def documented_output(command: str) -> str:
    """What docs/analytics.md shows `command` printing (the recorded day)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text("utf-8")
    shown = page.split(f"$ {command}\n", 1)[1]
    return shown.split("```", 1)[0]


def close(actual: float | None, expected: float | None) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return abs(actual - expected) <= RELATIVE_ERROR * expected


def check_times(times: dict[str, Any], expected: dict[str, float]) -> None:
    for name in ("p50", "p90", "p99"):
        assert close(times[name], expected[name]), (name, times[name], expected[name])
    for name in ("mean", "within_5s", "within_60s", "within_600s"):
        assert times[name] == expected[name], (name, times[name], expected[name])


@pytest.fixture(params=["sqlite", "postgres"], scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def day(tmp_path: Path, backend: str) -> AsyncIterator[Day]:
    async with recorded_day(tmp_path, backend) as day:
        yield day


async def delivery(day: Day, **params: str) -> Any:
    answer = await day.admin.get("/v1/analytics/delivery", params={**DAY, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_the_recorded_day_as_the_api_and_the_cli_answer_it(day: Day) -> None:
    # Duplicates are stored once: N2's receipt posted twice, O1's poll answer given twice.
    assert day.outcomes.count("duplicate") == 2, day.outcomes

    report = await delivery(day)
    assert report["from"] == "2026-11-20T00:00:00Z" and report["to"] == "2026-11-21T00:00:00Z"
    assert report["group_by"] == [] and report["bucket"] is None
    total = report["total"]
    assert {name: total[name] for name in TOTAL} == TOTAL
    check_times(total["time_to_receipt"], TOTAL_TIMES)
    assert total["failure_reasons"] == REASONS
    assert total["engagement"] == {"clicked": 1, "opened": 1}
    assert [group["messages"] for group in report["groups"]] == [17]
    assert report["groups"][0]["period"] is None

    by_provider = await delivery(day, group_by="provider")
    assert [group["provider"] for group in by_provider["groups"]] == list(BY_PROVIDER)
    for group in by_provider["groups"]:
        messages, delivered, undelivered, rejected, expired, pending, p50, p90, mean = BY_PROVIDER[
            group["provider"]
        ]
        assert (group["messages"], group["delivered"], group["undelivered"]) == (
            messages,
            delivered,
            undelivered,
        )
        counts = (group["rejected"], group["expired"], group["pending"])
        assert counts == (rejected, expired, pending)
        settled = messages - pending
        assert group["delivery_rate"] == (round(delivered / settled, 6) if settled else None)
        times = group["time_to_receipt"]
        assert close(times["p50"], p50) and close(times["p90"], p90)
        assert times["mean"] == (None if mean is None else round(mean, 4))
    assert by_provider["groups"][0]["engagement"] == {"clicked": 1, "opened": 1}
    assert by_provider["total"] == total

    # The CSV: the same groups as flat columns.
    answer = await day.admin.get(
        "/v1/analytics/delivery", params={**DAY, "group_by": "provider", "format": "csv"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="delivery-20261120T0000Z-20261121T0000Z.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == [
        "period", "provider", "messages", "delivered", "undelivered", "failed", "rejected",
        "expired", "pending", "delivery_rate", "delivery_rate_of_submitted", "p50_s", "p90_s",
        "p99_s", "mean_s", "within_5s", "within_60s", "within_600s",
    ]  # fmt: skip
    assert [(row["provider"], row["messages"], row["delivered"]) for row in rows] == [
        (name, str(values[0]), str(values[1])) for name, values in BY_PROVIDER.items()
    ]
    nrs360 = rows[0]
    assert nrs360["period"] == "" and nrs360["delivery_rate"] == str(round(7 / 9, 6))
    assert close(float(nrs360["p50_s"]), 5.0) and nrs360["within_600s"] == str(round(7 / 9, 6))
    assert rows[3]["p50_s"] == "" and rows[3]["delivery_rate"] == ""  # uvox: nothing settled

    # The CLI reads the store itself and prints the same figures.
    code, out, err = await day.cli(
        "analytics", "--from", DAY["from"], "--to", DAY["to"], "--group-by", "provider"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["provider", "messages", "delivered", "undelivered"]
    cells = {line.split()[0]: line.split() for line in lines[1:6]}
    assert cells["nrs360"][1:8] == ["10", "7", "1", "0", "1", "0", "1"]
    assert cells["nrs360"][8] == "77.8%"  # delivered of settled
    assert cells["uvox"][8] == "-"
    assert cells["total"][1:9] == ["17", "9", "4", "0", "1", "1", "2", "60.0%"]
    assert "1 undelivered: 2 (error 001)" in out and "1 expired: 34 (error 000)" in out
    assert "1 undelivered: UNDELIV (error 045)" in out
    assert "1 clicked" in out and "1 opened" in out
    assert out == documented_output(
        f"dlrhub analytics --from {DAY['from']} --to {DAY['to']} --group-by provider"
    ), "docs/analytics.md shows this day's table: update it"
    code, out, err = await day.cli(
        "analytics", "--from", DAY["from"], "--to", DAY["to"], "--format", "json"
    )
    assert code == 0, err
    assert httpx.Response(200, content=out).json()["total"] == total
    code, out, err = await day.cli(
        "analytics", "--from", DAY["from"], "--to", DAY["to"], "--group-by", "provider",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0, err
    assert list(csv.DictReader(io.StringIO(out))) == rows


async def test_late_receipts_count_in_their_submission_hour(day: Day) -> None:
    report = await delivery(day, bucket="hour")
    periods = {group["period"]: group for group in report["groups"]}
    assert list(periods) == list(BY_HOUR)
    for period, (messages, delivered, pending) in BY_HOUR.items():
        group = periods[period]
        assert (group["messages"], group["delivered"], group["pending"]) == (
            messages,
            delivered,
            pending,
        )
    # N7, submitted at 08:00, delivered at 16:00; N9 at 23:00, delivered the next day.
    assert close(periods["2026-11-20T08:00:00Z"]["time_to_receipt"]["p50"], 28800.0)
    assert close(periods["2026-11-20T23:00:00Z"]["time_to_receipt"]["p50"], 10800.0)
    # N3: the receipt came first, so it is the submission: 0 s. With D1 (5 s), O1 (60 s).
    ten = periods["2026-11-20T10:00:00Z"]["time_to_receipt"]
    assert close(ten["p50"], 5.0) and ten["within_5s"] == round(2 / 3, 6)
    assert ten["mean"] == round(65 / 3, 4)
    assert periods["2026-11-20T09:00:00Z"]["engagement"] == {"clicked": 1}
    assert periods["2026-11-20T12:00:00Z"]["engagement"] == {"opened": 1}

    days = await delivery(day, bucket="day", **{"from": "2026-11-19T00:00:00Z", "to": "-1h"})
    assert [(g["period"], g["messages"]) for g in days["groups"]] == [
        ("2026-11-19T00:00:00Z", 2),
        ("2026-11-20T00:00:00Z", 17),
        ("2026-11-21T00:00:00Z", 1),
    ]


async def test_breakdowns_by_country_and_operator_and_filters(day: Day) -> None:
    report = await delivery(day, group_by="country,operator")
    groups = {(g["country"], g["operator"]): g["messages"] for g in report["groups"]}
    # "" is unknown: 360NRS events and Jasmin's receipt carry no number; O2's and U1's
    # ranges name no operator.
    assert groups == {
        ("", ""): 10,
        ("CO", ""): 1,
        ("CO", "Movistar"): 1,
        ("ES", "Vodafone"): 4,
        ("US", ""): 1,
    }
    # No engagement by country: it is kept by provider, source and channel only.
    assert all(group["engagement"] == {} for group in report["groups"])

    colombia = await delivery(day, country="CO")
    assert (colombia["total"]["messages"], colombia["total"]["delivered"]) == (2, 1)
    assert colombia["total"]["failure_reasons"] == [
        {"status": "undelivered", "provider_status": "No entregado", "error_code": "", "count": 1}
    ]
    assert colombia["filters"] == {"country": ["CO"]}
    unknown = await delivery(day, country="")
    assert unknown["total"]["messages"] == 10
    spain_or_us = await delivery(day, country="ES,US", group_by="channel")
    assert [(g["channel"], g["messages"]) for g in spain_or_us["groups"]] == [("sms", 5)]
    mailing = await delivery(day, channel="mailing")
    assert mailing["total"]["messages"] == 1 and mailing["total"]["engagement"] == {"opened": 1}


async def test_compare_with_the_previous_day(day: Day) -> None:
    report = await delivery(day, group_by="provider", compare="previous")
    assert report["previous"] == {"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z"}
    previous = report["total"]["previous"]
    assert (previous["messages"], previous["delivered"], previous["undelivered"]) == (2, 1, 1)
    assert previous["delivery_rate"] == 0.5
    assert report["total"]["delta"] == {"delivery_rate": 10.0}  # 60 % against 50 %
    nrs360, onurix = report["groups"][0], report["groups"][1]
    assert nrs360["previous"]["messages"] == 2
    assert nrs360["delta"] == {"delivery_rate": round((round(7 / 9, 6) - 0.5) * 100, 4)}
    assert onurix["previous"]["messages"] == 0 and onurix["delta"] == {"delivery_rate": None}

    hours = await delivery(day, bucket="hour", compare="previous")
    nine = next(g for g in hours["groups"] if g["period"] == "2026-11-20T09:00:00Z")
    assert nine["previous"]["messages"] == 1 and nine["previous"]["delivered"] == 1  # P1

    answer = await day.admin.get(
        "/v1/analytics/delivery",
        params={**DAY, "group_by": "provider", "compare": "previous", "format": "csv"},
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0]["previous_messages"] == "2" and rows[0]["previous_delivery_rate"] == "0.5"
    code, out, err = await day.cli(
        "analytics", "--from", DAY["from"], "--to", DAY["to"], "--compare"
    )
    assert code == 0, err
    total = next(line.split() for line in out.splitlines() if line.startswith("total"))
    assert total[-3:] == ["2", "50.0%", "+10.0pt"]


async def test_rebuild_gives_the_same_figures(day: Day) -> None:
    before = await delivery(day, group_by="provider,country", bucket="hour")
    code, out, err = await day.cli("analytics", "rebuild")
    assert code == 0, err
    # 42 lines, two of them duplicates; 20 messages over the three days.
    assert out.splitlines()[-1] == "rebuilt all days: 40 events read, 20 messages"
    assert await delivery(day, group_by="provider,country", bucket="hour") == before
    code, out, err = await day.cli("analytics", "--from", "-7d")  # 2026-11-25 on: nothing
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == ["total", "0"]


async def test_a_filter_value_with_a_nul_matches_nothing(day: Day) -> None:
    answer = await day.admin.get("/v1/analytics/delivery", params={**DAY, "provider": "a\x00b"})
    assert answer.status_code == 200, answer.text  # no provider is called that: no groups
    assert answer.json()["groups"] == [] and answer.json()["total"]["messages"] == 0


async def test_the_same_figures_when_an_ingest_worker_commits_the_callbacks(
    tmp_path: Path, backend: str
) -> None:
    """`dlrhub serve` commits callbacks in a worker process: its store places numbers with
    the same `[analytics]` regions."""
    async with recorded_day(tmp_path, backend, ingest_worker=True) as day:
        assert day.outcomes.count("duplicate") == 2, day.outcomes
        report = await delivery(day, group_by="country")
        assert {name: report["total"][name] for name in TOTAL} == TOTAL
        check_times(report["total"]["time_to_receipt"], TOTAL_TIMES)
        countries = {group["country"]: group["messages"] for group in report["groups"]}
        assert countries == {"": 10, "CO": 2, "ES": 4, "US": 1}


async def test_figures_outlive_pruned_events_and_rebuild_keeps_them(day: Day) -> None:
    """The poll answers were received on the 20th, the callbacks today: `[retention]
    events = "7d"` prunes the answers' events, never the figures; a rebuild then
    recomputes only from the first whole day whose events are all kept (tomorrow)."""
    before = await delivery(day, group_by="provider", bucket="hour")
    text = day.config_path.read_text("utf-8")
    day.config_path.write_text(text + '\n[retention]\nevents = "7d"\n', "utf-8")
    code, out, err = await day.cli("prune")
    assert code == 0, err
    remaining = await day.admin.get("/v1/events", params={"source": "onurix-co"})
    assert remaining.json()["events"] == []
    assert await delivery(day, group_by="provider", bucket="hour") == before
    code, out, err = await day.cli("analytics", "rebuild")
    assert code == 0, err
    oldest = (await day.admin.get("/v1/events", params={"limit": "1"})).json()["events"][0]
    tomorrow = (parse_time(oldest["received_at"]) + timedelta(days=1)).date().isoformat()
    # 42 lines - 7 answers - 1 duplicate callback = 34 callback events, all of older cohorts.
    assert out.splitlines()[-1] == f"rebuilt days from {tomorrow}: 34 events read, 0 messages"
    assert await delivery(day, group_by="provider", bucket="hour") == before
