"""Who may read `GET /v1/analytics/delivery`, and the 400s for wrong parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dlrhub.analytics.figures import DeliveryQuery
from dlrhub.app import create_app
from dlrhub.cli import main
from dlrhub.config import load_config
from dlrhub.event import parse_time
from dlrhub.receiver.analytics_api import previous_key
from tests.analytics.recorded_day import ADMIN_TOKEN, VIEWER_TOKEN, write_config
from tests.serving import serve_app

PATH = "/v1/analytics/delivery"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_config(write_config(tmp_path, "sqlite", None), env={}))
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_viewer_reads_a_stranger_does_not(client: httpx.AsyncClient) -> None:
    answer = await client.get(PATH, headers=bearer(VIEWER_TOKEN))
    assert answer.status_code == 200
    report = answer.json()
    assert report["groups"] == [] and report["total"]["messages"] == 0
    assert report["total"]["delivery_rate"] is None  # nothing settled: no rate, not 0
    answer = await client.get(PATH)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert (await client.get(PATH, headers=bearer("not-a-token"))).status_code == 401


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"from": "yesterday"}, "from must be an RFC 3339 time"),
        ({"to": "2026-13-01T00:00:00Z"}, "to must be an RFC 3339 time"),
        ({"from": "-999999d"}, "from must be an RFC 3339 time"),  # before year 1
        ({"group_by": "provider,city"}, "group_by: 'city' is not one of provider"),
        ({"group_by": "provider,provider"}, "group_by names a breakdown twice"),
        ({"bucket": "week"}, "bucket must be hour or day, not 'week'"),
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "from must be before"),
        ({"from": "-800d"}, "the range is at most 400 days"),
        ({"from": "-40d", "bucket": "hour"}, "bucket=hour covers at most 31 days"),
        ({"city": "Bogota"}, "unknown parameter 'city'"),
        ({"format": "xml"}, "format must be json or csv, not 'xml'"),
        ({"compare": "last_year"}, "compare must be previous"),
    ],
)
async def test_a_wrong_parameter_is_a_400_saying_which(
    client: httpx.AsyncClient, params: dict[str, str], reason: str
) -> None:
    answer = await client.get(PATH, params=params, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request"
    assert reason in answer.json()["detail"]


async def test_offsets_and_the_default_range(client: httpx.AsyncClient) -> None:
    answer = await client.get(PATH, headers=bearer(ADMIN_TOKEN))
    start, end = (parse_time(answer.json()[name]) for name in ("from", "to"))
    # The last 24 hours, as the whole hours that hold them (24, or 25 unless now is :00).
    assert end - start in (timedelta(hours=24), timedelta(hours=25))
    assert start.minute == start.second == 0 and start <= datetime.now(UTC) - timedelta(hours=24)
    offsets = {"from": "-90m", "to": "-30m"}
    answer = await client.get(PATH, params=offsets, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 200


def test_a_period_compares_with_the_one_a_range_earlier() -> None:
    day, hour = 86_400_000_000, 3_600_000_000
    nov_26 = 1_795_651_200_000_000  # 2026-11-26T00:00:00Z
    by_day = DeliveryQuery(nov_26 - 9 * hour, nov_26 + 7 * day - 8 * hour, bucket="day")
    # -7d at 15:20 is 7 days and an hour of whole hours: days move back 7 days.
    assert previous_key(by_day, (nov_26, "onurix"), 7 * day + hour) == (nov_26 - 7 * day, "onurix")
    by_hour = DeliveryQuery(nov_26, nov_26 + 3 * hour, bucket="hour")
    assert previous_key(by_hour, (nov_26 + hour,), 3 * hour) == (nov_26 - 2 * hour,)
    assert previous_key(DeliveryQuery(nov_26, nov_26 + day), (None, "CO"), day) == (None, "CO")


def test_the_cli_says_what_is_wrong_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, "sqlite", None))
    assert main(["analytics", "--config", config, "--from", "yesterday"]) == 2
    assert capsys.readouterr().err == (
        "dlrhub: from must be an RFC 3339 time (2026-11-30T00:00:00Z) or an offset such as"
        " -24h, -7d or -90m, not 'yesterday'\n"
    )
    assert main(["analytics", "--config", config, "--filter", "city=Cali"]) == 2
    assert "--filter 'city=Cali': write NAME=VALUES" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["analytics", "--config", config, "--bucket", "week"])
    assert exited.value.code == 2
    assert "invalid choice: 'week'" in capsys.readouterr().err
    assert main(["analytics", "--config", config, "--from", "-7d"]) == 1  # no store yet
    assert "no store at" in capsys.readouterr().err
