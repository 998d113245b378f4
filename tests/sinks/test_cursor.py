"""The watermark: the cursor moves only over a finished prefix of the page."""

from __future__ import annotations

from dlrhub.sinks.cursor import Watermark
from tests.sinks.conftest import make_events


def test_the_watermark_moves_only_over_a_finished_prefix() -> None:
    events = [event.with_seq(seq) for seq, event in enumerate(make_events(5), start=11)]
    matching = [events[0], events[2], events[4]]  # seqs 11, 13, 15; the others filtered out
    watermark = Watermark(matching, page_end=16)
    assert watermark.value == 10
    watermark.finish(13)
    assert watermark.value == 10
    watermark.finish(11)
    assert watermark.value == 14
    watermark.finish(15)
    assert watermark.value == 16  # the page's end, past the filtered-out tail


def test_a_page_without_matching_events_is_finished_at_once() -> None:
    assert Watermark([], page_end=42).value == 42
