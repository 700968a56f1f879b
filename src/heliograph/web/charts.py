"""Small server-rendered SVG charts: bars or lines over time buckets, with axes and tooltips.

No JavaScript and no inline styles (the CSP forbids them): colours come from CSS classes in
``static/app.css``, geometry from SVG attributes. Every bucket has a ``<title>`` tooltip and
may link somewhere (the dashboard links each bucket to the Requests page for that time). All
text is escaped; the chart has a title and a description for screen readers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from heliograph.web.format import short_time, when, zone_label

WIDTH, HEIGHT = 480, 170
LEFT, RIGHT, TOP, BOTTOM = 58, 8, 10, 22
Formatter = Callable[[float], str]


@dataclass
class Series:
    name: str
    values: Sequence[float | None]
    css: str = "s1"


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def chart(
    chart_id: str,
    title: str,
    starts: Sequence[int],
    bucket_ms: int,
    series: Sequence[Series],
    *,
    fmt: Formatter,
    kind: str = "bar",
    links: Sequence[str] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    tz: dt.tzinfo | None = None,
) -> Markup:
    """A caption and an SVG chart of ``series`` over buckets starting at ``starts`` (epoch ms).

    ``kind`` is ``bar``, ``stack`` (stacked bars) or ``line``.
    """
    n = max(1, len(starts))
    pad = TOP + (14 if len(series) > 1 else 0)
    plot_w, plot_h = width - LEFT - RIGHT, height - pad - BOTTOM
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    if kind == "stack":
        peak = max((sum(s.values[i] or 0 for s in series) for i in range(len(starts))), default=0.0)
    top = nice_max(peak)
    col = plot_w / n

    def y(v: float) -> float:
        return pad + plot_h - (v / top) * plot_h

    out: list[str] = []
    total = sum(v or 0 for v in (series[0].values if series else []))
    desc = f"{len(starts)} buckets; peak {fmt(peak)}"
    if kind != "line":
        desc += f"; total {fmt(total)}"
    out.append(f'<figcaption class="chart-title">{escape(title)}</figcaption>')
    out.append(
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>'
    )
    out.append('<g class="grid">')
    for frac in (0, 0.5, 1):
        gy = y(top * frac)
        out.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
            f'<text class="ylabel" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(top * frac))}</text>"
        )
    out.append("</g>")
    span = bucket_ms * n
    every = max(1, math.ceil(n / 8))
    out.append('<g class="xaxis">')
    for i in range(0, n, every):
        if i < len(starts):
            x = LEFT + col * i + col / 2
            out.append(
                f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">'
                f"{escape(short_time(starts[i], span, tz))}</text>"
            )
    out.append("</g>")
    if kind == "line":
        for s in series:
            points = [
                f"{LEFT + col * i + col / 2:.1f},{y(v):.1f}"
                for i, v in enumerate(s.values)
                if v is not None
            ]
            if len(points) > 1:
                out.append(f'<polyline class="line {escape(s.css)}" points="{" ".join(points)}"/>')
            for i, v in enumerate(s.values):
                if v is not None:
                    cx = LEFT + col * i + col / 2
                    out.append(
                        f'<circle class="dot {escape(s.css)}" cx="{cx:.1f}" cy="{y(v):.1f}" r="2.5"/>'
                    )
    else:
        bar_w = max(1.0, col * 0.8)
        for i in range(len(starts)):
            base = 0.0
            for s in series:
                v = s.values[i] or 0
                if v <= 0:
                    continue
                x = LEFT + col * i + (col - bar_w) / 2
                y0, y1 = y(base + v), y(base)
                out.append(
                    f'<rect class="bar {escape(s.css)}" x="{x:.1f}" y="{y0:.1f}" '
                    f'width="{bar_w:.1f}" height="{max(0.5, y1 - y0):.1f}"/>'
                )
                if kind == "stack":
                    base += v
    out.append('<g class="hover">')
    zone = zone_label(tz)
    for i, start in enumerate(starts):
        label = f"{when(start, tz)} to {when(start + bucket_ms, tz)[11:]} {zone}"
        lines = [label] + [f"{s.name}: {fmt(s.values[i] or 0)}" for s in series]
        target = (
            f'<rect x="{LEFT + col * i:.1f}" y="{pad}" width="{col:.1f}" height="{plot_h}">'
            f"<title>{escape(chr(10).join(lines))}</title></rect>"
        )
        if links:
            target = f'<a href="{escape(links[i])}">{target}</a>'
        out.append(target)
    out.append("</g>")
    if len(series) > 1:
        out.append('<g class="legend">')
        x = LEFT
        for s in series:
            out.append(
                f'<rect class="bar {escape(s.css)}" x="{x}" y="0" width="8" height="8"/>'
                f'<text x="{x + 11}" y="8">{escape(s.name[:40])}</text>'
            )
            x += 16 + 7 * min(len(s.name), 40)
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 (every piece of text above is escaped)
