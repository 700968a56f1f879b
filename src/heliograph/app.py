"""``create_app(settings)``: the ASGI application, built with no import-time work.

Gateway paths go straight to the hot-path handler (no framework in between); everything else
(health, the REST API, the dashboard) is a Starlette app. The lifespan opens the store,
runs migrations, loads the key cache, opens this process's spool and the upstream connection
pool, and starts the background tasks (key refresh, and the embedded writer when configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.middleware import Middleware

from heliograph import web
from heliograph.api import alerts as alerts_api
from heliograph.api import analytics as analytics_api
from heliograph.api import budgets as budgets_api
from heliograph.api import costs as costs_api
from heliograph.api import dataset_imports as dataset_imports_api
from heliograph.api import datasets as datasets_api
from heliograph.api import evaluators as evaluators_api
from heliograph.api import experiment_results as experiment_results_api
from heliograph.api import experiments as experiments_api
from heliograph.api import export as export_api
from heliograph.api import feedback as feedback_api
from heliograph.api import health as health_api
from heliograph.api import keys as keys_api
from heliograph.api import online_eval as online_eval_api
from heliograph.api import openapi as openapi_api
from heliograph.api import prompts as prompts_api
from heliograph.api import query as query_api
from heliograph.api import requests as requests_api
from heliograph.api import retention as retention_api
from heliograph.api import traces as traces_api
from heliograph.api import webhooks as webhooks_api
from heliograph.api.health import StoreWatch
from heliograph.api.responses import ApiError, api_error_handler
from heliograph.auth.keys import KeyCache
from heliograph.budgets.cache import BudgetCache
from heliograph.budgets.guard import BudgetGuard
from heliograph.budgets.ledger import make_ledger
from heliograph.capture.builder import make_pricebook
from heliograph.capture.spool import SpoolWriter
from heliograph.capture.writer import Writer, make_writer
from heliograph.config import Settings, load_settings
from heliograph.gateway.budget_check import BudgetCheck
from heliograph.gateway.policies import Policies
from heliograph.gateway.prompt_cache import PromptCache
from heliograph.gateway.proxy import Gateway
from heliograph.gateway.relay import Receive, Scope, Send
from heliograph.gateway.routing import parse_route
from heliograph.gateway.state import RedisState, SharedState, StoreState
from heliograph.store.engine import make_engine, migrate
from heliograph.telemetry import scrape
from heliograph.telemetry.otlp_route import OtlpIngest, is_traces_route
from heliograph.telemetry.prometheus import record_metrics
from heliograph.web.headers import SecurityHeaders

log = logging.getLogger(__name__)
HELICONE_API_PREFIX = "/v1/request/"


def make_upstream_session(settings: Settings) -> aiohttp.ClientSession:
    """The pooled upstream client; tests may pass their own factory to ``create_app``."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class HeliographApp:
    """The app object: owns the Starlette sub-app and, once started, the gateway."""

    def __init__(self, settings: Settings, session_factory: Any = None) -> None:
        self.settings = settings
        self.session_factory = session_factory or make_upstream_session
        self.gateway: Gateway | None = None
        self.ingest: OtlpIngest | None = None
        self.upstreams = settings.resolved_upstreams()
        self.web = Starlette(
            routes=[
                *health_api.routes,
                # Before requests_api: /api/v1/requests/{request_id} would take "export".
                *export_api.routes,
                *query_api.routes,
                *feedback_api.routes,
                *openapi_api.routes,
                *requests_api.routes,
                *keys_api.routes,
                *costs_api.routes,
                *analytics_api.routes,
                *prompts_api.routes,
                *budgets_api.routes,
                *retention_api.routes,
                *dataset_imports_api.routes,  # before datasets_api's items/{item_id}
                *datasets_api.routes,
                *experiments_api.routes,
                *evaluators_api.routes,
                *experiment_results_api.routes,  # /api/v1/experiments/<id>/results ...
                *online_eval_api.routes,
                *webhooks_api.routes,
                *alerts_api.routes,
                *scrape.routes,
                *traces_api.routes,
                *web.routes(),
            ],
            middleware=[Middleware(SecurityHeaders)],
            exception_handlers={ApiError: api_error_handler},
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        state = self.web.state
        engine = make_engine(settings.sqlalchemy_url)
        if settings.auto_migrate:
            await asyncio.to_thread(migrate, engine)
        keys = KeyCache(engine, settings.key_refresh_interval)
        await asyncio.to_thread(keys.load)
        state.engine, state.keys, state.settings = engine, keys, settings
        state.store_watch = StoreWatch(engine)
        spool = SpoolWriter(settings.spool_dir, settings.spool_segment_bytes)
        session = self.session_factory(settings)
        gateway = Gateway(settings, keys, spool, session, self.upstreams)
        shared: SharedState = (
            RedisState(settings.redis_url) if settings.redis_url else StoreState(engine)
        )
        gateway.policies = Policies(gateway.relay, gateway.upstreams, shared)
        prompts = PromptCache(engine, settings.key_refresh_interval)
        try:
            await asyncio.to_thread(prompts.load)
        except Exception as exc:  # the store may be down: traffic first, prompts on reload
            log.warning("could not load prompts: %s", exc)
        gateway.prompts = prompts
        pricebook = make_pricebook(settings)
        budget_cache = BudgetCache(engine, settings.key_refresh_interval)
        try:
            await asyncio.to_thread(budget_cache.load)
        except Exception as exc:  # the store may be down: budgets on the next reload
            log.warning("could not load budgets: %s", exc)
        ledger = make_ledger(engine, settings.redis_url)
        guard = BudgetGuard(ledger, settings.budget_reservation_ttl_s, settings.budget_unpriced)
        gateway.budgets = BudgetCheck(budget_cache, guard, pricebook, settings.budget_output_tokens)
        self.gateway = gateway
        self.ingest = OtlpIngest(settings, keys, spool)
        state.gateway, state.pricebook = gateway, pricebook
        state.budgets, state.ledger = budget_cache, ledger
        tasks = [
            asyncio.create_task(keys.run(), name="key-refresh"),
            asyncio.create_task(prompts.run(), name="prompt-refresh"),
            asyncio.create_task(budget_cache.run(), name="budget-refresh"),
            asyncio.create_task(guard.run(), name="budget-leases"),
        ]
        stop = threading.Event()
        writer_thread = None
        metrics = record_metrics(settings) if settings.writer == "embedded" else None
        state.metrics_registry = scrape.scrape_registry(settings, metrics)
        listener = None
        if settings.metrics_listen:
            listener = scrape.start_listener(settings.metrics_listen, state.metrics_registry)
        if settings.writer == "embedded":
            writer = make_writer(settings, engine, metrics=metrics)
            writer_thread = threading.Thread(
                target=_run_writer, args=(writer, stop), name="heliograph-writer", daemon=True
            )
            writer_thread.start()
        state.writer_stop = stop
        # Everything allocated so far (modules, settings, pools) lives as long as the process:
        # freezing it keeps full garbage collections from scanning it, which would otherwise
        # stall the event loop for tens of milliseconds and show up as a latency tail.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            self.gateway = self.ingest = None
            await gateway.policies.close()
            await gateway.watches.close()
            await gateway.relay.waits.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):  # unused reservations go back at once
                await asyncio.wait_for(guard.release_idle(0), 2.0)
            await ledger.close()
            await session.close()
            spool.close()
            stop.set()
            if writer_thread is not None:
                await asyncio.to_thread(writer_thread.join, 30)
            await asyncio.to_thread(scrape.stop_listener, listener)
            engine.dispose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.gateway is not None:
            path: str = scope["path"]
            if path.startswith(HELICONE_API_PREFIX):  # Helicone's query/feedback API, not OpenAI
                await self.web(scope, receive, send)
                return
            route = parse_route(path, self.upstreams)
            if route is not None and self.ingest is not None and is_traces_route(route):
                await self.ingest(scope, receive, send, route.key)  # OTLP ingest, not OpenAI
                return
            if route is not None:
                await self.gateway.handle(scope, receive, send, route)
                return
        await self.web(scope, receive, send)


def _run_writer(writer: Writer, stop: threading.Event) -> None:
    """Embedded writer: waits for the spool-root lock, then drains until stopped."""
    try:
        while not stop.is_set():
            if writer.acquire():
                try:
                    writer.run(stop)
                finally:
                    writer.release()
                return
            stop.wait(1.0)
    finally:
        writer.close()  # sends what OpenTelemetry export still holds, if on


def create_app(settings: Settings | None = None, *, session_factory: Any = None) -> HeliographApp:
    """Build the ASGI app; nothing touches the disk, network or database until startup."""
    return HeliographApp(settings or load_settings(), session_factory)
