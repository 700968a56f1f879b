"""``heliograph keys create|list|revoke``."""

from __future__ import annotations

import datetime as dt

import click
from sqlalchemy import Engine

from heliograph.auth.keys import SCOPES, create_key
from heliograph.config import load_settings
from heliograph.store import keys as key_store
from heliograph.store import orgs
from heliograph.store.engine import make_engine, migrate


def _engine() -> Engine:
    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    return engine


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
def create(name: str, scope: str, org_id: str | None) -> None:
    """Create a key. The key is printed once, alone on the last line."""
    engine = _engine()
    if org_id is None:
        org_id = orgs.first_org(engine) or orgs.create_org(engine, "default")
    key_id, key = create_key(engine, org_id=org_id, name=name, scope=scope)
    engine.dispose()
    click.echo(f"Created {scope} key {name!r} (id {key_id}) in organization {org_id}.", err=False)
    click.echo("Store it now: it is not shown again.")
    click.echo(key)


@keys.command("list")
def list_cmd() -> None:
    """List keys (never the keys themselves)."""
    engine = _engine()
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
def revoke(key_id: str) -> None:
    """Revoke a key by id or prefix; it stops working within seconds."""
    engine = _engine()
    count = key_store.revoke_key(engine, key_id)
    engine.dispose()
    if not count:
        raise click.ClickException(f"no active key with id or prefix {key_id!r}")
    click.echo(f"Revoked {count} key(s).")
