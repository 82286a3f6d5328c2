"""Inline SVG for the dashboard page: a probability bar and a daily history (a milestone's or a
program's), drawn on the server (no JavaScript, nothing to build)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Protocol

from markupsafe import Markup

BAND_COLOURS = ("#2e7d32", "#f9a825", "#c62828", "#6a1b9a")  # low, medium, high, any further band


class Daily(Protocol):
    """A day of a history: a milestone's (``live.records.HistoryPoint``) or a program's
    (``live.records.ProgramHistoryPoint``)."""

    @property
    def as_of(self) -> datetime: ...

    @property
    def probability(self) -> float | None: ...


def band_colour(band: str | None, bands: dict[str, float]) -> str:
    order = sorted(bands, key=bands.__getitem__)
    return BAND_COLOURS[min(order.index(band), len(BAND_COLOURS) - 1)] if band in order else "#9e9e9e"


def bar(probability: float | None, band: str | None, bands: dict[str, float], width: int = 120) -> Markup:
    """A horizontal bar as long as the probability, in its band's colour."""
    if probability is None:
        return Markup(f'<svg width="{width}" height="12" role="img" aria-label="no forecast"></svg>')
    filled = round(probability * width)
    return Markup(f'<svg width="{width}" height="12" role="img" aria-label="{probability:.0%}">'
                  f'<rect width="{width}" height="12" fill="#eeeeee"/>'
                  f'<rect width="{filled}" height="12" fill="{band_colour(band, bands)}"/></svg>')


def history_chart(points: Sequence[Daily], bands: dict[str, float], width: int = 640, height: int = 220) -> Markup:
    """The probability of slipping day by day (a line; gaps where there was no forecast) and the
    band boundaries as dashed lines."""
    pad_left, pad, inner_w, inner_h = 40, 20, width - 100, height - 50
    days = [p.as_of for p in points]
    if not days:
        return Markup("")
    start, span = days[0], max((days[-1] - days[0]).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return pad_left + inner_w * (t - start).total_seconds() / span

    def y(p: float) -> float:
        return pad + inner_h * (1 - p)

    parts = [f'<svg id="history-chart" width="{width}" height="{height}" role="img" '
             f'aria-label="slip probability by day" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{pad_left}" y="{pad}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#cccccc"/>']
    for name, low in sorted(bands.items(), key=lambda kv: kv[1]):
        if 0 < low < 1:
            parts.append(f'<line x1="{pad_left}" x2="{pad_left + inner_w}" y1="{y(low):.1f}" y2="{y(low):.1f}" '
                         f'stroke="{band_colour(name, bands)}" stroke-dasharray="4 3"/>'
                         f'<text x="{pad_left + inner_w + 3}" y="{y(low) + 4:.1f}" font-size="10">{escape(name)}</text>')
    for p in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{pad_left - 6}" y="{y(p) + 4:.1f}" font-size="10" text-anchor="end">{p:.0%}</text>')
    runs: list[list[str]] = [[]]
    for point in points:
        if point.probability is None:
            runs.append([])
        else:
            runs[-1].append(f"{x(point.as_of):.1f},{y(point.probability):.1f}")
    for run in runs:
        if run:
            parts.append(f'<polyline class="history-line" points="{" ".join(run)}" fill="none" stroke="#1565c0" '
                         'stroke-width="2"/>')
    parts.append(f'<text x="{pad_left}" y="{height - 8}" font-size="10">{days[0]:%Y-%m-%d}</text>'
                 f'<text x="{pad_left + inner_w}" y="{height - 8}" font-size="10" text-anchor="end">'
                 f'{days[-1]:%Y-%m-%d}</text></svg>')
    return Markup("".join(parts))
