"""The writer as its own process, so record analysis runs on the other core."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from types import FrameType

from heliograph.capture.builder import tune_gc
from heliograph.capture.writer import make_writer
from heliograph.config import load_settings
from heliograph.store.engine import make_engine


def writer_main() -> None:
    """Entry point of the writer process started by ``heliograph serve``."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s writer %(levelname)s %(message)s"
    )
    stop = threading.Event()
    # The request path comes first: under full load the writer yields the CPU and catches up
    # from the spool afterwards (its helper processes inherit the lower priority).
    with contextlib.suppress(OSError):
        os.nice(10)

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    parent = os.getppid()

    def watch_parent() -> None:
        # An orphaned writer would hold the spool lock forever: leave with the server.
        while not stop.wait(1.0):
            if os.getppid() != parent:
                logging.getLogger(__name__).warning("server process gone; writer stopping")
                stop.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    engine = make_engine(settings.sqlalchemy_url)
    writer = make_writer(settings, engine, parallel=True)
    tune_gc()
    while not stop.is_set() and not writer.acquire():
        stop.wait(0.5)
    try:
        writer.run(stop)
    finally:
        writer.release()
        writer.close()
        engine.dispose()
