"""Charts drawn on the server as SVG: no chart library, nothing for the CSP to block.

A stacked bar per minute (callbacks by outcome) and a line of one value per hour or
day (the Analytics page's delivery rate and time to receipt). Colours come from console.css by
class (`series-<name>`), so the SVG carries no style. The same figures are in a
table beside the chart for screen readers and for copying.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 200
LEFT = 40  # room for the y-axis labels
BOTTOM = 22  # room for the x-axis labels


def stacked_bars(
    title: str,
    minutes: Sequence[datetime],
    series: Mapping[str, Sequence[int]],
) -> Markup:
    """An SVG of one stacked bar per minute; `series` maps a name to a count per minute."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(minutes))]
    top = max([*totals, 1])
    plot_width = WIDTH - LEFT - 4
    plot_height = HEIGHT - BOTTOM - 6
    step = plot_width / max(len(minutes), 1)
    bar = max(step * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{6 + plot_height}" x2="{WIDTH - 4}" '
        f'y2="{6 + plot_height}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="12" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{6 + plot_height}" text-anchor="end">0</text>',
    ]
    for index, minute in enumerate(minutes):
        x = LEFT + index * step + (step - bar) / 2
        base = float(6 + plot_height)
        for name, values in series.items():
            count = values[index]
            if count <= 0:
                continue
            height = count / top * plot_height
            base -= height
            label = f"{minute:%H:%M} UTC: {count} {name}"
            parts.append(
                f'<rect class="series-{escape(name)}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}"><title>{escape(label)}</title></rect>'
            )
        if index % max(len(minutes) // 6, 1) == 0:
            parts.append(
                f'<text class="tick" x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{minute:%H:%M}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text above is escaped)


def line_chart(
    title: str,
    description: str,
    periods: Sequence[datetime],
    values: Sequence[float | None],
    *,
    top: float | None = None,
    label: Callable[[float], str] = str,
    period_format: str = "%Y-%m-%d %H:%M",
) -> Markup:
    """An SVG line of one value per period (None: no figure, the line breaks there).

    `top` fixes the y-axis (1.0 for a rate); otherwise it is the largest value.
    The SVG carries a title and a description for screen readers; the page puts the
    same figures in a table beside it.
    """
    top = top if top is not None else max([v for v in values if v is not None] or [0.0])
    top = top or 1.0
    plot_width = WIDTH - LEFT - 10
    plot_height = HEIGHT - BOTTOM - 6
    step = plot_width / max(len(periods) - 1, 1)
    base = 6 + plot_height
    identity = "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())[:60]
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{identity}-t {identity}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{identity}-t">{escape(title)}</title>',
        f'<desc id="{identity}-d">{escape(description)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH - 4}" y2="{base}"/>',
        f'<line class="grid" x1="{LEFT}" y1="6" x2="{WIDTH - 4}" y2="6"/>',
        f'<text class="tick" x="{LEFT - 6}" y="12" text-anchor="end">{escape(label(top))}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{base}" text-anchor="end">{escape(label(0))}</text>',
    ]
    runs: list[list[str]] = [[]]
    for index, (period, value) in enumerate(zip(periods, values, strict=True)):
        x = LEFT + 4 + index * step
        if value is None:
            runs.append([])
        else:
            y = base - min(value, top) / top * plot_height
            runs[-1].append(f"{x:.1f},{y:.1f}")
            text = f"{period:{period_format}} UTC: {label(value)}"
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(text)}</title></circle>"
            )
        if index % max(len(periods) // 6, 1) == 0:
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{period:{period_format}}</text>'
            )
    for run in runs:
        if len(run) > 1:
            parts.append(f'<polyline class="line" points="{" ".join(run)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text above is escaped)
