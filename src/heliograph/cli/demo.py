"""``heliograph demo``: Heliograph with a simulated upstream, a week of history and live traffic.

Its data goes where every command's does (``--home``, else ``HELIOGRAPH_HOME``), so the demo's
records can be read with ``keys``, ``tail`` or ``export`` like any others. With neither, it
uses a new temporary directory: trying the demo must not fill ~/.heliograph with made-up
traffic.

Before serving, it spools the week up to now (or the part of it the store does not hold yet)
as the gateway would have (:mod:`heliograph.demo.history`); the writer stores it in the first
seconds, and the command says when it is in.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import Engine

from heliograph.auth.bootstrap import bootstrap
from heliograph.auth.keys import create_key
from heliograph.auth.users import ensure_admin
from heliograph.cli.banner import aligned, base_urls
from heliograph.cli.location import (
    database_option,
    home_option,
    open_store,
    pick_org,
    settings_for,
    store_name,
)
from heliograph.config import Settings
from heliograph.demo.history import spool_history
from heliograph.demo.models import WEEK_S, Conditions
from heliograph.demo.simulator import Simulator, demo_upstreams, start_simulator
from heliograph.demo.traffic import run_traffic
from heliograph.httpserver import server_options
from heliograph.store.requests import recent_requests

HISTORY_GAP_S = 60.0  # a store this up to date needs no history


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Background:
    """The simulator and the traffic generator on their own event loop, in a thread."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo", daemon=True)
        self.stop = asyncio.Event()

    def start_simulator(self, port: int) -> None:
        self.thread.start()
        started = start_simulator("127.0.0.1", port, self.simulator)
        asyncio.run_coroutine_threadsafe(started, self.loop).result(10)

    def start_traffic(self, base_url: str, key: str) -> None:
        asyncio.run_coroutine_threadsafe(run_traffic(base_url, key, self.stop), self.loop)

    def merge_loaded(self, loaded_until: dict[str, float]) -> None:
        """Tell the simulator which local models the history left loaded (on its loop)."""
        self.loop.call_soon_threadsafe(self.simulator.conditions.merge, loaded_until)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)


def _data_directory(home: Path | None, database_url: str | None) -> tuple[Path, bool]:
    """The demo's home and whether it is a new temporary one (neither --home nor
    HELIOGRAPH_HOME given)."""
    if home is not None:
        return home, False
    found = settings_for(None, database_url)
    if "home" in found.model_fields_set:  # HELIOGRAPH_HOME (or home in config.toml)
        return found.home, False
    return Path(tempfile.mkdtemp(prefix="heliograph-demo-")), True


def history_start(engine: Engine, now: float) -> float:
    """Where the history begins: a week ago, or just after the newest record in the store."""
    week_ago = now - WEEK_S
    newest = recent_requests(engine, int(week_ago * 1000), limit=1)
    if not newest:
        return week_ago
    last = datetime.fromisoformat(str(newest[0]["created_at"]).replace("Z", "+00:00"))
    return max(week_ago, last.timestamp() + 1.0)


def _span(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def _start_history(
    settings: Settings, org_id: str, key_id: str, key: str, since: float, now: float
) -> Future[tuple[int, dict[str, float], Path]] | None:
    """Spool the history in a process of its own, beside the server: the writer stores its
    frames while the rest are being made. None when the store needs none."""
    if since > now - HISTORY_GAP_S:
        return None
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(spool_history, settings, org_id, key_id, key, since, now)
    pool.shutdown(wait=False)  # the process leaves once the history is spooled
    return future


def _announce_history(
    future: Future[tuple[int, dict[str, float], Path]],
    merge: Callable[[dict[str, float]], None],
    span: str,
    began: float,
) -> None:
    """Once the history is spooled, let the live simulator know which local models it left
    loaded; once the writer has drained its directory (it removes it then), say so."""

    def watch() -> None:
        try:
            count, loaded, directory = future.result()
        except Exception as exc:  # the demo goes on without its history
            click.echo(f"  History: could not be made ({exc}).", err=True)
            return
        merge(loaded)
        while directory.exists():
            time.sleep(0.2)
        took = time.perf_counter() - began
        click.echo(
            f"  History stored: {count:,} requests over the last {span} ({took:.1f} s after start)."
        )

    threading.Thread(target=watch, name="demo-history", daemon=True).start()


@click.command()
@click.option("--port", type=int, default=None, help="Port to listen on [8787].")
@home_option("Data directory [HELIOGRAPH_HOME, else a new temporary directory, printed at start].")
@database_option
def demo(port: int | None, home: Path | None, database_url: str | None) -> None:
    """Run Heliograph fed by a built-in SIMULATED upstream: no API key needed.

    It starts with a week of simulated history (what the store does not hold yet), then sends
    live traffic. Data goes to --home, else HELIOGRAPH_HOME, else a new temporary directory
    (kept after exit); the data directory is printed at start. A new store there is said on
    stderr.
    """
    import uvicorn

    from heliograph.app import create_app

    began = time.perf_counter()
    data, temporary = _data_directory(home, database_url)
    password = secrets.token_urlsafe(9)
    sim_port = _free_port()
    settings = settings_for(
        data,
        database_url,
        port=port,
        writer="embedded",
        demo=True,
        upstreams=demo_upstreams(f"http://127.0.0.1:{sim_port}"),
        admin_password=password,
    )
    logging.basicConfig(level="WARNING")
    settings.home.mkdir(parents=True, exist_ok=True)
    now = time.time()
    engine = open_store(settings, create=True)
    try:
        bootstrap(engine)
        admin = ensure_admin(engine, settings)
        org_id = pick_org(engine, settings, None)
        key_id, write_key = create_key(engine, org_id=org_id, name="demo traffic", scope="write")
        since = history_start(engine, now)
    finally:
        engine.dispose()
    history = _start_history(settings, org_id, key_id, write_key, since, now)
    simulator = Simulator(conditions=Conditions(week_start=now - WEEK_S))
    base = settings.base_url()
    click.echo("Heliograph DEMO: every request below goes to a SIMULATED upstream (no real model).")
    rows = []
    if admin is not None:
        rows.append(("  Dashboard:", f"{base}/   log in as {admin.email} / {password}"))
    else:
        rows.append(("  Dashboard:", f"{base}/   (log in with your existing account)"))
    rows.append(("  Write key:", f"{write_key}   (send your own requests; answers are simulated)"))
    rows += [(f"  {name} base URL:", url) for name, url in base_urls(base, write_key).items()]
    for line in aligned(rows):
        click.echo(line)
    span = _span(now - since)
    if history is not None:
        click.echo(
            f"  History: simulating the last {span} of traffic for the writer to store "
            "(said below when it is in)."
        )
    note = "  (a new temporary directory; --home or HELIOGRAPH_HOME to choose)" if temporary else ""
    click.echo(f"  Data directory: {settings.home}{note}")
    if settings.database_url:
        click.echo(f"  Store: {store_name(settings)}")
    background = Background(simulator)
    background.start_simulator(sim_port)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        **server_options(settings),
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        if history is not None:
            _announce_history(history, background.merge_loaded, span, began)
        background.start_traffic(base, write_key)
        click.echo("  Sending demo traffic (Ctrl-C to stop)...")
        await task

    try:
        asyncio.run(serve())
    finally:
        background.close()
