"""Liveness and readiness for orchestrators and load balancers.

``/health/live`` (and the older ``/health``) answers while the process serves HTTP at all.
``/health/ready`` also asks whether this replica should take traffic: the store answered
within ``ready_store_grace_s`` (the gateway keeps serving and spooling through a short outage,
so a blip does not flap readiness) and the spool backlog is under ``ready_max_spool_bytes``
(a writer that cannot keep up, or a store down for long, fills the disk). Each ready call
probes the store at most once a second, off the event loop, with a short timeout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from heliograph.alerts.metrics import spool_backlog
from heliograph.config import Settings

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 2.0


@dataclass
class StoreWatch:
    """When the store last answered, and since when it has not (None: it answers)."""

    engine: Engine
    probed_at: float = float("-inf")
    failing_since: float | None = None
    last_error: str = ""

    def _probe(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def check(self) -> None:
        now = time.monotonic()
        if now - self.probed_at < PROBE_EVERY_S:
            return
        self.probed_at = now
        try:
            await asyncio.wait_for(asyncio.to_thread(self._probe), PROBE_TIMEOUT_S)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if self.failing_since is None:
                self.failing_since = now
            return
        self.failing_since = None

    def down_for(self) -> float:
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    watch: StoreWatch = request.app.state.store_watch
    await watch.check()
    backlog, _oldest = await asyncio.to_thread(spool_backlog, settings.spool_dir)
    problems = []
    down = watch.down_for()
    if down > settings.ready_store_grace_s:
        problems.append(f"store unreachable for {down:.0f} s: {watch.last_error}")
    if backlog > settings.ready_max_spool_bytes:
        problems.append(f"spool backlog {backlog} bytes is over {settings.ready_max_spool_bytes}")
    body = {
        "status": "unready" if problems else "ready",
        "problems": problems,
        "store_down_s": round(down, 1),
        "spool_backlog_bytes": backlog,
    }
    return JSONResponse(body, status_code=503 if problems else 200)


routes = [
    Route("/health", live),
    Route("/health/live", live),
    Route("/health/ready", ready),
]
