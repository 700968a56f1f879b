"""Start, watch and stop the benchmark's subprocesses (mock upstream, gateway).

Everything the harness starts is registered with a ``Processes`` instance and runs in its own
session (process group), so ``stop_all`` can take down a process together with anything it
forked (e.g. a writer process) and no orphan survives the harness, even on Ctrl-C. This module
also reads ``/proc`` for the figures the harness reports: RSS and CPU time of a process tree and
the owner of a listening port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StartupError(RuntimeError):
    """A subprocess did not come up; the message includes the tail of its log."""


@dataclass
class Started:
    """A subprocess the harness owns, with the file its output goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Owns the subprocesses; ``stop_all`` kills each one's process group."""

    def __init__(self) -> None:
        self.started: list[Started] = []
        self._logs: list[IO[bytes]] = []

    def start(
        self,
        name: str,
        cmd: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stdout_pipe: bool = False,
    ) -> Started:
        log = log_path.open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # own process group; Ctrl-C is handled by us, not them
        )
        started = Started(name, proc, log_path)
        self.started.append(started)
        return started

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM every owned process group, then SIGKILL whatever is left after ``grace_s``."""
        for s in reversed(self.started):
            _signal_group(s.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for s in reversed(self.started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(s.proc, signal.SIGKILL)  # also kills forked helpers left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=2)
        self.started.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # The group id is the pid we started (start_new_session=True). Linux never hands out a pid
    # that is still some group's id, so after the leader is gone this reaches only leftovers of
    # that group (e.g. a forked writer), never an unrelated process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def start_mock(
    procs: Processes, log_dir: Path, port: int = 0, extra: list[str] | None = None
) -> tuple[Started, int]:
    """Start fastmock and return it with the port it printed (``READY <port>``)."""
    cmd = [sys.executable, str(BENCH_DIR / "fastmock.py"), "--port", str(port), *(extra or [])]
    mock = procs.start("mock", cmd, log_dir / "fastmock.log", stdout_pipe=True)
    assert mock.proc.stdout is not None
    line = mock.proc.stdout.readline().decode().strip()  # blocks until READY or exit
    if not line.startswith("READY "):
        mock.proc.wait(timeout=5)
        raise StartupError(f"fastmock did not start ({line!r}):\n{mock.log_tail()}")
    return mock, int(line.split()[1])


def wait_http_ok(url: str, timeout_s: float, proc: Started | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise StartupError(
                f"{proc.name} exited with {proc.proc.returncode} before {url} answered:\n"
                f"{proc.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    tail = f"\n{proc.log_tail()}" if proc is not None else ""
    raise StartupError(f"{url} did not answer 200 within {timeout_s:.0f} s ({last}){tail}")


# -- /proc readings ----------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces; everything after the last ')' is space-separated.
    return raw[raw.rindex(")") + 2 :].split()


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


def children_of(pid: int) -> list[int]:
    """All live descendants of ``pid`` (any depth)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(parents.get(child, []))
    return sorted(out)


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` figure (VmRSS, VmHWM, ...) from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of ``pid`` (live threads only, not its children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in [pid, *children_of(pid)])


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over all CPUs."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0]
        fields = [int(x) for x in first.split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user/nice
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def machine_busy_fraction(window_s: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``window_s`` (0.0 when /proc/stat is unreadable)."""
    busy0, total0 = machine_cpu_seconds()
    time.sleep(window_s)
    busy1, total1 = machine_cpu_seconds()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def wait_idle(
    pid: int, max_wait_s: float = 30.0, busy_fraction: float = 0.05, window_s: float = 0.5
) -> float:
    """Wait until ``pid``'s tree uses under ``busy_fraction`` of a core; return seconds waited.

    Used between benchmarks so a gateway writer still draining the previous run's records
    does not steal CPU from the next measurement.
    """
    start = time.monotonic()
    while time.monotonic() - start < max_wait_s:
        before = tree_cpu_seconds(pid)
        time.sleep(window_s)
        if tree_cpu_seconds(pid) - before < busy_fraction * window_s:
            break
    return time.monotonic() - start


def listening_pids(port: int) -> list[int]:
    """Pids holding a listening TCP socket on ``port`` (needs permission to read their fds)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    pids: list[int] = []
    if not inodes:
        return pids
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                        pids.append(int(entry))
                        break
    return sorted(pids)


@dataclass
class ProcRss:
    """Resident memory of one process, in MB (VmRSS now, VmHWM = peak)."""

    pid: int
    cmd: str
    rss_mb: float
    hwm_mb: float


def proc_rss(pid: int) -> ProcRss:
    return ProcRss(
        pid,
        cmdline(pid)[:160],
        (status_kb(pid, "VmRSS") or 0) / 1024,
        (status_kb(pid, "VmHWM") or 0) / 1024,
    )


def rss_tree(pid: int) -> tuple[ProcRss, list[ProcRss]]:
    """RSS of ``pid`` and, separately, of each of its live descendants."""
    return proc_rss(pid), [proc_rss(k) for k in children_of(pid)]
