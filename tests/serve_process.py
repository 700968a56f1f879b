"""``heliograph serve`` as a real subprocess (its own process group), for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


class ServeProcess:
    def __init__(self, home: Path, port: int, **env: str) -> None:
        self.home = home
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "HELIOGRAPH_HOME": str(home),
            "HELIOGRAPH_WRITER_POLL_INTERVAL": "0.02",
            **env,
        }
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> ServeProcess:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "heliograph", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.pump = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self.pump.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited:\n" + "\n".join(self.lines))
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("serve did not become healthy:\n" + "\n".join(self.lines))

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))

    def key(self, label: str) -> str:
        """A key printed on first start: label is 'admin key' or 'write key'."""
        for line in self.lines:
            if label in line:
                return line.split()[-1]
        raise KeyError(label)

    def kill(self) -> None:
        """SIGKILL the whole process group (server and writer), as an OOM killer would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.pump.join(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.pump.join(10)
