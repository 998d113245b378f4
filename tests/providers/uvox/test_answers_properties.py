"""Properties of `dlrhub.providers.uvox.answers`: any answer gives events or `NormalizeError`."""

from __future__ import annotations

from hypothesis import given, settings

from dlrhub.event import RawCallback
from dlrhub.normalizers.base import SourceOptions
from tests.normalizer_strategies import (
    bodies,
    check_events_or_error,
    options,
    queries,
    raw_callbacks,
)

KEYS = ["code", "status", "id", "to", "statusmessage", "resultstring", "version"]
PARAMS = ["messageId", "to", "from", "dlrhub_refs", "apikey"]


@settings(max_examples=400, deadline=None)
@given(
    raw=raw_callbacks("uvox", ["send", "poll"], queries(PARAMS), bodies(KEYS)),
    given_options=options,
)
def test_any_answer_gives_events_or_a_normalize_error(
    raw: RawCallback, given_options: SourceOptions
) -> None:
    check_events_or_error("uvox", raw, given_options)
