"""Aggregates of sets of requests that merge: raw rows and hourly rollups feed the same shape.

Latency percentiles come from fixed histogram buckets, so the same numbers come out of raw
rows and of rollups.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (ms) of the latency / TTFT histogram buckets; the last bucket is open.
BUCKETS_MS: tuple[float, ...] = (
    10,
    25,
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    4000,
    5000,
    7500,
    10000,
    15000,
    20000,
    30000,
    45000,
    60000,
    120000,
    300000,
)
NBUCKETS = len(BUCKETS_MS) + 1


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(BUCKETS_MS, ms)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """Approximate percentile from bucket counts (linear inside the bucket)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            low = BUCKETS_MS[i - 1] if i > 0 else 0.0
            high = BUCKETS_MS[i] if i < len(BUCKETS_MS) else BUCKETS_MS[-1] * 2
            return round(low + (high - low) * ((rank - seen) / count), 1)
        seen += count
    return BUCKETS_MS[-1]


# The additive fields of Stats (the rollup tables have one column each, same names).
MEASURES = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nusd",
    "unpriced",
    "latency_sum",
    "latency_n",
    "ttft_sum",
    "ttft_n",
    "tps_sum",
    "tps_n",
)


@dataclass
class Stats:
    """Aggregates of a set of requests; mergeable, so rollup rows and raw rows both feed it."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_nusd: int = 0
    unpriced: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    ttft_sum: float = 0.0
    ttft_n: int = 0
    tps_sum: float = 0.0
    tps_n: int = 0
    latency_hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)
    ttft_hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)

    def add_rows(self, rows: Iterable[Any]) -> None:
        """Add raw ``requests`` rows, summed in locals (raw windows can be tens of thousands)."""
        n = errors = prompt = completion = cached = cost = unpriced = 0
        lat_n = ttft_n = tps_n = 0
        lat_sum = ttft_sum = tps_sum = 0.0
        lat_hist, ttft_hist = self.latency_hist, self.ttft_hist
        for row in rows:
            n += 1
            if row.state in ("error", "interrupted"):
                errors += 1
            prompt += row.prompt_tokens or 0
            completion += row.completion_tokens or 0
            cached += row.cached_tokens or 0
            if row.cost_known:
                cost += row.cost_nusd or 0
            else:
                unpriced += 1
            latency, ttft, tps = row.latency_ms, row.ttft_ms, row.output_tokens_per_s
            if latency is not None:
                lat_sum += latency
                lat_n += 1
                lat_hist[bisect.bisect_left(BUCKETS_MS, latency)] += 1
            if ttft is not None:
                ttft_sum += ttft
                ttft_n += 1
                ttft_hist[bisect.bisect_left(BUCKETS_MS, ttft)] += 1
            if tps is not None:
                tps_sum += tps
                tps_n += 1
        self.requests += n
        self.errors += errors
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cached_tokens += cached
        self.cost_nusd += cost
        self.unpriced += unpriced
        self.latency_sum += lat_sum
        self.latency_n += lat_n
        self.ttft_sum += ttft_sum
        self.ttft_n += ttft_n
        self.tps_sum += tps_sum
        self.tps_n += tps_n

    def merge(self, other: Stats) -> None:
        for name in MEASURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_hist = [
            a + b for a, b in zip(self.latency_hist, other.latency_hist, strict=True)
        ]
        self.ttft_hist = [a + b for a, b in zip(self.ttft_hist, other.ttft_hist, strict=True)]

    def to_api(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": self.cost_nusd / 1e9,
            "unpriced_requests": self.unpriced,
            "avg_latency_ms": round(self.latency_sum / self.latency_n, 1)
            if self.latency_n
            else None,
            "p50_latency_ms": percentile(self.latency_hist, 0.5),
            "p95_latency_ms": percentile(self.latency_hist, 0.95),
            "avg_ttft_ms": round(self.ttft_sum / self.ttft_n, 1) if self.ttft_n else None,
            "p50_ttft_ms": percentile(self.ttft_hist, 0.5),
            "avg_output_tokens_per_s": round(self.tps_sum / self.tps_n, 1) if self.tps_n else None,
        }
