"""Tests of `dlrhub.providers.conectaline.answers` on recorded answers (tests/data/conectaline/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.recorded_cases import case_files, check_case

CASES = case_files("conectaline")


def test_recorded_answers_exist() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_recorded_answer(path: Path) -> None:
    check_case(path, "conectaline")
