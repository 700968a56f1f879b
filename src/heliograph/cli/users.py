"""``heliograph users create|list|disable|reset-password``: accounts of an existing store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from heliograph.auth import users as accounts
from heliograph.cli.keys import _when
from heliograph.cli.location import location_options, open_store, pick_org, settings_for
from heliograph.store import users as user_store


@click.group()
def users() -> None:
    """Manage dashboard accounts (admin: everything; viewer: read-only)."""


@users.command("create")
@click.option("--email", required=True, help="Login email.")
@click.option("--role", type=click.Choice(accounts.ROLES), default="viewer", show_default=True)
@click.option(
    "--password",
    default=None,
    help="Password [prompted on a terminal; otherwise a one-time password is generated].",
)
@click.option("--org", "org_id", default=None, help="Organization id [the first one].")
@location_options
def create(
    email: str,
    role: str,
    password: str | None,
    org_id: str | None,
    home: Path | None,
    database_url: str | None,
) -> None:
    """Create an account. A generated password is one-time: it is changed at first login."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)  # first: nobody types a password for a missing store
    one_time = False
    try:
        org_id = pick_org(engine, settings, org_id)
        if password is None:
            if sys.stdin.isatty():
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            else:
                password, one_time = accounts.generate_password(), True
        accounts.create_user(
            engine, org_id=org_id, email=email, role=role, password=password, one_time=one_time
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"Created {role} {accounts.check_email(email)} in organization {org_id}.")
    if one_time:
        click.echo("One-time password (shown once; a new one is chosen at first login):")
        click.echo(password)


@users.command("list")
@location_options
def list_cmd(home: Path | None, database_url: str | None) -> None:
    """List accounts (never their passwords)."""
    engine = open_store(settings_for(home, database_url))
    rows = user_store.list_users(engine)
    engine.dispose()
    click.echo(f"{'EMAIL':32}  {'ROLE':6}  {'ORG':16}  {'CREATED':19}  {'LAST LOGIN':19}  STATUS")
    for r in rows:
        status = "disabled" if r["disabled_at"] else "active"
        click.echo(
            f"{r['email'][:32]:32}  {r['role']:6}  {r['org_name'][:16]:16}  "
            f"{_when(r['created_at']):19}  {_when(r['last_login_at']):19}  {status}"
        )


@users.command("disable")
@click.argument("email")
@location_options
def disable(email: str, home: Path | None, database_url: str | None) -> None:
    """Disable an account and end its sessions at once."""
    engine = open_store(settings_for(home, database_url))
    try:
        user = user_store.find_by_email(engine, email.strip().lower())
        if user is None:
            raise click.ClickException(f"no user with email {email!r}")
        if not user_store.disable_user(engine, user["id"]):
            raise click.ClickException(f"{email} is already disabled")
    finally:
        engine.dispose()
    click.echo(f"Disabled {user['email']}; their sessions have ended.")


@users.command("reset-password")
@click.argument("email")
@location_options
def reset_password(email: str, home: Path | None, database_url: str | None) -> None:
    """Give an account a new one-time password (printed once)."""
    engine = open_store(settings_for(home, database_url))
    try:
        user = user_store.find_by_email(engine, email.strip().lower())
        if user is None:
            raise click.ClickException(f"no user with email {email!r}")
        password = accounts.generate_password()
        accounts.set_password(engine, user["id"], password, one_time=True)
    finally:
        engine.dispose()
    click.echo(f"New one-time password for {user['email']} (shown once):")
    click.echo(password)
