"""Server-side SVG charts: a line breaks where a period has no figure, texts are escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dlrhub.console.charts import line_chart

HOURS = [datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=index) for index in range(5)]


def test_a_line_breaks_where_there_is_no_figure_and_says_what_it_shows() -> None:
    svg = str(
        line_chart(
            "Rate <per hour>",
            "Delivered & settled",
            HOURS,
            [0.5, 1.0, None, 0.25, 0.75],
            top=1.0,
            label=lambda share: f"{share * 100:.0f} %",
        )
    )
    assert svg.count("<polyline") == 2  # hours 0-1, then 3-4
    assert svg.count("<circle") == 4
    assert "<title id=" in svg and "Rate &lt;per hour&gt;" in svg
    assert "<desc id=" in svg and "Delivered &amp; settled" in svg
    assert "2026-12-01 03:00 UTC: 25 %" in svg
    assert 'aria-labelledby="chart-rate--per-hour--t chart-rate--per-hour--d"' in svg


def test_a_lone_point_and_no_figure_at_all_draw_without_error() -> None:
    assert "<circle" in str(line_chart("One", "one point", HOURS[:1], [3.0]))
    assert "<circle" not in str(line_chart("None", "no figure", HOURS, [None] * 5))
