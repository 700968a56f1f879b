"""The one reader of points in time given by people and programs.

The API's ``since``/``until``, Helicone filter trees, the dashboard's filters and custom
ranges, and the CLI's ``--since``/``--until`` all read times here, so each door accepts the
same forms, keeps the same range and answers a bad time with the same sentence. Accepted:
ISO 8601 with or without a zone (UTC when none is given), a date alone, or a number of epoch
seconds (milliseconds when its size is above 1e11). Only years 1 to 9999 (UTC) are accepted,
so every result can be shown as a date again.
"""

from __future__ import annotations

import datetime as dt
import math

MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MS_ABOVE = 1e11  # a number this large is milliseconds (1e11 seconds is the year 5138)


class TimeError(ValueError):
    """A time that cannot be read; the message names the parameter and is safe to show."""


def message(name: str) -> str:
    """The one error sentence for a bad time given as ``name``."""
    return (
        f"{name} is unreadable or out of range: give ISO 8601 (2026-01-31 or "
        "2026-01-31T09:00:00Z; UTC when no zone is given) or epoch seconds or "
        "milliseconds, in years 1 to 9999"
    )


def parse_time(value: object, name: str) -> int:
    """Milliseconds since the epoch; raises ``TimeError(message(name))`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TimeError(message(name))
    ms = _number_ms(value) if not isinstance(value, str) else _text_ms(value.strip())
    if ms is None or not MIN_MS <= ms <= MAX_MS:
        raise TimeError(message(name))
    return ms


def _number_ms(number: float) -> int | None:
    if not math.isfinite(number):
        return None
    return int(number if abs(number) > MS_ABOVE else number * 1000)


def _text_ms(text: str) -> int | None:
    try:
        return _number_ms(float(text))
    except ValueError:
        pass
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return int(parsed.timestamp() * 1000)
    except (OverflowError, ValueError):
        return None
