"""Turn streamed-request timings into the streaming benchmark's figures.

Both sides (direct to the mock, and through the gateway) are reduced to the same figures, so
the direct side doubles as the noise floor of the machine and the mock:

* time to first body byte (TTFB);
* each chunk's extra delay against the *direct schedule*: the median arrival time of event i,
  measured from the first body byte, over all direct requests;
* when the mock stamps its chunks, each chunk's delivery delay (client read time minus the
  mock's send time, both ``CLOCK_MONOTONIC``), the most direct measure of holding back;
* coalescing: an event that arrived in the same read as the event before it was held back at
  least until the later one was sent (the mock writes events milliseconds apart).
"""

from __future__ import annotations

import statistics
from collections import Counter
from itertools import pairwise
from typing import Any

from stream_client import StreamResult


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p90/p99/max of ``values`` (nearest rank), or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": ordered[-1]}


def direct_schedule(results: list[StreamResult]) -> list[float]:
    """Median arrival of each event index, in ms after the first body byte."""
    by_index: dict[int, list[float]] = {}
    for r in results:
        for i, offset in enumerate(r.offsets_ms()):
            by_index.setdefault(i, []).append(offset)
    return [statistics.median(by_index[i]) for i in sorted(by_index)]


def side_figures(
    results: list[StreamResult], schedule: list[float], expected_events: int
) -> dict[str, Any]:
    extra: list[float] = []
    gaps: list[float] = []
    for r in results:
        offsets = r.offsets_ms()
        extra += [off - schedule[i] for i, off in enumerate(offsets) if 0 < i < len(schedule)]
        gaps += [b - a for a, b in pairwise(offsets)]
    delivery = [
        (e.arrived_ns - e.sent_ns) / 1e6 for r in results for e in r.events if e.sent_ns is not None
    ]
    return {
        "requests": len(results),
        "events": sum(len(r.events) for r in results),
        "ttfb_ms": percentiles([r.ttfb_ms for r in results]),
        "chunk_extra_vs_direct_schedule_ms": percentiles(extra),
        "chunk_delivery_ms": percentiles(delivery),
        "inter_chunk_gap_ms": percentiles(gaps),
        "coalesced_events": sum(
            len(r.events) - len({e.read_index for e in r.events}) for r in results
        ),
        "max_events_per_read": max((r.max_events_per_read() for r in results), default=0),
        "responses_with_other_event_count": sum(
            1 for r in results if len(r.events) != expected_events
        ),
    }


def summarize(direct: list[StreamResult], proxied: list[StreamResult] | None) -> dict[str, Any]:
    schedule = direct_schedule(direct)
    expected = Counter(len(r.events) for r in direct).most_common(1)[0][0] if direct else 0
    summary: dict[str, Any] = {
        "expected_events": expected,
        "direct_schedule_ms": schedule,
        "direct": side_figures(direct, schedule, expected),
    }
    if proxied is not None:
        p = summary["proxied"] = side_figures(proxied, schedule, expected)
        d = summary["direct"]
        summary["added_ttfb_p50_ms"] = p["ttfb_ms"]["p50"] - d["ttfb_ms"]["p50"]
        if p["chunk_delivery_ms"] and d["chunk_delivery_ms"]:
            for q in ("p50", "p99"):
                summary[f"added_delivery_{q}_ms"] = (
                    p["chunk_delivery_ms"][q] - d["chunk_delivery_ms"][q]
                )
    return summary


def describe(summary: dict[str, Any]) -> list[str]:
    """Readable lines for the console."""

    def trio(
        figures: dict[str, float] | None, keys: tuple[str, ...] = ("p50", "p99", "max")
    ) -> str:
        if figures is None:
            return "n/a"
        return " / ".join(f"{figures[k]:.3f}" for k in keys)

    lines = [
        f"{summary['expected_events']} SSE events per response; all times in ms",
        f"{'':8} {'TTFB p50/p99':>16}  {'chunk extra vs direct p50/p99/max':>34}"
        f"  {'delivery p50/p99/max':>22}  {'gap p50':>7}  coalesced",
    ]
    for name in ("direct", "proxied"):
        s = summary.get(name)
        if s is None:
            continue
        gap = s["inter_chunk_gap_ms"]["p50"] if s["inter_chunk_gap_ms"] else float("nan")
        lines.append(
            f"{name:8} {trio(s['ttfb_ms'], ('p50', 'p99')):>16}"
            f"  {trio(s['chunk_extra_vs_direct_schedule_ms']):>34}"
            f"  {trio(s['chunk_delivery_ms']):>22}  {gap:7.3f}"
            f"  {s['coalesced_events']} of {s['events']}"
        )
    if "added_ttfb_p50_ms" in summary:
        text = f"added TTFB (median) {summary['added_ttfb_p50_ms']:.3f} ms"
        if "added_delivery_p50_ms" in summary:
            text += (
                f"; added chunk delivery p50 {summary['added_delivery_p50_ms']:.3f} ms,"
                f" p99 {summary['added_delivery_p99_ms']:.3f} ms"
            )
        lines.append(text)
    return lines
