"""Tests of `dlrhub.providers.nrs360.answers`, on answers in `tests/data/nrs360_reports/`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dlrhub.event import Status
from dlrhub.providers import PROVIDERS
from dlrhub.providers.nrs360.answers import report_row_csv, report_rows
from tests.recorded_cases import DATA, case_files, check_case, options_of, raw_of

CASES = case_files("nrs360_reports")


def test_recorded_answers_exist() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_recorded_answer(path: Path) -> None:
    check_case(path, "nrs360")


def test_a_row_written_alone_reads_back_the_same() -> None:
    body = (
        'event,phone,createdAt,campaignName\ndelivered,34666555444,2024-12-02 10:15:00,"A, ""b"""\n'
    )
    (row,) = report_rows(body.encode())
    assert row["campaignName"] == 'A, "b"'
    assert report_rows(report_row_csv(row)) == [row]


def test_callbacks_still_reach_the_callback_normalizer() -> None:
    case = orjson.loads((DATA / "nrs360" / "dlr_kannel_1.json").read_bytes())
    (event,) = PROVIDERS["nrs360"].normalize(raw_of(case, "nrs360"), options_of(case))
    assert event.status is Status.DELIVERED
