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
# Upper bounds of the output tokens/s buckets ("is my local model getting slower?": p50, p10).
TPS_BUCKETS: tuple[float, ...] = (
    *(1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100),
    *(125, 150, 200, 300, 500, 1000),
)
NTPS = len(TPS_BUCKETS) + 1
COLD_START_MS = 1000.0  # a model load longer than this is a cold start


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(BUCKETS_MS, ms)


def tps_bucket_of(tps: float) -> int:
    return bisect.bisect_left(TPS_BUCKETS, tps)


def percentile(hist: Sequence[int], q: float, bounds: Sequence[float] = BUCKETS_MS) -> float | None:
    """Approximate percentile from bucket counts (linear inside the bucket)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            low = bounds[i - 1] if i > 0 else 0.0
            high = bounds[i] if i < len(bounds) else bounds[-1] * 2
            return round(low + (high - low) * ((rank - seen) / count), 1)
        seen += count
    return bounds[-1]


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
    "ptps_sum",  # prompt tokens/s (prompt processing speed the server reported)
    "ptps_n",
    "cold_n",  # cold starts: model loads over COLD_START_MS
    "cold_load_sum",  # their load time, ms
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
    ptps_sum: float = 0.0
    ptps_n: int = 0
    cold_n: int = 0
    cold_load_sum: float = 0.0
    latency_hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)
    ttft_hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)
    tps_hist: list[int] = field(default_factory=lambda: [0] * NTPS)

    def add_rows(self, rows: Iterable[Any]) -> None:
        """Add raw ``requests`` rows, summed in locals (raw windows can be tens of thousands)."""
        n = errors = prompt = completion = cached = cost = unpriced = 0
        lat_n = ttft_n = tps_n = ptps_n = cold_n = 0
        lat_sum = ttft_sum = tps_sum = ptps_sum = cold_sum = 0.0
        lat_hist, ttft_hist, tps_hist = self.latency_hist, self.ttft_hist, self.tps_hist
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
                tps_hist[bisect.bisect_left(TPS_BUCKETS, tps)] += 1
            ptps, load = row.prompt_tokens_per_s, row.load_ms
            if ptps is not None:
                ptps_sum += ptps
                ptps_n += 1
            if load is not None and load > COLD_START_MS:
                cold_n += 1
                cold_sum += load
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
        self.ptps_sum += ptps_sum
        self.ptps_n += ptps_n
        self.cold_n += cold_n
        self.cold_load_sum += cold_sum

    def merge(self, other: Stats) -> None:
        for name in MEASURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_hist = [
            a + b for a, b in zip(self.latency_hist, other.latency_hist, strict=True)
        ]
        self.ttft_hist = [a + b for a, b in zip(self.ttft_hist, other.ttft_hist, strict=True)]
        self.tps_hist = [a + b for a, b in zip(self.tps_hist, other.tps_hist, strict=True)]

    def _whole(self, hist: list[int], n: int) -> list[int]:
        """``hist`` when it counts every measured request, else an empty one.

        Lean rollups (per user, per pair) keep sums, not distributions: a window read from
        them plus raw edge hours has a histogram of the edges only, and a percentile of that
        would be a wrong figure shown as a right one. No figure is better (callers show the
        average, which is exact)."""
        return hist if sum(hist) == n else []

    def to_api(self) -> dict[str, Any]:
        lat = self._whole(self.latency_hist, self.latency_n)
        ttft = self._whole(self.ttft_hist, self.ttft_n)
        tps = self._whole(self.tps_hist, self.tps_n)
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
            "p50_latency_ms": percentile(lat, 0.5),
            "p95_latency_ms": percentile(lat, 0.95),
            "avg_ttft_ms": round(self.ttft_sum / self.ttft_n, 1) if self.ttft_n else None,
            "p50_ttft_ms": percentile(ttft, 0.5),
            "p95_ttft_ms": percentile(ttft, 0.95),
            "avg_output_tokens_per_s": round(self.tps_sum / self.tps_n, 1) if self.tps_n else None,
            "p50_output_tokens_per_s": percentile(tps, 0.5, TPS_BUCKETS),
            "p10_output_tokens_per_s": percentile(tps, 0.1, TPS_BUCKETS),
            "avg_prompt_tokens_per_s": round(self.ptps_sum / self.ptps_n, 1)
            if self.ptps_n
            else None,
            "cold_starts": self.cold_n,
            "avg_cold_load_ms": round(self.cold_load_sum / self.cold_n, 1) if self.cold_n else None,
        }
