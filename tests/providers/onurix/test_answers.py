"""Tests of `dlrhub.providers.onurix.answers`: recorded answers in `tests/data/onurix/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrhub.event import Status
from dlrhub.normalizers.exchange import status_key
from dlrhub.providers.onurix.answers import STATE_STATUSES
from tests.recorded_cases import case_files, check_case

CASES = case_files("onurix")


def test_recorded_answers_exist() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_recorded_answer(path: Path) -> None:
    check_case(path, "onurix")


def test_every_table_key_is_already_in_compared_form() -> None:
    for word in STATE_STATUSES:
        assert status_key(word) == word


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Entregado", Status.DELIVERED),
        ("  NO-ENTREGADO ", Status.UNDELIVERED),
        ("Buzón de voz", Status.DELIVERED),
        ("Enviada", Status.SENT),
    ],
)
def test_words_are_compared_without_case_accents_or_separators(word: str, status: Status) -> None:
    assert STATE_STATUSES[status_key(word)] is status
