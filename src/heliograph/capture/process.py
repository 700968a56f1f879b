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
from heliograph.telemetry.prometheus import multiprocess, record_metrics

WATCH_S = 0.2


class StopAsked:
    """SIGTERM only raises this flag. The handler runs on the main thread, which may be inside
    ``stop.wait()`` holding the Event's lock: ``Event.set()`` from there deadlocked, leaving a
    writer stuck for ever with the spool lock. ``watch`` turns the flag into ``stop.set()``."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self.signals.append(sig)  # atomic, takes no lock


def watch(stop: threading.Event, asked: StopAsked, parent: int) -> None:
    """Stop when asked to, or when the server is gone: an orphaned writer would hold the
    spool lock forever."""
    while not stop.wait(WATCH_S):
        if asked.signals:
            stop.set()
        elif os.getppid() != parent:
            logging.getLogger(__name__).warning("server process gone; writer stopping")
            stop.set()


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

    asked = StopAsked()
    parent = os.getppid()
    threading.Thread(
        target=watch, args=(stop, asked, parent), name="parent-watch", daemon=True
    ).start()
    signal.signal(signal.SIGTERM, asked.on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    engine = make_engine(settings.sqlalchemy_url)
    metrics = None
    if multiprocess():  # the gateway workers read these from <home>/metrics
        metrics = record_metrics(settings)
    else:
        logging.getLogger(__name__).warning("no Prometheus multiprocess directory: no metrics")
    writer = make_writer(settings, engine, parallel=True, metrics=metrics)
    tune_gc()
    while not stop.is_set() and not writer.acquire():
        stop.wait(0.5)
    try:
        writer.run(stop)
    finally:
        writer.release()
        writer.close()
        engine.dispose()
