"""Filter options for commands that read records (``export``, ``tail``), made from the fields.

Each URL spelling of ``store.fields`` becomes one option (``user_id`` -> ``--user-id``,
``min_latency`` -> ``--min-latency``, ``property.<name>`` -> ``--property NAME=VALUE``), and
each option's value is read by ``store.filter_params`` exactly as the API reads its
parameter, so a field declared once is an option here too, with the same checks and errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from heliograph.store import fields, filter_params, filters

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(f: F) -> F:
    """Add one option per filter spelling and ``--filter JSON`` (a Helicone tree)."""
    f = click.option(
        "--filter", "tree", metavar="JSON", help="A Helicone filter tree, ANDed with the rest."
    )(f)
    for param, field, op in reversed(list(fields.url_params())):
        if field.kind == "keyed":
            f = click.option(
                f"--{field.param}",
                f"keyed_{field.param}",
                multiple=True,
                metavar="NAME=VALUE",
                help=fields.describe(field, op) + ".",
            )(f)
        else:
            f = click.option(
                fields.cli_option(param), param, help=fields.describe(field, op) + "."
            )(f)
    return f


def where(options: dict[str, Any]) -> filters.Filter:
    """The filter given by ``filter_options``' values; click.BadParameter naming the option."""
    pairs: list[tuple[str, str, str]] = []
    for param, field, _ in fields.url_params():
        if field.kind == "keyed":
            for item in options.get(f"keyed_{field.param}") or ():
                key, eq, value = item.partition("=")
                if not eq or not key:
                    hint = f"--{field.param}"
                    raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=hint)
                pairs.append((f"{field.param}.{key}", value, f"--{field.param}"))
        elif options.get(param):  # as in a URL, an empty value is no condition
            pairs.append((param, options[param], fields.cli_option(param)))
    if options.get("tree"):
        pairs.append((filter_params.TREE, options["tree"], "--filter"))
    items = []
    for name, value, hint in pairs:
        try:
            items.append(filter_params.parse_one(name, value))
        except filters.FilterError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from exc
    return filters.all_of(*items)
