"""The four benchmarks (latency, stream, throughput, rss) and the figures they check.

Each benchmark measures the same thing twice, straight at the mock ("direct") and through the
gateway ("proxied"), prints a block of figures as it goes, records pass/fail checks on the
``Target`` and returns its figures for the JSON report. ``run.py`` sets up the processes and
calls them; the targets themselves are the constants below.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import processes as pr
import stream_analysis as sa
import stream_client as sc
import wrk_runner as wr

MAX_ADDED_P50_MS = 1.0
MIN_RPS = 1500.0
MAX_TAIL_RATIO = 3.0
MAX_ADDED_TTFB_MS = 1.0
MAX_RSS_MB = 150.0
CHUNK_DELAY_MS = 5.0

T = TypeVar("T")


@dataclass
class Config:
    """How long and how hard each benchmark runs."""

    latency_s: float
    throughput_s: float
    warmup_s: float
    stream_requests: int
    stream_warmup: int
    rss_requests: int
    connections: int
    settle_s: float


FULL = Config(10, 15, 3, 200, 20, 100_000, 32, 30)
QUICK = Config(3, 5, 1, 30, 5, 10_000, 32, 10)


@dataclass
class Check:
    """One pass/fail line of the summary."""

    bench: str
    figure: str
    value: str
    target: str
    passed: bool


@dataclass
class Target:
    """What is being measured: URLs and, when known, the pids to watch."""

    direct_url: str
    proxied_url: str | None
    gateway_pid: int | None
    mock_pid: int | None
    checks: list[Check] = field(default_factory=list)
    prompt_ready: bool = False  # the prompt benchmark's prompt exists and renders
    api_base: str | None = None  # the gateway's base URL, for benchmarks that configure it
    admin_key: str | None = None

    def check(self, bench: str, figure: str, value: str, target: str, passed: bool) -> None:
        self.checks.append(Check(bench, figure, value, target, passed))
        print(f"  {'PASS' if passed else 'FAIL'}  {figure}: {value} (target {target})")


def ms(value: float) -> str:
    return f"{value:.3f} ms"


def heading(text: str) -> None:
    print(f"\n== {text} ==", flush=True)


def settle(target: Target, cfg: Config) -> None:
    """Let the gateway (e.g. its writer draining records) go idle before measuring."""
    if target.gateway_pid is not None:
        waited = pr.wait_idle(target.gateway_pid, cfg.settle_s)
        if waited > 2.0:
            print(f"  (waited {waited:.1f} s for the gateway to go idle)")


def sides(target: Target) -> list[tuple[str, str]]:
    out = [("direct", target.direct_url)]
    if target.proxied_url is not None:
        out.append(("proxied", target.proxied_url))
    return out


BENCHES = ("latency", "stream", "throughput", "rss")  # the order they run in


def bench_latency(target: Target, cfg: Config) -> dict[str, Any]:
    heading(f"Latency at concurrency 1 (wrk -t1 -c1 -d{cfg.latency_s:.0f}s)")
    runs: dict[str, wr.WrkResult] = {}
    cpu: dict[str, dict[str, float]] = {}
    for name, url in sides(target):
        settle(target, cfg)
        wr.run(url, connections=1, duration_s=cfg.warmup_s)
        cpu_before = cpu_now(target)
        runs[name] = r = wr.run(url, connections=1, duration_s=cfg.latency_s)
        cpu[name] = cpu_percent(target, r, cpu_before)
        print(
            f"  {name:8} p50 {ms(r.p50_ms)}  p90 {ms(r.p90_ms)}  p99 {ms(r.p99_ms)}"
            f"  max {ms(r.max_ms)}  {r.rps:,.0f} req/s  errors {r.errors}"
        )
        print(" " * 9, end="")
        print_cpu(cpu[name])
    data: dict[str, Any] = {k: {**v.to_json(), "cpu_percent": cpu[k]} for k, v in runs.items()}
    if "proxied" in runs:
        added = runs["proxied"].p50_ms - runs["direct"].p50_ms
        data["added_p50_ms"] = added
        data["added_p99_ms"] = runs["proxied"].p99_ms - runs["direct"].p99_ms
        target.check(
            "latency",
            "added p50 at c=1",
            ms(added),
            f"<= {ms(MAX_ADDED_P50_MS)}",
            added <= MAX_ADDED_P50_MS,
        )
    return data


def bench_throughput(target: Target, cfg: Config) -> dict[str, Any]:
    c = cfg.connections
    heading(f"Throughput at concurrency {c} (wrk -t1 -c{c} -d{cfg.throughput_s:.0f}s)")
    data: dict[str, Any] = {}
    for name, url in sides(target):
        settle(target, cfg)
        wr.run(url, connections=c, duration_s=cfg.warmup_s)
        cpu_before = cpu_now(target)
        r = wr.run(url, connections=c, duration_s=cfg.throughput_s)
        cpu = cpu_percent(target, r, cpu_before)
        ratio = r.p99_ms / r.p50_ms if r.p50_ms > 0 else float("inf")
        data[name] = {**r.to_json(), "p99_over_p50": ratio, "cpu_percent": cpu}
        print(
            f"  {name:8} {r.rps:>9,.0f} req/s  p50 {ms(r.p50_ms)}  p90 {ms(r.p90_ms)}"
            f"  p99 {ms(r.p99_ms)}  max {ms(r.max_ms)}  p99/p50 {ratio:.2f}  errors {r.errors}"
        )
        print(" " * 9, end="")
        print_cpu(cpu)
        if name == "proxied":
            target.check(
                "throughput",
                f"proxied req/s at c={c}",
                f"{r.rps:,.0f}",
                f">= {MIN_RPS:,.0f}",
                r.rps >= MIN_RPS,
            )
            target.check(
                "throughput",
                "proxied p99/p50",
                f"{ratio:.2f}x",
                f"<= {MAX_TAIL_RATIO:.1f}x",
                ratio <= MAX_TAIL_RATIO,
            )
            target.check(
                "throughput",
                "non-2xx + socket errors",
                f"{r.errors}" + (f" {r.socket_errors}" if r.errors else ""),
                "0",
                r.errors == 0,
            )
    return data


def cpu_now(target: Target) -> dict[str, float]:
    """CPU seconds so far: the machine, the gateway, its children (e.g. a writer), the mock."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "wall": time.monotonic(),
        "machine": pr.machine_cpu_seconds()[0],
        "harness": me.ru_utime + me.ru_stime,  # this process, e.g. the streaming client
    }
    if target.gateway_pid is not None:
        out["gateway"] = pr.cpu_seconds(target.gateway_pid)
        out["gateway children"] = sum(pr.cpu_seconds(k) for k in pr.children_of(target.gateway_pid))
    if target.mock_pid is not None:
        out["mock"] = pr.cpu_seconds(target.mock_pid)
    return out


def cpu_percent(
    target: Target, r: wr.WrkResult | None, before: dict[str, float]
) -> dict[str, float]:
    """Percent of one core each party used since ``before`` (the run ``r`` included).

    "other" is what the rest of the machine used meanwhile: anything above a few percent means
    the figures were measured on a busy machine.
    """
    after = cpu_now(target)
    wall = after.pop("wall") - before["wall"]
    cpu = {k: (v - before[k]) / wall * 100 for k, v in after.items()}
    if r is not None:
        cpu["wrk"] = r.cpu_s / wall * 100
    machine = cpu.pop("machine")
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    return cpu


def print_cpu(cpu: dict[str, float]) -> None:
    print("  CPU % of one core: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))


def bench_stream(target: Target, cfg: Config) -> dict[str, Any]:
    n = cfg.stream_requests
    heading(f"Streaming at concurrency 1 ({n} requests, {CHUNK_DELAY_MS:g} ms between chunks)")
    headers = {"x-mock-chunk-delay-ms": f"{CHUNK_DELAY_MS:g}", "x-mock-timestamps": "1"}
    runs: dict[str, list[sc.StreamResult]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for name, url in sides(target):
        settle(target, cfg)
        cpu_before = cpu_now(target)
        runs[name] = run_async(sc.run_many(url, n, headers, warmup=cfg.stream_warmup))
        cpu[name] = cpu_percent(target, None, cpu_before)
    summary = sa.summarize(runs["direct"], runs.get("proxied"))
    for line in sa.describe(summary):
        print("  " + line)
    for name, figures in cpu.items():
        print(f"  {name:8}", end="")
        print_cpu(figures)
        summary[name]["cpu_percent"] = figures
    proxied = summary.get("proxied")
    if proxied is not None:
        added = summary["added_ttfb_p50_ms"]
        target.check(
            "stream",
            "added TTFB (median)",
            ms(added),
            f"<= {ms(MAX_ADDED_TTFB_MS)}",
            added <= MAX_ADDED_TTFB_MS,
        )
        # On a quiet machine direct shows none, so this demands none. When the machine is busy
        # enough that even direct reads coalesce, that count is the noise floor.
        coalesced, floor = proxied["coalesced_events"], summary["direct"]["coalesced_events"]
        target.check(
            "stream",
            "chunks held back (coalesced into one read)",
            f"{coalesced} of {proxied['events']}",
            f"<= {floor} (direct's count)",
            coalesced <= floor,
        )
        mismatched = proxied["responses_with_other_event_count"]
        target.check(
            "stream",
            "responses whose event count differs from direct",
            str(mismatched),
            "0",
            mismatched == 0,
        )
    return summary


def bench_rss(target: Target, cfg: Config) -> dict[str, Any]:
    n, c = cfg.rss_requests, cfg.connections
    heading(f"Memory after {n:,} proxied requests (wrk -t1 -c{c})")
    if target.proxied_url is None or target.gateway_pid is None:
        print("  skipped: needs a gateway process on this machine")
        return {"skipped": True}
    settle(target, cfg)
    pid = target.gateway_pid
    before, _ = pr.rss_tree(pid)
    print(f"  before: gateway VmRSS {before.rss_mb:.1f} MB")
    r = wr.run(target.proxied_url, connections=c, duration_s=max(120.0, n / 200), stop_after=n)
    print(f"  sent {r.requests:,} requests in {r.duration_s:.1f} s ({r.rps:,.0f} req/s)")
    main, children = pr.rss_tree(pid)
    settle(target, cfg)
    settled, settled_children = pr.rss_tree(pid)
    kids = sum(ch.rss_mb for ch in children)
    print(
        f"  after:  gateway VmRSS {main.rss_mb:.1f} MB (peak {main.hwm_mb:.1f} MB), "
        f"children {kids:.1f} MB; once idle {settled.rss_mb:.1f} MB"
    )
    for ch in children:
        print(f"          child {ch.pid}: {ch.rss_mb:.1f} MB  {ch.cmd}")
    target.check("rss", "requests completed", f"{r.requests:,}", f">= {n:,}", r.requests >= n)
    target.check("rss", "errors during the run", str(r.errors), "0", r.errors == 0)
    target.check(
        "rss",
        f"gateway VmRSS after {n:,} requests",
        f"{main.rss_mb:.1f} MB",
        f"<= {MAX_RSS_MB:.0f} MB",
        main.rss_mb <= MAX_RSS_MB,
    )
    return {
        "wrk": r.to_json(),
        "before": asdict(before),
        "after": asdict(main),
        "children_after": [asdict(ch) for ch in children],
        "children_rss_mb": kids,
        "after_idle": asdict(settled),
        "children_after_idle": [asdict(ch) for ch in settled_children],
    }


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


RUNNERS = {
    "latency": bench_latency,
    "stream": bench_stream,
    "throughput": bench_throughput,
    "rss": bench_rss,
}
