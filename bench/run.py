"""Benchmark harness for the Heliograph gateway: is the proxy fast enough to be invisible?

Starts ``bench/fastmock.py`` (a mock OpenAI upstream much faster than the gateway) and the
gateway itself (``python -m heliograph serve`` with a fresh ``HELIOGRAPH_HOME``), creates a
write key, then measures every figure twice -- straight at the mock ("direct") and through the
gateway ("proxied") -- so the difference is what the gateway adds:

* latency    -- wrk, 1 connection: added p50 must be at most 1 ms;
* stream     -- streamed requests one at a time: added time to first byte at most 1 ms, and no
                chunk held back (each SSE event must reach the client in its own read);
* throughput -- wrk, 32 connections: at least 1,500 req/s, p99 at most 3x p50, no errors;
* rss        -- 100,000 proxied requests, then the gateway's VmRSS must be at most 150 MB;
* prompt     -- a body naming a managed prompt vs a plain one, through the same gateway:
                added p50 at most 0.1 ms at c=1, req/s within 10 % at c=32 (prompt_bench.py).
* budget     -- the same plain request with 20 budgets configured (5 covering it) vs none:
                added p50 at most 0.1 ms at c=1, req/s within 10 % at c=32 (budget_bench.py).
* slowstreams -- 2,000 concurrent streams at 10 tokens/s through one worker: added TTFB p99
                at most 5 ms, no chunk held back, gateway RSS at most 300 MB (slow_streams.py).

Prints a table, writes ``bench/results/<timestamp>.json`` and exits 0 only if every check
passed. The benchmarks themselves live in ``suites.py``; see ``bench/README.md``. Usage::

    python bench/run.py [--quick] [--only latency,throughput,stream,rss,prompt,budget,slowstreams]
    python bench/run.py --gateway-url http://127.0.0.1:8080 --key KEY --mock-url URL
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import budget_bench as bb
import processes as pr
import prompt_bench as pb
import slow_streams as ss
import stream_client as sc
import suites
import wrk_runner as wr
from suites import CHUNK_DELAY_MS, FULL, QUICK, Check, Config, Target, heading, sides

BENCH_DIR = Path(__file__).resolve().parent
BENCHES = (*suites.BENCHES, "prompt", "budget", "slowstreams")
RUNNERS = {
    **suites.RUNNERS,
    "prompt": pb.bench_prompt,
    "budget": bb.bench_budget,
    "slowstreams": ss.bench_slow_streams,
}


# -- setting up ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(env: dict[str, str], scope: str = "write") -> str:
    cmd = [sys.executable, "-m", "heliograph", "keys", "create", "--name", f"bench-{scope}"]
    done = subprocess.run(
        [*cmd, "--scope", scope], env=env, capture_output=True, text=True, timeout=60
    )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise pr.StartupError(
            f"`heliograph keys create` failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return lines[-1]


def start_gateway(procs: pr.Processes, run_dir: Path, mock_port: int) -> tuple[str, str, str, int]:
    """Start ``heliograph serve`` on a free port; return (base URL, write key, admin key, pid)."""
    home = run_dir / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HELIOGRAPH_HOME": str(home),
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": f"http://127.0.0.1:{mock_port}/v1",
    }
    port = free_port()
    cmd = [sys.executable, "-m", "heliograph", "serve", "--host", "127.0.0.1", "--port", str(port)]
    gateway = procs.start("gateway", cmd, run_dir / "gateway.log", env)
    base = f"http://127.0.0.1:{port}"
    pr.wait_http_ok(f"{base}/health", 30.0, gateway)
    return base, create_key(env), create_key(env, "admin"), gateway.pid


def local_pid_for(url: str) -> int | None:
    """The pid serving ``url``, if it is on this machine and we may look at it."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    pids = pr.listening_pids(parts.port or 80)
    roots = [p for p in pids if pr.parent_pid(p) not in pids]
    return roots[0] if roots else None


def smoke(url: str, body: bytes = wr.POST_BODY) -> None:
    """One request, so a broken setup fails here with a readable message and not in wrk."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise pr.StartupError(f"POST {url} -> HTTP {exc.code}: {exc.read()[:500]!r}") from None
    if b'"choices"' not in body:
        raise pr.StartupError(f"POST {url} answered 200 but not a chat completion: {body[:500]!r}")


def wait_prompt(url: str, timeout_s: float = 60.0) -> None:
    """Until the gateway renders the new prompt (its cache refreshes on the key interval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            smoke(url, pb.PROMPT_BODY)
            return
        except pr.StartupError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def redact(url: str | None) -> str | None:
    """Hide the key in a proxied URL (``/v1/<key>/...``) before printing or saving it."""
    if url is None:
        return None
    head, sep, rest = url.partition("/v1/")
    return head + sep + "<key>/" + rest.partition("/")[2] if sep else url


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True
        )
        info["git_rev"] = rev.stdout.strip() or None
    except OSError:
        info["git_rev"] = None
    return info


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs, for smoke tests")
    p.add_argument("--only", default=",".join(BENCHES), help="comma list of: " + ", ".join(BENCHES))
    p.add_argument("--gateway-url", help="benchmark this running gateway instead of starting one")
    p.add_argument("--key", help="write key for --gateway-url")
    p.add_argument("--admin-key", help="admin key for --gateway-url (creates the bench prompt)")
    p.add_argument(
        "--mock-url", help="use this running fastmock (base URL) instead of starting one"
    )
    p.add_argument("--mock-port", type=int, default=0, help="port for the fastmock we start")
    p.add_argument("--direct-only", action="store_true", help="measure the mock only, no gateway")
    p.add_argument("--latency-seconds", type=float, help="override the latency run length")
    p.add_argument("--throughput-seconds", type=float, help="override the throughput run length")
    p.add_argument("--stream-requests", type=int, help="override the streamed request count")
    p.add_argument("--rss-requests", type=int, help="override the request count before RSS")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (HELIOGRAPH_HOME, logs)")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHES)
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHES)}")
    args.only = [b for b in BENCHES if b in only]
    if args.gateway_url and not args.key:
        p.error("--gateway-url needs --key")
    if args.gateway_url and not args.mock_url:
        p.error("--gateway-url needs --mock-url (the fastmock that gateway forwards to)")
    return args


def make_config(args: argparse.Namespace) -> Config:
    cfg = QUICK if args.quick else FULL
    overrides = {
        "latency_s": args.latency_seconds,
        "throughput_s": args.throughput_seconds,
        "stream_requests": args.stream_requests,
        "rss_requests": args.rss_requests,
    }
    return Config(**{**asdict(cfg), **{k: v for k, v in overrides.items() if v is not None}})


def print_summary(checks: list[Check]) -> None:
    heading("Summary")
    if not checks:
        print("  no checks ran (direct-only mode measures the mock alone)")
        return
    rows = [("benchmark", "figure", "value", "target", "result")]
    rows += [(c.bench, c.figure, c.value, c.target, "PASS" if c.passed else "FAIL") for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def run(
    args: argparse.Namespace, procs: pr.Processes, run_dir: Path
) -> tuple[Target, dict[str, Any]]:
    wr.wrk_path()  # fail fast when wrk is missing
    busy = pr.machine_busy_fraction()
    print(f"machine busy before start: {busy:.0%} of {os.cpu_count()} CPUs")
    if busy > 0.10:
        print("warning: something else is using the CPU; figures will be noisy")
    mock_pid = None
    if args.mock_url:
        direct_base = args.mock_url.rstrip("/")
        mock_port = urlsplit(direct_base).port or 80
        mock_pid = local_pid_for(direct_base)
    else:
        extra = ["--chunk-delay-ms", f"{CHUNK_DELAY_MS:g}", "--timestamps"]
        mock, mock_port = pr.start_mock(procs, run_dir, args.mock_port, extra)
        mock_pid, direct_base = mock.pid, f"http://127.0.0.1:{mock_port}"
    direct_url = f"{direct_base.removesuffix('/v1')}/v1/chat/completions"
    proxied_url = gateway_pid = admin_key = base = None
    if args.gateway_url:
        base = args.gateway_url.rstrip("/")
        pr.wait_http_ok(f"{base}/health", 30.0)
        proxied_url = f"{base}/v1/{args.key}/chat/completions"
        gateway_pid = local_pid_for(base)
        admin_key = args.admin_key
    elif not args.direct_only:
        base, key, admin_key, gateway_pid = start_gateway(procs, run_dir, mock_port)
        proxied_url = f"{base}/v1/{key}/chat/completions"
    target = Target(direct_url, proxied_url, gateway_pid, mock_pid)
    target.api_base, target.admin_key = base, admin_key
    if "prompt" in args.only and base and admin_key and proxied_url:
        pb.create_prompt(base, admin_key)
        wait_prompt(proxied_url)
        target.prompt_ready = True
    print(f"direct:  {direct_url}\nproxied: {redact(proxied_url) or '(none: direct-only)'}")
    if gateway_pid is not None:
        print(f"gateway pid {gateway_pid}: {pr.cmdline(gateway_pid)}")
    for _, url in sides(target):
        smoke(url)
    cfg = make_config(args)
    results = {name: RUNNERS[name](target, cfg) for name in args.only}
    return target, {"machine_busy_before": busy, "config": asdict(cfg), "results": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    procs = pr.Processes()
    run_dir = Path(tempfile.mkdtemp(prefix="heliograph-bench-"))
    keep = args.keep
    started = datetime.now(UTC)
    try:
        target, report = run(args, procs, run_dir)
    except (pr.StartupError, wr.WrkError, sc.StreamClientError) as exc:
        keep = True
        print(f"\nerror: {exc}\n(logs kept in {run_dir})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup must not be interrupted
        procs.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if keep:
            print(f"(temp dir kept: {run_dir})")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    print_summary(target.checks)
    passed = all(c.passed for c in target.checks)
    report = {
        "started": started.isoformat(),
        "quick": args.quick,
        "host": host_info(),
        "direct_url": target.direct_url,
        "proxied_url": redact(target.proxied_url),
        **report,
        "checks": [asdict(c) for c in target.checks],
        "passed": passed,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    verdict = "ALL PASS" if passed else "SOME CHECKS FAILED"
    if not target.checks:
        verdict = "NO CHECKS RAN"
    print(f"\n{verdict}; results written to {out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
