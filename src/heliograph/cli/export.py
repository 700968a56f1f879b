"""``heliograph export``: records from the local store as JSONL or CSV, streamed to a file.

Reads the store directly (no server, no key), a batch at a time, so it exports any number of
rows in constant memory. Without ``--org`` it exports every organization, since whoever can
read the store's settings can read all of it anyway. Its filters are ``cli.filter_options``:
the API's parameters, as options.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click
from sqlalchemy import Engine

from heliograph.cli.filter_options import filter_options, where
from heliograph.cli.location import location_options, open_store, settings_for
from heliograph.store import export as export_store
from heliograph.store.selection import RequestFilter


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(export_store.FORMATS), default="jsonl", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File [stdout]."
)
@click.option("--org", "org_id", default=None, help="Only this organization id [all].")
@filter_options
@click.option(
    "--include-bodies",
    is_flag=True,
    help="Add prompt and output text and the raw request and response bodies.",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None, help="Rows per query.")
@location_options
def export(
    fmt: str,
    output: str | None,
    org_id: str | None,
    include_bodies: bool,
    batch_size: int | None,
    home: Path | None,
    database_url: str | None,
    **filters: Any,
) -> None:
    """Export recorded requests (newest first) as JSONL or CSV.

    Filters are the API's (see the README's table of fields), as options."""
    f = RequestFilter(where=where(filters))
    query = export_store.export_query(org_id, f, include_bodies)
    engine = open_store(settings_for(home, database_url))
    try:
        if output is None:
            _write(engine, query, fmt, batch_size, sys.stdout.buffer)
        else:
            with open(output, "wb") as out:
                _write(engine, query, fmt, batch_size, out)
    finally:
        engine.dispose()


def _write(
    engine: Engine, query: export_store.ExportQuery, fmt: str, batch: int | None, out: IO[bytes]
) -> None:
    for chunk in export_store.export_bytes(engine, query, fmt, batch):
        out.write(chunk)
    out.flush()
