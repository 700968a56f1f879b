"""``heliograph export``: records from the local store as JSONL or CSV, streamed to a file.

Reads the store directly (no server, no key), a batch at a time, so it exports any number of
rows in constant memory. Without ``--org`` it exports every organization, since whoever can
read the store's settings can read all of it anyway.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click
import orjson
from sqlalchemy import Engine

from heliograph.cli.location import location_options, open_store, settings_for
from heliograph.store import export as export_store
from heliograph.store import filters
from heliograph.store.requests import RequestFilter


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return filters.to_epoch_ms(value, name)
    except filters.FilterError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{name}") from exc


def _properties(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--property")
        out[name.lower()] = value
    return out


def _tree(value: str | None) -> filters.Filter | None:
    if value is None:
        return None
    try:
        return filters.parse(value if value.strip() == "all" else orjson.loads(value))
    except (orjson.JSONDecodeError, filters.FilterError) as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from exc


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(export_store.FORMATS), default="jsonl", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File [stdout]."
)
@click.option("--org", "org_id", default=None, help="Only this organization id [all].")
@click.option("--since", help="From this time (ISO 8601 or epoch seconds), inclusive.")
@click.option("--until", help="Up to this time (ISO 8601 or epoch seconds), exclusive.")
@click.option("--model")
@click.option("--provider")
@click.option("--user-id")
@click.option("--session-id")
@click.option("--status", type=click.IntRange(0, 999))
@click.option("--state", help="ok, error, cancelled or interrupted.")
@click.option("--property", "props", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option(
    "--filter", "tree", metavar="JSON", help="A Helicone filter tree, ANDed with the rest."
)
@click.option("--include-bodies", is_flag=True, help="Add request and response bodies.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None, help="Rows per query.")
@location_options
def export(
    fmt: str,
    output: str | None,
    org_id: str | None,
    since: str | None,
    until: str | None,
    model: str | None,
    provider: str | None,
    user_id: str | None,
    session_id: str | None,
    status: int | None,
    state: str | None,
    props: tuple[str, ...],
    tree: str | None,
    include_bodies: bool,
    batch_size: int | None,
    home: Path | None,
    database_url: str | None,
) -> None:
    """Export recorded requests (newest first) as JSONL or CSV."""
    f = RequestFilter(
        model=model,
        provider=provider,
        user_id=user_id,
        session_id=session_id,
        status=status,
        state=state,
        since_ms=_time(since, "since"),
        until_ms=_time(until, "until"),
        properties=_properties(props),
        where=_tree(tree),
    )
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
