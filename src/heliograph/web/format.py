"""How numbers, times and links look on the dashboard (Jinja filters and globals).

Links built from data go through ``quote(..., safe="")``, so a user id like
``javascript:alert(1)`` becomes a harmless relative path segment, never a URL scheme.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import pass_context
from jinja2.runtime import Context

DASH = "—"


def ms(value: float | None) -> str:
    """Milliseconds as 830 ms, 1.24 s or 2m 05s."""
    if value is None:
        return DASH
    if 0 < value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(int(value / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def usd(value: float | None) -> str:
    """Dollars with enough decimals to see tiny costs; None (unknown) is a dash."""
    if value is None:
        return DASH
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = min(12, 2 - math.floor(math.log10(abs(value))))  # three significant digits
    return f"${value:.{digits}f}".rstrip("0")


def tokens(value: float | None) -> str:
    """Token counts as 950, 12.3k or 4.56M."""
    if value is None:
        return DASH
    if value < 1000:
        return f"{value:.0f}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    if value < 1_000_000_000:
        return f"{value / 1_000_000:.2f}M"
    return f"{value / 1_000_000_000:.2f}B"


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def number(value: float) -> str:
    """An axis or tooltip count: integers as 1,234, fractions with one decimal."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def pct(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value * 100:.1f}%" if value < 0.1 else f"{value * 100:.0f}%"


def rate(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}/s"


def when(value: int | str | None, tz: dt.tzinfo | None = None) -> str:
    """A time (ISO string or epoch ms) as 2026-11-28 13:04:05 in ``tz`` (default UTC)."""
    if value is None:
        return DASH
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            return value.replace("T", " ")[:19]
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
    else:
        stamp = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    return stamp.astimezone(tz or dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@pass_context
def when_here(context: Context, value: int | str | None) -> str:
    """``when`` in the page's chosen timezone (the template's ``tz``, UTC without one)."""
    tz = context.get("tz")
    return when(value, tz if isinstance(tz, dt.tzinfo) else None)


def zone_label(tz: dt.tzinfo | None) -> str:
    """A timezone's name as shown beside times: its IANA key, or UTC."""
    return str(getattr(tz, "key", None) or "UTC") if tz is not None else "UTC"


def short_time(value: int, span_ms: int, tz: dt.tzinfo | None = None) -> str:
    """An axis label: time of day for short spans, the date for long ones."""
    stamp = dt.datetime.fromtimestamp(value / 1000, tz or dt.UTC)
    if span_ms <= 2 * 86_400_000:
        return stamp.strftime("%H:%M")
    return stamp.strftime("%b %d")


def duration(ms_value: float | None) -> str:
    if ms_value is None:
        return DASH
    if ms_value < 60_000:
        return ms(ms_value)
    minutes = int(ms_value // 60_000)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def segment(value: str) -> str:
    """A value as one URL path segment."""
    return quote(value, safe="")


def path(*parts: str) -> str:
    return "/" + "/".join(segment(p) for p in parts)


def query_url(base: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> str:
    """``base?params`` without the empty ones (None, "" and False; a 0 is a value and kept);
    values are URL-encoded."""
    items = list(params.items()) if isinstance(params, dict) else list(params or [])
    clean = [(k, str(v)) for k, v in items if not (v is None or v is False or v == "")]
    return f"{base}?{urlencode(clean)}" if clean else base


def cost_hint(row: dict[str, Any]) -> str:
    """Why a request's cost is unknown, for a tooltip."""
    if row.get("state") != "ok":
        return "No cost: the request failed."
    if row.get("kind") != "llm":
        return "No cost: not an LLM call."
    if row.get("total_tokens") is None and row.get("prompt_tokens") is None:
        return "Unknown: the provider reported no token usage."
    return f"Unknown: no price for model {row.get('model') or '?'} (add a price override)."


FILTERS = {
    "ms": ms,
    "usd": usd,
    "tokens": tokens,
    "count": count,
    "pct": pct,
    "rate": rate,
    "when": when_here,
    "duration": duration,
    "segment": segment,
}
