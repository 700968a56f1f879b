"""``GET /metrics``: what a Prometheus scrape reads, and who may read it.

A gateway worker answers the scrape. It reads the writer's series (from the multiprocess
files under ``<home>/metrics``, or from the embedded writer's registry) and measures the
spool at scrape time: a backlog is visible even when no writer runs. On the main port the
scrape needs a read key (``Authorization: Bearer``), as the REST API does; the optional
``metrics_listen`` address serves the same series without authentication, for a private
scrape network. No series carries a prompt, an output, a user or a key: only aggregates.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.alerts.metrics import spool_backlog
from heliograph.api.auth import require
from heliograph.api.responses import ApiError
from heliograph.capture.spool import spool_dirs
from heliograph.config import Settings
from heliograph.store.orgs import first_org
from heliograph.telemetry.prometheus import RecordMetrics

log = logging.getLogger(__name__)

# Of each spool directory's backlog, this much is walked frame by frame to count records;
# beyond it the count is extrapolated from the bytes per record seen (a backlog of gigabytes
# while the store is down must not make a scrape read gigabytes).
SCAN_BYTES = 8 * 1024 * 1024


def backlog_records(root: Path, scan_bytes: int = SCAN_BYTES) -> int:
    """Records (finished requests) in the spool that the writer has not committed."""
    total = 0.0
    for spool in spool_dirs(root):
        try:
            ends, scanned, left = spool.count_ends(scan_bytes)
        except FileNotFoundError:  # drained and removed while we looked
            continue
        total += ends + (ends * left / scanned if scanned else 0.0)
    return round(total)


class SpoolCollector(Collector):
    """The spool's backlog and the writer's lag, measured when Prometheus scrapes."""

    def __init__(self, spool_root: Path) -> None:
        self.spool_root = spool_root

    def collect(self) -> Iterator[Metric]:
        try:
            size, oldest_ms = spool_backlog(self.spool_root)
            records = backlog_records(self.spool_root)
        except OSError as exc:  # a directory vanishing mid-walk: report nothing this time
            log.warning("could not measure the spool: %s", exc)
            return
        lag = 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000)
        yield GaugeMetricFamily(
            "heliograph_spool_backlog_bytes", "Spool bytes the writer has not committed.", size
        )
        yield GaugeMetricFamily(
            "heliograph_spool_backlog_records",
            "Finished requests in the spool the writer has not committed (estimated beyond "
            "8 MiB of backlog per gateway process).",
            records,
        )
        yield GaugeMetricFamily(
            "heliograph_writer_lag_seconds",
            "Seconds since the writer last committed a spool directory that still has a "
            "backlog (0 when it has caught up).",
            lag,
        )


def scrape_registry(settings: Settings, local: RecordMetrics | None) -> CollectorRegistry:
    """What a scrape reads: the embedded writer's series (``local``), else the writer
    process's files if there are any, and the spool measured now."""
    if local is not None:
        registry = local.registry
    else:
        registry = CollectorRegistry(auto_describe=True)
        if settings.metrics_dir.is_dir():
            MultiProcessCollector(registry, path=str(settings.metrics_dir))  # type: ignore[no-untyped-call]
    registry.register(SpoolCollector(settings.spool_dir))
    return registry


def reset_metrics_dir(path: Path) -> None:
    """Empty the multiprocess directory, as prometheus_client requires at server start."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def start_listener(listen: str, registry: CollectorRegistry) -> WSGIServer:
    """Serve ``registry`` without authentication on ``host:port`` (a daemon thread)."""
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    log.info("Prometheus metrics on http://%s/metrics (no authentication)", listen)
    return server


def stop_listener(server: WSGIServer | None) -> None:
    """Stop serving (waits for the listener's loop, at most about half a second)."""
    if server is not None:
        server.shutdown()
        server.server_close()


async def metrics(request: Request) -> Response:
    """The Prometheus exposition, for a read (or admin) key of the default organization: the
    series cover the whole server, so another organization's key must not read them."""
    info = await require(request, "read")
    if info.org_id != await run_in_threadpool(first_org, request.app.state.engine):
        raise ApiError(
            403,
            "Metrics cover the whole server: only keys of the default organization read them.",
            "insufficient_scope",
        )
    registry: CollectorRegistry = request.app.state.metrics_registry
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encoder, registry)
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, methods=["GET"])]
