"""``heliograph openwebui``: the exact Open WebUI settings for this Heliograph.

It reads only the settings (the same ``--home`` / ``--database-url`` rule as every command)
and never the store: keys are stored hashed, so the write key is a placeholder unless given
with ``--key``. What it prints is built by :mod:`heliograph.web.openwebui_setup`, the same
code as the dashboard's Open WebUI page.
"""

from __future__ import annotations

from pathlib import Path

import click

from heliograph.auth.keys import looks_like_key
from heliograph.cli.location import location_options, settings_for
from heliograph.web.openwebui_setup import as_docker, as_env, as_json, build_setup


@click.command("openwebui")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["env", "json", "docker"]),
    default="env",
    show_default=True,
    help="env: lines bash can source (notes and admin-panel steps as comments); json: all of "
    "it as one JSON document; docker: a `docker run` line for Open WebUI.",
)
@click.option(
    "--key",
    default=None,
    metavar="WRITE_KEY",
    help="A Heliograph write key to fill in [default: <write-key> placeholders].",
)
@click.option(
    "--show-secret",
    is_flag=True,
    help="Print the Open WebUI JWT secret itself (else a placeholder and where it is set).",
)
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    help="The address Open WebUI reaches Heliograph at [HELIOGRAPH_PUBLIC_URL, else "
    "http://<host>:<port>].",
)
@location_options
def openwebui(
    fmt: str,
    key: str | None,
    show_secret: bool,
    public_url: str | None,
    home: Path | None,
    database_url: str | None,
) -> None:
    """Print Open WebUI's settings for both connections (OpenAI and Ollama) through Heliograph:
    base URLs, keys, custom headers, user info forwarding and the admin-panel steps."""
    if key is not None:
        key = key.strip()
        if not looks_like_key(key):
            raise click.BadParameter(
                "not a Heliograph key (they start with hg_); a provider key goes in "
                "OPENAI_API_KEYS, which this command fills in for you",
                param_hint="--key",
            )
    settings = settings_for(home, database_url, public_url=public_url)
    setup = build_setup(settings, key=key, show_secret=show_secret, docker=fmt == "docker")
    if fmt == "json":
        click.echo(as_json(setup))
    elif fmt == "docker":
        click.echo(as_docker(setup), nl=False)
    else:
        click.echo(as_env(setup), nl=False)
