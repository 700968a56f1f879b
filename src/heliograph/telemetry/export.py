"""Sending committed records to an OpenTelemetry collector, from the writer.

The writer hands over each batch once it is committed; the spans go to the SDK's
``BatchSpanProcessor`` and its OTLP exporter, which batch, retry and send them on their own
thread. The writer never waits for the collector: the queue is bounded, and when it is full
newer spans are dropped and counted (a warning at most once a minute) - the records are safe
in the store whatever happens to their spans. The exporter is configured by the standard
``OTEL_EXPORTER_OTLP_*`` variables, which the SDK reads itself; Heliograph's own settings only
say whether to export and whether to include message content.
"""

from __future__ import annotations

import importlib
import logging
import operator
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from heliograph import __version__
from heliograph.config import Settings, otel_environment
from heliograph.store.inserts import REQUESTS, RecordBatch
from heliograph.telemetry.content import content_attributes
from heliograph.telemetry.spans import COLUMNS, SpanSetup, operation_name, record_span

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_PROTOCOL = "http/protobuf"
WARN_EVERY_S = 60.0
SDK_EXPORT_BATCH = 512
CLOSE_TIMEOUT_S = 10.0  # the writer's supervisor kills it after 30 s
_SOURCE = REQUESTS.names.index("source")
_PICK = operator.itemgetter(*(REQUESTS.names.index(c) for c in COLUMNS))


def rows_to_send(
    batch: RecordBatch, inserted: set[str], capture_content: bool
) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """The span columns of the batch's newly stored gateway records, and their bodies when
    content is captured. Records ingested over OTLP (source "otlp") came from the
    application's own telemetry and are not sent back."""
    rows = [_PICK(r) for r in batch.requests if r[0] in inserted and r[_SOURCE] != "otlp"]
    if not rows or not capture_content:
        return rows, {}
    return rows, {b[0]: b for b in batch.bodies if b[0] in inserted}


class ExportSetupError(Exception):
    """The OTLP exporter asked for cannot be built (an unknown protocol, a missing extra)."""


def protocol(env: Mapping[str, str]) -> str:
    """The OTLP protocol for traces, as the standard variables ask (http/protobuf if unset)."""
    value = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    return (value or DEFAULT_PROTOCOL).strip().lower()


def wanted(mode: str, env: Mapping[str, str]) -> bool:
    """Whether to export: ``on``/``off`` say so; ``auto`` follows the standard variables (an
    endpoint set, the SDK not disabled, the traces exporter not ``none``)."""
    if mode != "auto":
        return mode == "on"
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    """The SDK's OTLP span exporter for the protocol asked for; it reads its endpoint,
    headers, timeout, compression and certificates from the variables itself."""
    asked = protocol(env)
    if asked == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if asked == "grpc":
        try:
            grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
        except ImportError as exc:
            raise ExportSetupError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: "
                "pip install 'heliograph[grpc]' (or use http/protobuf)"
            ) from exc
        exporter: SpanExporter = grpc.OTLPSpanExporter()
        return exporter
    raise ExportSetupError(
        f"OTLP protocol {asked!r} is not supported for export: use http/protobuf or grpc"
    )


def resource() -> Resource:
    """``service.name`` heliograph and its version, which OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES override."""
    ours = Resource.create({SERVICE_NAME: "heliograph", SERVICE_VERSION: __version__})
    return ours.merge(OTELResourceDetector().detect())


def upstream_servers(settings: Settings) -> dict[str, tuple[str, int]]:
    """Upstream name -> (host, port), for ``server.address`` and ``server.port``."""
    out: dict[str, tuple[str, int]] = {}
    for name, config in settings.resolved_upstreams().items():
        try:
            parts = urlsplit(config.url or "")
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if parts.hostname:
            out[name] = (parts.hostname, port)
    return out


class Spans(Protocol):
    """What the writer needs of an export, in this process or in a child one."""

    def send(self, batch: RecordBatch, inserted: set[str]) -> int: ...

    def stats(self) -> dict[str, int]: ...

    def flush(self) -> bool: ...

    def close(self) -> None: ...


class _Counting(SpanExporter):
    """Wraps the real exporter to learn when spans leave the queue and how sending went."""

    def __init__(self, inner: SpanExporter, owner: SpanExport) -> None:
        self.inner = inner
        self.owner = owner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.owner.taken(len(spans))
        result = self.inner.export(spans)
        self.owner.sent_result(len(spans), result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class SpanExport:
    """Turns committed batches into spans and queues them for the exporter's thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        setup: SpanSetup | None = None,
        *,
        queue_size: int = 20_000,
        schedule_delay_ms: float | None = None,
    ) -> None:
        self.setup = setup or SpanSetup(resource=resource())
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self.waiting = 0  # queued, not yet handed to the exporter
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._warned_at = float("-inf")
        self.processor = BatchSpanProcessor(
            _Counting(exporter, self),
            max_queue_size=queue_size,
            schedule_delay_millis=schedule_delay_ms,
            # the SDK's default export batch (512, or OTEL_BSP_MAX_EXPORT_BATCH_SIZE) unless
            # the queue is smaller than that
            max_export_batch_size=queue_size if queue_size < SDK_EXPORT_BATCH else None,
        )

    def send(self, batch: RecordBatch, inserted: set[str]) -> int:
        """Queue the spans of the batch's newly stored gateway records; how many were queued."""
        rows, bodies = rows_to_send(batch, inserted, self.setup.capture_content)
        return self.send_rows(rows, bodies)

    def send_rows(self, rows: list[tuple[Any, ...]], bodies: dict[str, Any]) -> int:
        """Queue the spans of picked rows (``COLUMNS`` order); ``bodies`` by record id when
        content is captured."""
        if not rows:
            return 0
        with self._lock:
            room = max(self.queue_size - self.waiting, 0)
            keep = rows[:room]
            self.waiting += len(keep)
        if len(keep) < len(rows):
            self._dropped(len(rows) - len(keep))
        for values in keep:
            row = dict(zip(COLUMNS, values, strict=True))
            content = None
            if bodies:
                content = content_attributes(bodies.get(values[0]), operation_name(row))
            self.processor.on_end(record_span(row, self.setup, content))
        return len(keep)

    def taken(self, count: int) -> None:
        with self._lock:
            self.waiting = max(self.waiting - count, 0)

    def sent_result(self, count: int, result: SpanExportResult) -> None:
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.sent += count
            else:
                self.failed += count

    def _dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count
            total = self.dropped
            now = time.monotonic()
            warn = now - self._warned_at >= WARN_EVERY_S
            if warn:
                self._warned_at = now
        if warn:
            log.warning(
                "OpenTelemetry export queue full (%d spans): %d spans dropped so far; "
                "the collector is slow or unreachable (the records are stored)",
                self.queue_size,
                total,
            )

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "waiting": self.waiting,
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
            }

    def flush(self) -> bool:
        """Send everything queued now (tests, and before a planned stop)."""
        return self.processor.force_flush()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued and stop, within ``timeout`` seconds (a collector that is down
        must not keep the writer from exiting)."""
        done = threading.Thread(target=self.processor.shutdown, name="otel-export-close")
        done.daemon = True
        done.start()
        done.join(timeout)
        if done.is_alive():
            log.warning(
                "OpenTelemetry export: %d spans not sent at exit (collector too slow)",
                self.stats()["waiting"],
            )


def make_span_export(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    *,
    in_process: bool = True,
) -> Spans | None:
    """The export the settings and the ``OTEL_*`` variables ask for, or None.

    ``exporter`` replaces the OTLP exporter (tests). ``in_process=False`` (the writer process
    of ``heliograph serve``) makes and sends the spans in a child process. An exporter that
    cannot be built is logged and export stays off: records are never held up by their
    telemetry."""
    env = otel_environment() if env is None else env
    if exporter is None and not wanted(settings.otel_export, env):
        return None
    if exporter is None and not in_process:
        try:  # a configuration that cannot work is said here, once
            otlp_exporter(env).shutdown()
        except ExportSetupError as exc:
            log.error("OpenTelemetry export is off: %s", exc)
            return None
        from heliograph.telemetry.export_process import ProcessSpanExport

        return ProcessSpanExport(settings.otel_capture_content)
    if exporter is None:
        try:
            exporter = otlp_exporter(env)
        except ExportSetupError as exc:
            log.error("OpenTelemetry export is off: %s", exc)
            return None
    setup = SpanSetup(resource(), upstream_servers(settings), settings.otel_capture_content)
    return SpanExport(exporter, setup, queue_size=settings.otel_export_queue)


def describe(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """One line for ``heliograph serve`` about export (None when off); raises
    :class:`ExportSetupError` for a configuration that cannot work, so serve stops early."""
    env = otel_environment() if env is None else env
    if not wanted(settings.otel_export, env):
        return None
    asked = protocol(env)
    exporter = otlp_exporter(env)  # raises when it cannot be built
    exporter.shutdown()
    where = next((env[n] for n in ENDPOINT_VARIABLES if env.get(n, "").strip()), None)
    content = "with" if settings.otel_capture_content else "without"
    default = "http://localhost:4318" if asked == "http/protobuf" else "http://localhost:4317"
    return f"OpenTelemetry export: on ({asked} to {where or default}, {content} message content)"
