"""Property tests of `dlrhub.providers.conectaline.answers`: events or `NormalizeError`, always."""

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

KEYS = ["data", "error", "message", "number"]
PARAMS = ["numbers", "messages", "dlrhub_refs", "api_token"]


@settings(max_examples=300, deadline=None)
@given(
    raw=raw_callbacks("conectaline", ["send"], queries(PARAMS), bodies(KEYS)), given_options=options
)
def test_any_answer_gives_events_or_a_normalize_error(
    raw: RawCallback, given_options: SourceOptions
) -> None:
    check_events_or_error("conectaline", raw, given_options)
