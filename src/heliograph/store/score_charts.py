"""Scores over time: the mean of one named score per model or per prompt version, by bucket.

Scores live in ``request_scores`` (online rules, the API, the review queue); the time is the
record's ``created_at`` (when the traffic happened, not when it was scored). A score is never
older than its record, so a window's scores are found by the ``(org_id, name, created_at)``
index from the window's start and joined to their records by primary key: the work grows with
the scores in the window, not with the traffic or with every score ever stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from heliograph.store.schema import request_scores, requests

MAX_NAMES = 200
MAX_KEYS = 12
BY = ("model", "prompt")


@dataclass
class Line:
    """One model's (or prompt version's) mean score per bucket, and over the window."""

    key: str
    means: list[float | None]
    counts: list[int]
    total: int = 0
    mean: float | None = None
    prompt: tuple[str, int] | None = None  # (name, version) when ``by`` is prompt
    extra: dict[str, str] = field(default_factory=dict)


def score_names(engine: Engine, org_id: str, since_ms: int) -> list[str]:
    """Names of the scores stored since ``since_ms`` (at most MAX_NAMES), sorted."""
    query = (
        select(request_scores.c.name)
        .where(request_scores.c.org_id == org_id, request_scores.c.created_at >= since_ms)
        .group_by(request_scores.c.name)
        .order_by(request_scores.c.name)
        .limit(MAX_NAMES)
    )
    with engine.connect() as conn:
        return [str(n) for n in conn.execute(query).scalars()]


def score_lines(
    engine: Engine,
    org_id: str,
    name: str,
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
    by: str,
) -> list[Line]:
    """The busiest MAX_KEYS models (or prompt versions) with this score in the window, each
    with its mean per bucket of ``[since_ms, until_ms)``; most scores first."""
    n = max(1, -(-(until_ms - since_ms) // bucket_ms))
    bucket = (requests.c.created_at - since_ms) // bucket_ms
    if by == "prompt":
        keys: list[Any] = [requests.c.prompt_name, requests.c.prompt_version]
        extra = [requests.c.prompt_name.is_not(None)]
    else:
        keys = [requests.c.model]
        extra = []
    query = (
        select(*keys, bucket, func.avg(request_scores.c.value), func.count())
        .select_from(request_scores.join(requests, requests.c.id == request_scores.c.request_id))
        .where(
            request_scores.c.org_id == org_id,
            request_scores.c.name == name,
            request_scores.c.created_at >= since_ms,
            requests.c.org_id == org_id,
            requests.c.created_at >= since_ms,
            requests.c.created_at < until_ms,
            *extra,
        )
        .group_by(*keys, bucket)
    )
    lines: dict[tuple[str, int], Line] = {}
    sums: dict[tuple[str, int], float] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            *parts, index, mean, count = row
            key = (str(parts[0] or ""), int(parts[1] or 0) if len(parts) > 1 else 0)
            line = lines.get(key)
            if line is None:
                label = f"{key[0]} v{key[1]}" if by == "prompt" else (key[0] or "(no model)")
                line = Line(label, [None] * n, [0] * n)
                line.prompt = key if by == "prompt" else None
                lines[key] = line
            i = int(index)
            if 0 <= i < n:
                line.means[i], line.counts[i] = float(mean), int(count)
                line.total += int(count)
                sums[key] = sums.get(key, 0.0) + float(mean) * int(count)
    for key, line in lines.items():
        line.mean = sums[key] / line.total if line.total else None
    ranked = sorted(lines.values(), key=lambda x: (-x.total, x.key))
    return ranked[:MAX_KEYS]
