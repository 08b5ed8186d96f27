"""Charts as inline SVG, drawn on the server (no script, no external files); each has a text title.

Every label is escaped here, so the result may be inserted into a page as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["SERIES_COLOURS", "bars_by_day", "horizontal_bars"]

#: Colours per series, chosen to stay distinguishable for the common colour-vision deficiencies.
SERIES_COLOURS: Mapping[str, str] = {
    "allowed": "#1b7837",
    "refused": "#b2182b",
    "disclosed": "#2166ac",
    "not completed": "#e08214",
    "count": "#4d4d4d",
}


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


def bars_by_day(title: str, days: Sequence[tuple[str, Mapping[str, int]]], series: Sequence[str]) -> str:
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
    return _svg(title, width, top + height + 40, "".join(bars) + axis + _legend(series, top + height + 22))


def horizontal_bars(title: str, rows: Sequence[tuple[str, Mapping[str, int]]], series: Sequence[str]) -> str:
    """One stacked bar per row label (e.g. per rule, agency or node)."""
    label_width, width, row_height = 200, 420, 22
    peak = max((sum(v.get(s, 0) for s in series) for _, v in rows), default=0) or 1
    parts = []
    for i, (label, values) in enumerate(rows):
        y = i * row_height
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(label[:32])}</text>')
        x = float(label_width)
        total = 0
        for name in series:
            n = values.get(name, 0)
            total += n
            w = n / peak * width
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_height - 8}" '
                f'fill="{SERIES_COLOURS.get(name, "#4d4d4d")}">'
                f"<title>{escape(f'{label}: {n} {name}')}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" font-size="11">{total}</text>')
    height = max(1, len(rows)) * row_height
    body = "".join(parts) + (_legend(series, height + 6) if len(series) > 1 else "")
    return _svg(title, label_width + width + 60, height + 24, body)


def _svg(title: str, width: float, height: float, body: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"{body}</svg>"
    )
