"""``heliograph import``: records from another tool's exports into the local store.

Reads the store directly, like ``export``: no server and no key. Helicone is the first (and
so far only) source; see :mod:`heliograph.importing.helicone` for its shapes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click._termui_impl import ProgressBar

from heliograph.capture.builder import make_pricebook
from heliograph.cli.location import location_options, open_store, pick_org, settings_for
from heliograph.importing.run import BATCH, Importer


@click.group("import")
def import_cmd() -> None:
    """Import records exported from another LLM observability tool."""


@import_cmd.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--org", "org_id", default=None, help="Organization id [the default one].")
@click.option("--dry-run", is_flag=True, help="Read and map everything, store nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=BATCH,
    show_default=True,
    help="Records per transaction.",
)
@location_options
def helicone(
    files: tuple[Path, ...],
    org_id: str | None,
    dry_run: bool,
    batch_size: int,
    home: Path | None,
    database_url: str | None,
) -> None:
    """Import Helicone request exports: pages of POST /v1/request/query-clickhouse (or
    /v1/request/query) saved as JSON (one page per file, or one per line), JSON Lines of
    requests, CSV, or the dashboard's CSV or JSONL export.

    Each request keeps its Helicone id (importing twice adds nothing) and is marked
    source=helicone. Rows that cannot be mapped are counted in the summary, by reason, and
    never stop the import. Exit status 1 only if a file cannot be read at all (missing, or
    neither JSON nor CSV); the other files are still imported."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        importer = Importer(
            engine,
            pick_org(engine, settings, org_id),
            make_pricebook(settings),
            settings.max_stored_body_bytes,
            dry_run=dry_run,
            batch_size=batch_size,
        )
        total = sum(p.stat().st_size for p in files if p.is_file())
        err = sys.stderr
        bar: ProgressBar[int] = click.progressbar(length=max(total, 1), label="Importing", file=err)
        with bar:
            importer.run(files, bar.update)
    finally:
        engine.dispose()
    click.echo(importer.summary.text(dry_run), err=True)
    if importer.summary.unreadable:
        raise SystemExit(1)
