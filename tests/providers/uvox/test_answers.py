"""Tests of `dlrhub.providers.uvox.answers`: recorded answers in `tests/data/uvox/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrhub.providers.uvox.answers import answer_code
from tests.recorded_cases import case_files, check_case

CASES = case_files("uvox")


def test_recorded_answers_exist() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_recorded_answer(path: Path) -> None:
    check_case(path, "uvox")


def test_codes_keep_their_leading_zeros() -> None:
    assert answer_code({"code": 5}) == "005"
    assert answer_code({"code": "13"}) == "013"
    assert answer_code({"code": "500"}) == "500"
    assert answer_code({"code": True}) is None
    assert answer_code([]) is None
