"""``heliograph demo``: Heliograph with a simulated upstream and live demo traffic.

Its data goes where every command's does (``--home``, else ``HELIOGRAPH_HOME``), so the demo's
records can be read with ``keys``, ``tail`` or ``export`` like any others. With neither, it
uses a new temporary directory: trying the demo must not fill ~/.heliograph with made-up
traffic.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import tempfile
import threading
from pathlib import Path

import click

from heliograph.auth.bootstrap import bootstrap
from heliograph.auth.keys import create_key
from heliograph.auth.users import ensure_admin
from heliograph.cli.location import (
    database_option,
    home_option,
    open_store,
    pick_org,
    settings_for,
    store_name,
)
from heliograph.demo.simulator import demo_upstreams, start_simulator
from heliograph.demo.traffic import run_traffic
from heliograph.httpserver import server_options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Background:
    """The simulator and the traffic generator on their own event loop, in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo", daemon=True)
        self.stop = asyncio.Event()

    def start_simulator(self, port: int) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start_simulator("127.0.0.1", port), self.loop).result(10)

    def start_traffic(self, base_url: str, key: str) -> None:
        asyncio.run_coroutine_threadsafe(run_traffic(base_url, key, self.stop), self.loop)

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


@click.command()
@click.option("--port", type=int, default=None, help="Port to listen on [8787].")
@home_option("Data directory [HELIOGRAPH_HOME, else a new temporary directory, printed at start].")
@database_option
def demo(port: int | None, home: Path | None, database_url: str | None) -> None:
    """Run Heliograph fed by a built-in SIMULATED upstream: no API key needed.

    Data goes to --home, else HELIOGRAPH_HOME, else a new temporary directory (kept after
    exit); the data directory is printed at start. A new store there is said on stderr.
    """
    import uvicorn

    from heliograph.app import create_app

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
    engine = open_store(settings, create=True)
    try:
        bootstrap(engine)
        admin = ensure_admin(engine, settings)
        org_id = pick_org(engine, settings, None)
        _, write_key = create_key(engine, org_id=org_id, name="demo traffic", scope="write")
    finally:
        engine.dispose()
    base = settings.base_url()
    click.echo("Heliograph DEMO: every request below goes to a SIMULATED upstream (no real model).")
    if admin is not None:
        click.echo(f"  Dashboard: {base}/   log in as {admin.email} / {password}")
    else:
        click.echo(f"  Dashboard: {base}/   (log in with your existing account)")
    note = "  (a new temporary directory; --home or HELIOGRAPH_HOME to choose)" if temporary else ""
    click.echo(f"  Data directory: {settings.home}{note}")
    if settings.database_url:
        click.echo(f"  Store: {store_name(settings)}")
    background = Background()
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
        background.start_traffic(base, write_key)
        click.echo("  Sending demo traffic (Ctrl-C to stop)...")
        await task

    try:
        asyncio.run(serve())
    finally:
        background.close()
