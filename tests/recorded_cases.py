"""Table-driven tests of the outbound normalizers: one recorded exchange per file.

Each file in `tests/data/<provider>/` holds `kind`, `method`, `content_type`,
`query` (the stored, redacted request), `body` (the answer as text), optional
`options` (`status_map`, `timezone`) and either `expected` (a list of subsets of
`Event.to_dict()`, one per event, compared recursively) or `error` (a piece of
the `NormalizeError` message). Adding a case is adding a file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from dlrhub.event import Event, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS

DATA = Path(__file__).resolve().parent / "data"
RECEIVED_AT = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def case_files(directory: str) -> list[Path]:
    return sorted((DATA / directory).glob("*.json"))


def raw_of(case: dict[str, Any], provider: str) -> RawCallback:
    return RawCallback(
        source="account-test",
        provider=provider,
        kind=case["kind"],
        method=case["method"],
        query=case["query"],
        content_type=case["content_type"],
        body=case["body"].encode("utf-8"),
        received_at=RECEIVED_AT,
    )


def load_case(path: Path) -> dict[str, Any]:
    case = orjson.loads(path.read_bytes())
    assert isinstance(case, dict)
    return case


def options_of(case: dict[str, Any]) -> SourceOptions:
    """The case's `options`: any `SourceOptions` field, statuses given by name."""
    given = dict(case.get("options") or {})
    if "status_map" in given:
        given["status_map"] = {key: Status(value) for key, value in given["status_map"].items()}
    return SourceOptions(**given)


def assert_subset(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} is missing from {actual!r}"
            assert_subset(value, actual[key], f"{where}.{key}")
    else:
        assert actual == expected, f"{where}: expected {expected!r}, got {actual!r}"


def check_case(path: Path, provider: str) -> list[Event]:
    case = orjson.loads(path.read_bytes())
    raw = raw_of(case, provider)
    normalize = PROVIDERS[provider].normalize
    if "error" in case:
        with pytest.raises(NormalizeError) as caught:
            normalize(raw, options_of(case))
        assert case["error"] in str(caught.value)
        return []
    events = normalize(raw, options_of(case))
    assert len(events) == len(case["expected"]), [event.to_dict() for event in events]
    for index, (event, expected) in enumerate(zip(events, case["expected"], strict=True)):
        data = event.to_dict()
        assert data["provider"] == provider
        assert data["source"] == "account-test"
        assert Event.from_json(event.to_json()) == event
        assert_subset(expected, data, f"{path.stem}[{index}]")
    assert len({event.id for event in events}) == len(events)
    assert events == normalize(raw, options_of(case)), "normalizers are pure"
    return events
