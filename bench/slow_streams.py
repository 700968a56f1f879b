"""Many slow streams (issue 19): thousands of concurrent streams at 10 tokens/s, one worker.

Targets: added time to first byte at most 5 ms at p99, no chunk held back, gateway RSS at most
300 MB. This is what a busy Open WebUI installation looks like to the gateway: few bytes per
second per stream, but very many streams open at once, each holding two sockets, a spool
entry and its capture buffers.

``STREAMS`` connections (2,000 by default) each send ``PER_CONNECTION`` streamed requests one
after another, their starts spread over ``RAMP_S``; the mock answers each with ``CHUNKS``
events ``CHUNK_DELAY_MS`` apart (10 per second), stamped with its send time. The same run goes
direct to the mock first (the machine's and the client's own noise floor at this
concurrency), then through the gateway. Figures:

* added TTFB: p99 of the proxied time to first byte minus p99 of the direct one;
* chunk delivery: each event's read time minus the mock's send stamp (same clock), p99 and
  max, proxied against direct, and events coalesced into one read beyond direct's count;
* the gateway's peak RSS during the run (VmHWM) and after it.

The client is one asyncio process (uvloop) on the same two cores as the mock and the
gateway; when the machine is shared its figures are noisier than the gateway's own cost.
"""

from __future__ import annotations

import asyncio
import random
import time
from itertools import pairwise
from typing import Any

import processes as pr
import stream_analysis as sa
import stream_client as sc
from suites import Config, Target, heading, ms, run_async, settle

STREAMS = 2000
PER_CONNECTION = 2
CHUNKS = 30
CHUNK_DELAY_MS = 100.0
RAMP_S = 3.0
MAX_ADDED_TTFB_P99_MS = 5.0
MAX_RSS_MB = 300.0


async def _connection(
    url: str, headers: dict[str, str], delay: float, count: int, out: list[sc.StreamResult],
    errors: list[str],
) -> None:  # fmt: skip
    await asyncio.sleep(delay)
    client = sc.StreamClient(url, headers)
    try:
        for _ in range(count):
            try:
                result = await client.send(timeout_s=60.0)
            except Exception as exc:  # counted; the run goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                client.close()
                continue
            if result.status != 200:
                errors.append(f"HTTP {result.status}")
            else:
                out.append(result)
    finally:
        client.close()


async def _run(
    url: str, streams: int, per_connection: int
) -> tuple[list[sc.StreamResult], list[str]]:
    headers = {
        "x-mock-chunk-delay-ms": f"{CHUNK_DELAY_MS:g}",
        "x-mock-chunks": str(CHUNKS),
        "x-mock-timestamps": "1",
    }
    rng = random.Random(7)
    out: list[sc.StreamResult] = []
    errors: list[str] = []
    await asyncio.gather(
        *(
            _connection(url, headers, rng.uniform(0, RAMP_S), per_connection, out, errors)
            for _ in range(streams)
        )
    )
    return out, errors


def _figures(results: list[sc.StreamResult]) -> dict[str, Any]:
    ttfb = [r.ttfb_ms for r in results]
    delivery = [
        (e.arrived_ns - e.sent_ns) / 1e6 for r in results for e in r.events if e.sent_ns is not None
    ]
    coalesced = sum(
        1 for r in results for a, b in pairwise(r.events) if a.read_index == b.read_index
    )
    return {
        "requests": len(results),
        "events": sum(len(r.events) for r in results),
        "ttfb_ms": sa.percentiles(ttfb),
        "delivery_ms": sa.percentiles(delivery),
        "coalesced_events": coalesced,
    }


def bench_slow_streams(target: Target, cfg: Config) -> dict[str, Any]:
    streams = STREAMS if cfg.stream_requests >= 100 else 200  # --quick: a smoke run
    heading(
        f"Many slow streams: {streams} at once, {1000 / CHUNK_DELAY_MS:g} tokens/s, "
        f"{PER_CONNECTION} per connection"
    )
    summary: dict[str, Any] = {"streams": streams}
    peak_rss = after_rss = None
    for name, url in (("direct", target.direct_url), ("proxied", target.proxied_url)):
        if url is None:
            continue
        settle(target, cfg)
        started = time.monotonic()
        results, errors = run_async(_run(url, streams, PER_CONNECTION))
        figures = _figures(results)
        figures["errors"] = len(errors)
        figures["error_examples"] = errors[:5]
        figures["seconds"] = round(time.monotonic() - started, 1)
        summary[name] = figures
        print(
            f"  {name:8} {figures['requests']} streams in {figures['seconds']} s, "
            f"{len(errors)} errors; TTFB p50 {ms(figures['ttfb_ms']['p50'])} "
            f"p99 {ms(figures['ttfb_ms']['p99'])}; delivery p99 "
            f"{ms(figures['delivery_ms']['p99'])} max {ms(figures['delivery_ms']['max'])}; "
            f"coalesced {figures['coalesced_events']} of {figures['events']}"
        )
        if name == "proxied" and target.gateway_pid is not None:
            main, _ = pr.rss_tree(target.gateway_pid)
            peak_rss, after_rss = main.hwm_mb, main.rss_mb
            print(f"  gateway VmRSS peak {peak_rss:.1f} MB, after the run {after_rss:.1f} MB")
    proxied, direct = summary.get("proxied"), summary.get("direct")
    if proxied is None or direct is None:
        return summary
    added = proxied["ttfb_ms"]["p99"] - direct["ttfb_ms"]["p99"]
    summary["added_ttfb_p99_ms"] = added
    target.check("slowstreams", "errors", str(proxied["errors"]), "0", proxied["errors"] == 0)
    target.check(
        "slowstreams",
        "added TTFB p99",
        ms(added),
        f"<= {ms(MAX_ADDED_TTFB_P99_MS)}",
        added <= MAX_ADDED_TTFB_P99_MS,
    )
    held = proxied["coalesced_events"]
    target.check(
        "slowstreams",
        "chunks held back (coalesced into one read)",
        f"{held} of {proxied['events']}",
        f"<= {direct['coalesced_events']} (direct's count)",
        held <= direct["coalesced_events"],
    )
    if peak_rss is not None:
        summary["gateway_rss_peak_mb"], summary["gateway_rss_after_mb"] = peak_rss, after_rss
        target.check(
            "slowstreams",
            "gateway peak RSS",
            f"{peak_rss:.1f} MB",
            f"<= {MAX_RSS_MB:.0f} MB",
            peak_rss <= MAX_RSS_MB,
        )
    return summary
