"""``heliograph serve``, ``heliograph migrate`` and ``heliograph settings``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from heliograph.alerts import jobs as alert_jobs
from heliograph.alerts.webhook_config import sync_config_webhooks
from heliograph.auth.bootstrap import bootstrap
from heliograph.auth.users import ensure_admin
from heliograph.budgets.config import sync_budgets
from heliograph.capture.process import writer_main
from heliograph.cli.banner import client_lines
from heliograph.cli.location import location_options, open_store, settings_for, store_name
from heliograph.config import export_environment, settings_markdown, settings_table
from heliograph.httpserver import server_options
from heliograph.jobs.process import jobs_main
from heliograph.jobs.supervisor import Supervisor
from heliograph.store.engine import current_revision
from heliograph.telemetry import scrape
from heliograph.telemetry.export import ExportSetupError, describe

log = logging.getLogger("heliograph")


@click.command()
@click.option("--host", default=None, help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [8787].")
@click.option("--workers", type=int, default=None, help="Gateway worker processes [1].")
@location_options
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    home: Path | None,
    database_url: str | None,
) -> None:
    """Run the gateway, the API and the writer (a process beside the gateway workers).

    Creates the store (and its default organization and first keys) when there is none,
    and says so on stderr.
    """
    import uvicorn

    settings = settings_for(home, database_url, host=host, port=port, workers=workers)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    if settings.log_level != "debug":  # each migration step would push the banner off screen
        logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = open_store(settings, create=True)
    first = bootstrap(engine)
    admin = ensure_admin(engine, settings)
    sync_budgets(engine, settings)
    sync_config_webhooks(engine, settings)
    alert_jobs.sync_config(engine, settings)  # [[alerts.*]] of config.toml, before serving
    engine.dispose()
    base = settings.base_url()
    if first is not None:
        click.echo("First start: created the default organization and two keys (shown once).")
        click.echo(f"  admin key (read + manage): {first.admin_key}")
        click.echo(f"  write key (send traffic):  {first.write_key}")
    for line in client_lines(base, first.write_key if first is not None else "<write-key>"):
        click.echo(line)
    if admin is not None:
        click.echo(f"Dashboard: {base}/ (log in as {admin.email})")
        if admin.password is not None:
            click.echo(
                f"  one-time password (shown once, change it at first login): {admin.password}"
            )
        else:
            click.echo("  with the password from HELIOGRAPH_ADMIN_PASSWORD")
    click.echo(f"Store: {store_name(settings)} (home: {settings.home})")
    try:  # the writer process exports; a setup that cannot work stops here, not there
        otel = describe(settings)
    except ExportSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    if otel is not None:
        click.echo(otel)
    # The writer runs beside the server, unless it is switched off (records then wait in the
    # spool until a server with a writer starts on the same home).
    writer = "off" if settings.writer == "off" else "external"
    if writer == "off":
        click.echo("Writer: off (HELIOGRAPH_WRITER=off): records stay in the spool.")
    # Counters of the previous run go (prometheus_client's rule), unless a separate
    # `heliograph writer` may be counting there now; the listener, if any, is this
    # process's, so the gateway workers do not each try to bind its address.
    if writer != "off":
        scrape.reset_metrics_dir(settings.metrics_dir)
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    handed = {"writer": writer, "auto_migrate": False, "metrics_listen": None}
    export_environment(settings.model_copy(update=handed))
    listener = None
    if settings.metrics_listen:
        listener = scrape.start_listener(
            settings.metrics_listen, scrape.scrape_registry(settings, None)
        )
        click.echo(f"Prometheus metrics: http://{settings.metrics_listen}/metrics (no auth)")
    supervisors = [Supervisor(writer_main, "writer")] if writer == "external" else []
    if settings.jobs == "on":
        supervisors.append(Supervisor(jobs_main, "jobs"))
    else:
        click.echo("Jobs: off (HELIOGRAPH_JOBS=off): queued experiments wait for another server.")
    for supervisor in supervisors:
        supervisor.start()
    try:
        uvicorn.run(
            "heliograph.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=settings.access_log,
            loop="uvloop",
            lifespan="on",
            **server_options(settings),
            timeout_graceful_shutdown=10,
        )
    finally:
        for supervisor in supervisors:
            supervisor.stop()
        scrape.stop_listener(listener)


@click.command("migrate")
@location_options
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate_cmd(home: Path | None, database_url: str | None, revision: str) -> None:
    """Create or upgrade the store's schema (creating one is said on stderr)."""
    engine = open_store(settings_for(home, database_url), create=True, revision=revision)
    try:
        click.echo(f"Store schema at revision {current_revision(engine)}.")
    finally:
        engine.dispose()


@click.command("settings")
@click.option("--markdown", is_flag=True, help="Print the settings reference table instead.")
@location_options
def settings_cmd(markdown: bool, home: Path | None, database_url: str | None) -> None:
    """Show the effective settings (secrets hidden)."""
    if markdown:
        click.echo(settings_markdown())
        return
    values = settings_for(home, database_url).redacted()
    for env, _type, _default, help_text in settings_table():
        name = env.removeprefix("HELIOGRAPH_").lower()
        click.echo(f"{env} = {values.get(name)!r}")
        click.echo(f"    {help_text}")
