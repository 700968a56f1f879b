"""The ``heliograph`` command. Each subcommand parses arguments and calls library functions."""

from __future__ import annotations

import click

from heliograph.cli.datasets import datasets
from heliograph.cli.demo import demo
from heliograph.cli.experiment import experiment
from heliograph.cli.export import export
from heliograph.cli.imports import import_cmd
from heliograph.cli.keys import keys
from heliograph.cli.openwebui import openwebui
from heliograph.cli.prices import prices
from heliograph.cli.retention import retention
from heliograph.cli.serve import migrate_cmd, serve, settings_cmd
from heliograph.cli.tail import tail
from heliograph.cli.users import users
from heliograph.cli.writer import writer_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="heliograph")
def cli() -> None:
    """Heliograph: an LLM observability gateway. Point your client's base URL at it."""


cli.add_command(serve)
cli.add_command(writer_cmd)
cli.add_command(keys)
cli.add_command(demo)
cli.add_command(export)
cli.add_command(prices)
cli.add_command(migrate_cmd)
cli.add_command(settings_cmd)
cli.add_command(tail)
cli.add_command(users)
cli.add_command(openwebui)
cli.add_command(datasets)
cli.add_command(experiment)
cli.add_command(import_cmd)
cli.add_command(retention)
