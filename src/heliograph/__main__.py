"""``python -m heliograph``."""

from heliograph.cli.main import cli

cli()
