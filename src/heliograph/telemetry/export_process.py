"""OpenTelemetry export in a process of its own, beside the writer process.

Making a span and encoding it with the SDK's OTLP exporter costs 70-140 µs of CPU per record,
about as much as storing the record: done on the writer's thread it halved the writer's
records/s. So the writer process only picks each committed record's span columns (a tuple of
plain values) and puts the batch on a bounded queue; this process, started and supervised by
the writer, makes the spans and runs the SDK's batch processor and exporter. On two cores it
takes the otherwise idle time of the other core; the writer never waits for it (a full queue
drops and counts, as the in-process export does).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from typing import Any

from heliograph.config import load_settings
from heliograph.store.inserts import RecordBatch
from heliograph.telemetry.export import WARN_EVERY_S, SpanExport, make_span_export, rows_to_send

log = logging.getLogger(__name__)

QUEUE_BATCHES = 256  # batches waiting for the export process (up to the writer's batch size)
CLOSE_TIMEOUT_S = 12.0
_STOP = None


def export_main(work: Any, parent: int) -> None:
    """The export process: spans for each batch the writer sends, until told to stop (or the
    writer is gone)."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s otel %(levelname)s %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(5)  # below the gateway, beside the writer
    export = make_span_export(settings, in_process=True)
    if not isinstance(export, SpanExport):
        return
    try:
        while True:
            try:
                item = work.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return  # the writer is gone
                continue
            if item is _STOP:
                return
            rows, bodies = item
            export.send_rows(rows, bodies)
    finally:
        export.close()


class ProcessSpanExport:
    """The writer's side: the same ``send``/``close`` as the in-process export, but the spans
    are made and sent by a child process."""

    def __init__(self, capture_content: bool) -> None:
        self.capture_content = capture_content
        self._ctx = multiprocessing.get_context("spawn")
        self.work: Any = self._ctx.Queue(QUEUE_BATCHES)
        self.process: Any = None
        self.dropped = 0
        self.queued = 0
        self._warned_at = float("-inf")
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self.process = self._ctx.Process(
            target=export_main, args=(self.work, os.getpid()), name="heliograph-otel", daemon=True
        )
        self.process.start()

    def send(self, batch: RecordBatch, inserted: set[str]) -> int:
        rows, bodies = rows_to_send(batch, inserted, self.capture_content)
        if not rows:
            return 0
        if not self.process.is_alive():
            log.error("the OpenTelemetry export process died (code %s); starting another",
                      self.process.exitcode)  # fmt: skip
            self._start()
        try:
            self.work.put_nowait((rows, bodies))
        except queue.Full:
            self._dropped(len(rows))
            return 0
        self.queued += len(rows)
        return len(rows)

    def _dropped(self, count: int) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "OpenTelemetry export process behind (%d batches waiting): %d spans dropped so "
                "far (the records are stored)",
                QUEUE_BATCHES,
                self.dropped,
            )

    def stats(self) -> dict[str, int]:
        return {"queued": self.queued, "dropped": self.dropped}

    def flush(self) -> bool:
        """Wait until the export process has taken everything queued (benchmarks)."""
        deadline = time.monotonic() + 60
        while not self.work.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self.work.empty())

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Let the export process send what it has and stop, within ``timeout``."""
        with contextlib.suppress(ValueError, OSError):
            self.work.put(_STOP, timeout=1.0)
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("OpenTelemetry export process did not stop in %.0f s", timeout)
            self.process.terminate()
            self.process.join(2)
        self.work.close()
