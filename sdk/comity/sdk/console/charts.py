"""Charts as inline SVG, drawn on the server (no script, no external files), each with its numbers.

A :class:`Chart` is the picture and the same numbers as a table: the page shows the SVG (with a
``<title>`` and a ``<desc>`` that a screen reader announces) and, under it, the table for whoever
cannot see or read the picture. Every label is escaped here, so the SVG may be inserted into a page
as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

__all__ = ["SERIES_COLOURS", "Chart", "Span", "bars_by_day", "horizontal_bars", "timeline"]

#: Colours per series, chosen to stay distinguishable for the common colour-vision deficiencies.
SERIES_COLOURS: Mapping[str, str] = {
    "allowed": "#1b7837",
    "refused": "#b2182b",
    "disclosed": "#2166ac",
    "not completed": "#e08214",
    "refused by the node": "#762a83",
    "confirmed": "#1b7837",
    "rejected": "#b2182b",
    "pending": "#e08214",
    "overdue": "#b2182b",
    "count": "#4d4d4d",
}


@dataclass(frozen=True)
class Chart:
    """One chart: the SVG, and its numbers as table rows under ``header``."""

    ident: str
    title: str
    summary: str
    svg: str
    header: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


def _ident(title: str) -> str:
    return "chart-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40]


def _legend(series: Sequence[str], y: int) -> str:
    parts, x = [], 0
    for name in series:
        colour = SERIES_COLOURS.get(name, "#4d4d4d")
        parts.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y + 9}" font-size="11">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return "".join(parts)


def _totals(values: Sequence[Mapping[str, int]], series: Sequence[str]) -> str:
    sums = {s: sum(v.get(s, 0) for v in values) for s in series}
    if list(sums) == ["count"]:
        return f"{sums['count']} in all"
    return ", ".join(f"{n} {s}" for s, n in sums.items())


def _many(n: int, one: str, plural: str | None) -> str:
    return f"{n} {one.lower() if n == 1 else (plural or one.lower() + 's')}"


def bars_by_day(title: str, days: Sequence[tuple[str, Mapping[str, int]]], series: Sequence[str]) -> Chart:
    """Stacked columns, one per day (``YYYY-MM-DD``), one colour per series."""
    width, height, top = 640, 180, 20
    peak = max((sum(v.get(s, 0) for s in series) for _, v in days), default=0) or 1
    step = width / max(1, len(days))
    bars = []
    for i, (day, values) in enumerate(days):
        y = float(top + height)
        for name in series:
            n = values.get(name, 0)
            h = n / peak * height
            y -= h
            label = escape(f"{day}: {n} {name}")
            bars.append(
                f'<rect x="{i * step + 1:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" '
                f'height="{h:.1f}" fill="{SERIES_COLOURS.get(name, "#4d4d4d")}"><title>{label}</title></rect>'
            )
    first, last = (days[0][0], days[-1][0]) if days else ("", "")
    axis = (
        f'<text x="0" y="{top + height + 14}" font-size="11">{escape(first)}</text>'
        f'<text x="{width}" y="{top + height + 14}" font-size="11" text-anchor="end">{escape(last)}</text>'
        f'<text x="0" y="12" font-size="11">peak {peak} per day</text>'
    )
    summary = (
        f"{len(days)} days from {first} to {last}: {_totals([v for _, v in days], series)}; "
        f"at most {peak} on one day."
    )
    body = "".join(bars) + axis + _legend(series, top + height + 22)
    ident = _ident(title)
    rows = [(day, *(str(v.get(s, 0)) for s in series)) for day, v in days]
    return Chart(
        ident,
        title,
        summary,
        _svg(ident, title, summary, width, top + height + 40, body),
        ("Day", *series),
        rows,
    )


def horizontal_bars(
    title: str,
    rows: Sequence[tuple[str, Mapping[str, int]]],
    series: Sequence[str],
    *,
    label: str,
    plural: str | None = None,
) -> Chart:
    """One stacked bar per row label (e.g. per rule, agency or node).

    ``label`` names the labels' column; ``plural`` is its plural in the description (default: ``label`` + s).
    """
    label_width, width, row_height = 200, 420, 22
    peak = max((sum(v.get(s, 0) for s in series) for _, v in rows), default=0) or 1
    parts = []
    for i, (name_, values) in enumerate(rows):
        y = i * row_height
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(name_[:32])}</text>')
        x = float(label_width)
        total = 0
        for name in series:
            n = values.get(name, 0)
            total += n
            w = n / peak * width
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_height - 8}" '
                f'fill="{SERIES_COLOURS.get(name, "#4d4d4d")}">'
                f"<title>{escape(f'{name_}: {n} {name}')}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" font-size="11">{total}</text>')
    if not rows:
        parts.append('<text x="0" y="15" font-size="12">nothing to show</text>')
    height = max(1, len(rows)) * row_height
    body = "".join(parts) + (_legend(series, height + 6) if len(series) > 1 else "")
    summary = (
        f"{_many(len(rows), label, plural)}: {_totals([v for _, v in rows], series)}."
        if rows
        else "Nothing to show."
    )
    ident = _ident(title)
    header = (label, *series) if len(series) > 1 else (label, "Count")
    table = [(name_, *(str(v.get(s, 0)) for s in series)) for name_, v in rows]
    svg = _svg(ident, title, summary, label_width + width + 60, height + 24, body)
    return Chart(ident, title, summary, svg, header, table)


@dataclass(frozen=True, slots=True)
class Span:
    """One bar of a timeline: from ``start`` to ``end``, coloured by ``status`` (a series name)."""

    label: str
    start: datetime
    end: datetime
    status: str
    note: str


def timeline(title: str, spans: Sequence[Span], now: datetime, *, label: str) -> Chart:
    """Horizontal bars over time, with a line at ``now`` (e.g. emergency orders and their deadlines)."""
    label_width, width, row_height = 200, 420, 22
    if spans:
        first = min(min(s.start for s in spans), now)
        last = max(max(s.end for s in spans), now)
    else:
        first = last = now
    extent = (last - first).total_seconds() or 1.0

    def x(when: datetime) -> float:
        return label_width + (when - first).total_seconds() / extent * width

    parts = []
    for i, span in enumerate(spans):
        y = i * row_height
        left, right = x(span.start), x(span.end)
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{escape(span.label[:32])}</text>'
            f'<rect x="{left:.1f}" y="{y + 4}" width="{max(2.0, right - left):.1f}" '
            f'height="{row_height - 8}" '
            f'fill="{SERIES_COLOURS.get(span.status, "#4d4d4d")}">'
            f"<title>{escape(f'{span.label}: {span.note}')}</title></rect>"
        )
    height = max(1, len(spans)) * row_height
    if not spans:
        parts.append('<text x="0" y="15" font-size="12">nothing to show</text>')
    at = x(now)
    parts.append(
        f'<line x1="{at:.1f}" y1="0" x2="{at:.1f}" y2="{height}" stroke="#1f2328" stroke-dasharray="3 2"/>'
        f'<text x="{at:.1f}" y="{height + 12}" font-size="11" text-anchor="middle">now</text>'
    )
    statuses = sorted({s.status for s in spans})
    body = "".join(parts) + _legend(statuses, height + 18)
    counts = ", ".join(f"{sum(1 for s in spans if s.status == st)} {st}" for st in statuses)
    summary = f"{_many(len(spans), label, None)}: {counts}." if spans else "Nothing to show."
    ident = _ident(title)
    rows = [
        (s.label, s.start.strftime("%Y-%m-%d %H:%M"), s.end.strftime("%Y-%m-%d %H:%M"), s.note) for s in spans
    ]
    svg = _svg(ident, title, summary, label_width + width + 60, height + 34, body)
    return Chart(ident, title, summary, svg, (label, "From (UTC)", "Deadline (UTC)", "Status"), rows)


def _svg(ident: str, title: str, summary: str, width: float, height: float, body: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{ident}-t {ident}-d">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(summary)}</desc>'
        f"{body}</svg>"
    )
