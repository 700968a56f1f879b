"""Where a command's data lives: one rule for every command, and opening the store it names.

The rule: ``--home`` (else ``HELIOGRAPH_HOME``, else ~/.heliograph) picks the data directory
and its ``config.toml``; ``--database-url`` (else ``HELIOGRAPH_DATABASE_URL``, else
``database_url`` in that config.toml, else SQLite in the home) picks the store. It is declared
here once, as click options, so every command takes the same flags with the same meaning.

Only ``serve``, ``demo`` and ``migrate`` create a store, and they say so on stderr. Every other
command refuses a home or database without Heliograph's schema, naming what it looked at:
silently creating an empty store (and an organization in it) made a mistyped home look like
lost data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from heliograph.config import Settings, load_settings
from heliograph.store import orgs
from heliograph.store.engine import alembic_config, current_revision, make_engine, migrate

F = TypeVar("F", bound=Callable[..., Any])

HOME_HELP = (
    "Data directory: SQLite store, spool and config.toml [HELIOGRAPH_HOME, else ~/.heliograph]."
)
DATABASE_HELP = (
    "Store URL, e.g. postgresql://user@host/db [HELIOGRAPH_DATABASE_URL, else database_url "
    "in config.toml, else SQLite in the home]."
)


def home_option(help_text: str = HOME_HELP) -> Callable[[F], F]:
    """``--home``: the data directory, and the directory whose config.toml is read."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=help_text,
    )


def database_option(f: F) -> F:
    """``--database-url``: the store, when it is not SQLite in the home."""
    return click.option("--database-url", default=None, metavar="URL", help=DATABASE_HELP)(f)


def location_options(f: F) -> F:
    """Both ``--home`` and ``--database-url``: for every command that opens the store."""
    return home_option()(database_option(f))


def settings_for(home: Path | None, database_url: str | None = None, **flags: Any) -> Settings:
    """Settings by the one rule: flags, then environment, then config.toml in the home."""
    if home is not None:
        home = home.expanduser().absolute()
    try:
        return load_settings(home=home, database_url=database_url, **flags)
    except ValidationError as exc:
        raise click.ClickException(settings_problems(exc)) from None


def settings_problems(exc: ValidationError) -> str:
    """A settings error as a person reads it: each bad setting, its environment variable, and
    what is wrong (pydantic's own text, without its traceback and documentation link)."""
    lines = ["invalid settings (flags, HELIOGRAPH_* variables or config.toml):"]
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        env = f"HELIOGRAPH_{str(error['loc'][0]).upper()}" if error["loc"] else ""
        lines.append(f"  {name}{f' ({env})' if env else ''}: {message}")
    return "\n".join(lines)


def store_name(settings: Settings) -> str:
    """The store as a person would look for it: the SQLite file, or the URL (no password)."""
    url = settings.redacted()["database_url"]
    return str(url) if url else str(settings.home / "heliograph.db")


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _missing(settings: Settings) -> click.ClickException:
    return click.ClickException(
        f"no Heliograph store at {store_name(settings)} (home: {settings.home}). "
        "Point this command at your data with --home or --database-url (or HELIOGRAPH_HOME, "
        "HELIOGRAPH_DATABASE_URL), or create the store with `heliograph serve` or "
        "`heliograph migrate`."
    )


def open_store(settings: Settings, *, create: bool = False, revision: str = "head") -> Engine:
    """An engine on the store, its schema brought to ``revision``.

    Without ``create`` a store with no schema is an error and nothing is written: a missing
    SQLite file is not even opened (opening would create it). With ``create`` a new store is
    announced on stderr, so a mistyped home or URL is seen at once.
    """
    name = store_name(settings)
    path = _sqlite_file(settings.sqlalchemy_url)
    if path is not None and not path.exists() and not create:
        raise _missing(settings)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        current = current_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise click.ClickException(f"cannot open the store at {name}: {exc.orig}") from exc
    if current is None:
        if not create:
            engine.dispose()
            raise _missing(settings)
        click.echo(f"Creating a new store at {name}", err=True)
    target = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    if current is not None and revision == "head" and current != target:
        click.echo(f"Upgrading the store at {name} from revision {current} to {target}", err=True)
    if current is None or current != target or revision != "head":
        migrate(engine, revision)
    return engine


def pick_org(engine: Engine, settings: Settings, org_id: str | None) -> str:
    """The organization a command acts on: the one named, else the first; never a new one
    (only ``serve`` and ``demo`` create the default organization, on first start)."""
    known = [str(org["id"]) for org in orgs.list_orgs(engine)]
    if org_id is None:
        if not known:
            raise click.ClickException(
                f"the store at {store_name(settings)} has no organization yet: "
                "`heliograph serve` creates the default one on its first start."
            )
        return known[0]
    if org_id not in known:
        raise click.ClickException(
            f"no organization with id {org_id!r} in the store at {store_name(settings)}"
        )
    return org_id
