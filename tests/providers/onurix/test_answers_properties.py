"""Properties of `dlrhub.providers.onurix.answers`: any answer gives events or `NormalizeError`."""

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

KEYS = ["id", "status", "state", "data", "phone", "credits", "error", "msg", "dispatch_id"]
PARAMS = ["phone", "id", "dlrhub_refs", "dlrhub_channel", "client", "key"]


@settings(max_examples=400, deadline=None)
@given(
    raw=raw_callbacks("onurix", ["send", "poll"], queries(PARAMS), bodies(KEYS)),
    given_options=options,
)
def test_any_answer_gives_events_or_a_normalize_error(
    raw: RawCallback, given_options: SourceOptions
) -> None:
    check_events_or_error("onurix", raw, given_options)
