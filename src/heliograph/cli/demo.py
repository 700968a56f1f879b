"""``heliograph demo``: Heliograph with a simulated upstream and live demo traffic."""

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
from heliograph.config import load_settings
from heliograph.demo.simulator import start_simulator
from heliograph.demo.traffic import run_traffic
from heliograph.store.engine import make_engine, migrate
from heliograph.store.orgs import first_org


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


@click.command()
@click.option("--port", type=int, default=8787, show_default=True)
@click.option("--home", default=None, help="Data directory [a new temporary directory].")
def demo(port: int, home: str | None) -> None:
    """Run Heliograph fed by a built-in SIMULATED upstream: no API key needed."""
    import uvicorn

    from heliograph.app import create_app

    data = Path(home) if home else Path(tempfile.mkdtemp(prefix="heliograph-demo-"))
    password = secrets.token_urlsafe(9)
    sim_port = _free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    settings = load_settings(
        home=data,
        port=port,
        database_url=None,
        writer="embedded",
        demo=True,
        upstreams={
            "openai": {"url": f"{sim}/openai/v1"},
            "anthropic": {"url": f"{sim}/anthropic", "protocol": "anthropic"},
            "ollama": {"url": f"{sim}/ollama", "protocol": "ollama"},
        },
        admin_password=password,
    )
    logging.basicConfig(level="WARNING")
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    bootstrap(engine)
    admin = ensure_admin(engine, settings)
    org_id = first_org(engine)
    assert org_id is not None
    _, write_key = create_key(engine, org_id=org_id, name="demo traffic", scope="write")
    engine.dispose()
    base = settings.base_url()
    click.echo("Heliograph DEMO: every request below goes to a SIMULATED upstream (no real model).")
    if admin is not None:
        click.echo(f"  Dashboard: {base}/   log in as {admin.email} / {password}")
    else:
        click.echo(f"  Dashboard: {base}/   (log in with your existing account)")
    click.echo(f"  Data directory: {data}")
    background = Background()
    background.start_simulator(sim_port)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=port, log_level="warning", lifespan="on")
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
