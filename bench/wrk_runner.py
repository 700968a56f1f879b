"""Run wrk and turn its text report into numbers.

wrk is the load generator for the non-streamed benchmarks because it is written in C and costs
the 2-core machine far less CPU than a Python client would. This module only knows how to invoke
it (optionally stopping after N responses, see ``post.lua``) and how to parse what it prints.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
POST_LUA = BENCH_DIR / "post.lua"
LIMIT_MARKER = "HELIOGRAPH-BENCH-LIMIT-REACHED"
DETAIL_MARKER = "HELIOGRAPH-BENCH-LATENCY-US "
# The request post.lua sends; kept here too for the harness's one-off smoke request.
POST_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}'

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s+(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something we cannot parse."""


@dataclass
class WrkResult:
    """The figures of one wrk run; latencies in milliseconds."""

    threads: int
    connections: int
    requests: int
    duration_s: float
    rps: float
    percentiles_ms: dict[str, float]
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    # Finer figures from post.lua's done(): percentiles "95", "99.9", "99.99", "max", "mean".
    detail_ms: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0  # user+system CPU time wrk itself used
    output: str = ""

    @property
    def p50_ms(self) -> float:
        return self.percentiles_ms.get("50", float("nan"))

    @property
    def p90_ms(self) -> float:
        return self.percentiles_ms.get("90", float("nan"))

    @property
    def p99_ms(self) -> float:
        return self.percentiles_ms.get("99", float("nan"))

    @property
    def max_ms(self) -> float:
        return self.detail_ms.get("max", float("nan"))

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("output")
        data["errors"] = self.errors
        return data


def to_ms(value: str, unit: str) -> float:
    """Convert one of wrk's formatted durations ("83.00us", "1.15ms", "2.00s") to ms."""
    return float(value) * _UNITS[unit]


def parse(output: str, threads: int = 1, connections: int = 1) -> WrkResult:
    """Parse wrk's report (run with ``--latency``)."""
    requests = _REQUESTS.search(output)
    rps = _RPS.search(output)
    if requests is None or rps is None:
        raise WrkError(f"cannot parse wrk output:\n{output}")
    percentiles = {
        _pct_key(m.group(1)): to_ms(m.group(2), m.group(3)) for m in _PERCENTILE.finditer(output)
    }
    detail: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith(DETAIL_MARKER):
            raw = json.loads(line[len(DETAIL_MARKER) :])
            detail = {k: float(v) / 1000.0 for k, v in raw.items() if k != "stdev"}
    non2xx = _NON2XX.search(output)
    sock = _SOCKET.search(output)
    socket_errors = {}
    if sock is not None:
        names = ("connect", "read", "write", "timeout")
        socket_errors = {n: int(v) for n, v in zip(names, sock.groups(), strict=True)}
    return WrkResult(
        threads=threads,
        connections=connections,
        requests=int(requests.group(1)),
        duration_s=to_ms(requests.group(2), requests.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        percentiles_ms=percentiles,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        detail_ms=detail,
        output=output,
    )


def _pct_key(raw: str) -> str:
    return raw[:-2] if raw.endswith(".0") else raw


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk not found: install it first (apt-get install -y wrk)")
    return path


def run(
    url: str,
    *,
    connections: int,
    duration_s: float,
    threads: int = 1,
    script: Path = POST_LUA,
    stop_after: int | None = None,
    timeout_s: int = 2,
    body: bytes | None = None,
) -> WrkResult:
    """Run wrk against ``url`` and parse its report.

    With ``stop_after`` the run ends as soon as that many responses have arrived (the Lua
    script prints a marker and stops its thread; we then interrupt wrk, which would otherwise
    sleep out the whole ``duration_s``). ``duration_s`` is then only an upper bound. ``body``
    replaces the request body ``post.lua`` sends.
    """
    cmd = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        f"{timeout_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if stop_after is not None:
        if threads != 1:
            raise ValueError("stop_after counts per wrk thread; use threads=1")
        cmd += ["--", str(stop_after)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = None if body is None else {**os.environ, "HELIOGRAPH_BENCH_BODY": body.decode()}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = _communicate(proc, duration_s + 30.0, stop_on_marker=stop_after is not None)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}: {err.strip()}\n{out}")
    result = parse(out, threads, connections)
    result.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def _communicate(
    proc: subprocess.Popen[str], timeout_s: float, *, stop_on_marker: bool
) -> tuple[str, str]:
    """Collect wrk's output; interrupt it (SIGINT: it then prints its report) on the marker."""
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr
    err_lines: list[str] = []

    def drain_stderr() -> None:
        err_lines.extend(stderr)

    err_reader = threading.Thread(target=drain_stderr, daemon=True)
    err_reader.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    lines: list[str] = []
    try:
        for line in proc.stdout:
            if stop_on_marker and line.startswith(LIMIT_MARKER):
                time.sleep(0.05)  # let in-flight responses land; they are not counted anyway
                proc.send_signal(signal.SIGINT)
                continue
            lines.append(line)
        proc.wait()
    finally:
        timer.cancel()
    err_reader.join(timeout=5)
    return "".join(lines), "".join(err_lines)
