"""``heliograph keys create|list|revoke``: keys of an existing store (never a new one)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from heliograph.auth.keys import SCOPES, create_key
from heliograph.cli.location import location_options, open_store, pick_org, settings_for
from heliograph.store import keys as key_store


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def keys() -> None:
    """Manage API keys (write: send traffic; read: query; admin: everything)."""


@keys.command("create")
@click.option("--name", required=True, help="A label for the key.")
@click.option("--scope", type=click.Choice(SCOPES), required=True)
@click.option("--org", "org_id", default=None, help="Organization id [the first one].")
@location_options
def create(
    name: str, scope: str, org_id: str | None, home: Path | None, database_url: str | None
) -> None:
    """Create a key. The key is printed once, alone on the last line."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        org_id = pick_org(engine, settings, org_id)
        key_id, key = create_key(engine, org_id=org_id, name=name, scope=scope)
    finally:
        engine.dispose()
    click.echo(f"Created {scope} key {name!r} (id {key_id}) in organization {org_id}.", err=False)
    click.echo("Store it now: it is not shown again.")
    click.echo(key)


@keys.command("list")
@location_options
def list_cmd(home: Path | None, database_url: str | None) -> None:
    """List keys (never the keys themselves)."""
    engine = open_store(settings_for(home, database_url))
    rows = key_store.list_keys(engine)
    engine.dispose()
    click.echo(
        f"{'ID':36}  {'PREFIX':10}  {'SCOPE':6}  {'NAME':24}  {'CREATED':19}  {'LAST USED':19}  STATUS"
    )
    for r in rows:
        status = "revoked" if r["revoked_at"] else "active"
        click.echo(
            f"{r['id']:36}  {r['prefix']:10}  {r['scope']:6}  {r['name'][:24]:24}  "
            f"{_when(r['created_at']):19}  {_when(r['last_used_at']):19}  {status}"
        )


@keys.command("revoke")
@click.argument("key_id")
@location_options
def revoke(key_id: str, home: Path | None, database_url: str | None) -> None:
    """Revoke a key by id or prefix; it stops working within seconds."""
    engine = open_store(settings_for(home, database_url))
    count = key_store.revoke_key(engine, key_id)
    engine.dispose()
    if not count:
        raise click.ClickException(f"no active key with id or prefix {key_id!r}")
    click.echo(f"Revoked {count} key(s).")
