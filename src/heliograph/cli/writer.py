"""``heliograph writer``: the writer alone, for deployments that separate it from the gateway.

The spool is local files, so the writer runs where the gateway's home is (the same machine,
or a volume both containers mount), beside a ``heliograph serve`` started with
``HELIOGRAPH_WRITER=off``. It is the same writer process ``serve`` supervises (restarted if it
dies), so settings, Prometheus series and budget settlement behave the same. Only one writer
drains a home at a time: a second one waits for the spool lock and takes over if the first
stops.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from heliograph.capture.process import StopAsked, writer_main
from heliograph.cli.location import location_options, open_store, settings_for, store_name
from heliograph.config import export_environment
from heliograph.jobs.supervisor import Supervisor


@click.command("writer")
@location_options
def writer_cmd(home: Path | None, database_url: str | None) -> None:
    """Run only the writer: store what the gateway spooled in this home, until stopped
    (SIGTERM or Ctrl-C). Pair it with `heliograph serve` run with HELIOGRAPH_WRITER=off on
    the same home."""
    settings = settings_for(home, database_url)
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)  # its Prometheus series
    open_store(settings, create=True).dispose()  # migrated before the first batch
    click.echo(f"Writer: draining {settings.spool_dir} into {store_name(settings)}")
    click.echo("  (if another writer holds this home's spool, this one waits and takes over)")
    export_environment(settings.model_copy(update={"writer": "external", "auto_migrate": False}))
    asked = StopAsked()  # a flag, not an Event: see StopAsked
    signal.signal(signal.SIGTERM, asked.on_signal)
    signal.signal(signal.SIGINT, asked.on_signal)
    supervisor = Supervisor(writer_main, "writer")
    supervisor.start()
    try:
        while not asked.signals:
            time.sleep(0.2)
    finally:
        supervisor.stop()
        click.echo("Writer stopped.")
