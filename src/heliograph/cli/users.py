"""``heliograph users create|list|disable|reset-password``: dashboard accounts."""

from __future__ import annotations

import sys

import click

from heliograph.auth import users as accounts
from heliograph.cli.keys import _engine, _when
from heliograph.store import orgs
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
def create(email: str, role: str, password: str | None, org_id: str | None) -> None:
    """Create an account. A generated password is one-time: it is changed at first login."""
    one_time = False
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password, one_time = accounts.generate_password(), True
    engine = _engine()
    try:
        if org_id is None:
            org_id = orgs.first_org(engine) or orgs.create_org(engine, "default")
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
def list_cmd() -> None:
    """List accounts (never their passwords)."""
    engine = _engine()
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
def disable(email: str) -> None:
    """Disable an account and end its sessions at once."""
    engine = _engine()
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
def reset_password(email: str) -> None:
    """Give an account a new one-time password (printed once)."""
    engine = _engine()
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
