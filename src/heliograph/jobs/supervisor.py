"""Keeps a child process of ``heliograph serve`` alive: the writer, the job process.

One class for both, so a crash of either is handled the same way: logged with its exit code
and the process started again after a short pause, until the server stops.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable

log = logging.getLogger("heliograph")


class Supervisor:
    """Runs ``target`` in a spawned process named ``name``; restarts it if it dies."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.target = target
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"{name}-supervisor", daemon=True)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _spawn(self) -> None:
        self._process = self._ctx.Process(target=self.target, name=f"heliograph-{self.name}")
        self._process.start()

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self._process is not None and not self._process.is_alive():
                log.error(
                    "%s process exited (code %s); restarting", self.name, self._process.exitcode
                )
                time.sleep(0.5)
                if not self._stopping.is_set():
                    self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(30)
            if self._process.is_alive():
                self._process.kill()
