"""``heliograph datasets import|list|show``: datasets in the local store.

Like ``keys`` and ``export``, these read and write the store directly (``--home`` or
``--database-url``; no server, no key), in the first organization unless ``--org`` names
another. ``import`` creates the dataset when it does not exist and adds the file's items a
batch at a time, exactly as the upload API does (duplicates skipped, bad lines reported by
number).
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from heliograph.api.dataset_imports import Gone, import_file
from heliograph.api.datasets import NAME_RULE, name_problem
from heliograph.cli.location import location_options, open_store, pick_org, settings_for
from heliograph.store import datasets as dataset_store
from heliograph.store.requests import iso_ms

ORG_HELP = "Organization id [the first one]."


@click.group()
def datasets() -> None:
    """Datasets for experiments: import JSONL or CSV files, list them, show their items."""


@datasets.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="The file's format [from its extension].",
)
@click.option("--org", "org_id", default=None, help=ORG_HELP)
@location_options
def import_cmd(
    name: str,
    file: Path,
    fmt: str | None,
    org_id: str | None,
    home: Path | None,
    database_url: str | None,
) -> None:
    """Create or extend dataset NAME from FILE (JSONL lines {"inputs": {...}, "messages":
    [...], "expected": "..."}, or CSV with a header row)."""
    if name_problem(name):
        raise click.UsageError(NAME_RULE)
    kind = fmt or ("csv" if file.suffix.lower() == ".csv" else "jsonl")
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        org = pick_org(engine, settings, org_id)
        if dataset_store.get_dataset(engine, org, name) is None:
            dataset_store.create_dataset(engine, org, name, "", "cli")
            click.echo(f"Created dataset {name!r}.", err=True)
        with file.open("rb") as f:
            try:
                report = import_file(engine, org, name, kind, f, "cli")
            except Gone as exc:
                raise click.ClickException(f"dataset {name!r} was deleted meanwhile") from exc
    finally:
        engine.dispose()
    for error in report.errors:
        click.echo(f"line {error.get('line')}: {error['reason']}", err=True)
    click.echo(
        f"Added {report.added} items to {name!r} ({report.skipped} duplicates skipped, "
        f"{report.error_count} bad lines)."
    )
    if report.error_count and not report.added:
        raise SystemExit(1)


@datasets.command("list")
@click.option("--org", "org_id", default=None, help=ORG_HELP)
@location_options
def list_cmd(org_id: str | None, home: Path | None, database_url: str | None) -> None:
    """List datasets with their item counts."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        rows = dataset_store.list_datasets(engine, pick_org(engine, settings, org_id))
    finally:
        engine.dispose()
    click.echo(f"{'NAME':40}  {'ITEMS':>7}  {'UPDATED':24}  DESCRIPTION")
    for r in rows:
        click.echo(
            f"{r['name'][:40]:40}  {r['item_count']:7d}  {iso_ms(r['updated_at']):24}  "
            f"{r['description'][:60]}"
        )


@datasets.command("show")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--org", "org_id", default=None, help=ORG_HELP)
@location_options
def show_cmd(
    name: str, limit: int, org_id: str | None, home: Path | None, database_url: str | None
) -> None:
    """Show a dataset and its first items (one JSON line each)."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        org = pick_org(engine, settings, org_id)
        dataset = dataset_store.get_dataset(engine, org, name)
        if dataset is None:
            raise click.ClickException(f"no dataset {name!r}")
        items, _cursor = dataset_store.list_items(engine, org, name, limit)
    finally:
        engine.dispose()
    click.echo(f"{dataset['name']}: {dataset.get('item_count', len(items))} items", err=True)
    for item in items:
        doc = {k: item[k] for k in ("id", "inputs", "expected", "metadata")}
        click.echo(orjson.dumps(doc).decode())
