"""The metrics an alert rule can watch: a small registry, one entry per metric.

Each entry is a function ``(MetricInput) -> Reading``: the value over the rule's window (None
when there is nothing to measure, e.g. no latencies) and the number of requests it was
computed from (None for figures that are not about requests, such as the spool backlog, which
``min_requests`` then does not gate). Adding a metric is one entry in ``METRICS``; the rule
checks, the API's enum, the OpenAPI document and the dashboard's form all read this table.

``budget_percent`` is the highest share of its limit any of the organization's budgets has
used in its current window (settled usage, from the budgets' ledger): a rule ``>= 80`` fires
when any budget crosses 80 %, and the event's value says how far the fullest one is.

Request metrics read the rollups (see ``store.alert_metrics``). The spool and writer
metrics read the spool directory of this host (the job process runs beside the writer, on
the same home): the bytes of records the writer has not yet committed, and how long ago it
last committed a spool directory that still has such bytes (0 when the spool is drained).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from heliograph.capture.spool import CHECKPOINT, SEGMENT_SUFFIX, spool_dirs
from heliograph.store import alert_metrics
from heliograph.store.stats import TPS_BUCKETS, Stats, percentile


@dataclass(frozen=True, slots=True)
class MetricInput:
    """What a metric function gets: the store, the spool, the rule's scope and window."""

    engine: Engine
    spool_root: Path
    org_id: str
    params: Mapping[str, str]  # the rule's filter (Requests page parameters)
    since_ms: int
    until_ms: int
    redis_url: str | None = None  # where budget usage lives, when not in the store


@dataclass(frozen=True, slots=True)
class Reading:
    value: float | None
    requests: int | None


@dataclass(frozen=True, slots=True)
class Metric:
    label: str
    unit: str
    compute: Callable[[MetricInput], Reading]
    filterable: bool = True  # False: about the whole installation, a filter is refused
    percentile: bool = False  # needs latency histograms (no per-user or per-task rollup)
    raw_only: bool = False  # read from raw rows whatever the filter


def _stats_metric(
    pick: Callable[[Stats], float | None],
) -> Callable[[MetricInput], Reading]:
    def compute(m: MetricInput) -> Reading:
        stats = alert_metrics.window_stats(m.engine, m.org_id, m.params, m.since_ms, m.until_ms)
        return Reading(pick(stats) if stats.requests else None, stats.requests)

    return compute


def _error_rate(s: Stats) -> float | None:
    return s.errors / s.requests if s.requests else None


def _p95_latency(s: Stats) -> float | None:
    return percentile(s.latency_hist, 0.95) if sum(s.latency_hist) == s.latency_n else None


def _p95_ttft(s: Stats) -> float | None:
    return percentile(s.ttft_hist, 0.95) if sum(s.ttft_hist) == s.ttft_n else None


def _p50_tps(s: Stats) -> float | None:
    whole = sum(s.tps_hist) == s.tps_n
    return percentile(s.tps_hist, 0.5, TPS_BUCKETS) if whole else None


def _cache_hit_rate(m: MetricInput) -> Reading:
    hits, total = alert_metrics.cache_hits(m.engine, m.org_id, m.params, m.since_ms, m.until_ms)
    return Reading(hits / total if total else None, total)


def spool_backlog(root: Path) -> tuple[int, float | None]:
    """(bytes not yet committed by the writer, ms time of the oldest commit still behind)."""
    backlog, oldest = 0, None
    try:
        found = spool_dirs(root)
    except FileNotFoundError:  # the writer removed a drained directory while we listed
        found = spool_dirs(root)
    for spool in found:
        pos = spool.read_pos
        pending = 0
        for number in spool.segments():
            if number < pos.segment:
                continue
            try:
                size = os.stat(spool.path / f"{number:012d}{SEGMENT_SUFFIX}").st_size
            except FileNotFoundError:
                continue
            pending += max(0, size - (pos.offset if number == pos.segment else 0))
        if pending:
            backlog += pending
            mark = spool.path / CHECKPOINT
            try:
                since = (mark if mark.exists() else spool.path).stat().st_mtime * 1000
            except FileNotFoundError:  # drained and removed just now
                continue
            oldest = since if oldest is None else min(oldest, since)
    return backlog, oldest


def _backlog(m: MetricInput) -> Reading:
    return Reading(float(spool_backlog(m.spool_root)[0]), None)


def _writer_lag(m: MetricInput) -> Reading:
    _, oldest = spool_backlog(m.spool_root)
    return Reading(0.0 if oldest is None else max(0.0, (m.until_ms - oldest) / 1000), None)


def _budget_percent(m: MetricInput) -> Reading:
    from heliograph.budgets.ledger import read_percentages

    shares = read_percentages(m.engine, m.redis_url, m.org_id, m.until_ms / 1000)
    return Reading(max(shares.values()) if shares else None, None)


METRICS: dict[str, Metric] = {
    "cost_usd": Metric("cost (USD)", "USD", _stats_metric(lambda s: s.cost_nusd / 1e9)),
    "requests": Metric("requests", "requests", _stats_metric(lambda s: float(s.requests))),
    "error_rate": Metric("error rate", "ratio 0-1", _stats_metric(_error_rate)),
    "p95_latency_ms": Metric("p95 latency", "ms", _stats_metric(_p95_latency), percentile=True),
    "p95_ttft_ms": Metric(
        "p95 time to first token", "ms", _stats_metric(_p95_ttft), percentile=True
    ),
    "p50_output_tokens_per_s": Metric(
        "p50 output tokens/s", "tokens/s", _stats_metric(_p50_tps), percentile=True
    ),
    "cache_hit_rate": Metric("cache hit rate", "ratio 0-1", _cache_hit_rate, raw_only=True),
    "unpriced_requests": Metric(
        "unpriced requests", "requests", _stats_metric(lambda s: float(s.unpriced))
    ),
    "spool_backlog_bytes": Metric("spool backlog", "bytes", _backlog, filterable=False),
    "writer_lag_s": Metric("writer lag", "seconds", _writer_lag, filterable=False),
    "budget_percent": Metric(
        "budget used (the fullest budget)", "percent", _budget_percent, filterable=False
    ),
}


def measure(name: str, given: MetricInput) -> Reading:
    """The reading of metric ``name`` (a key of METRICS)."""
    return METRICS[name].compute(given)
