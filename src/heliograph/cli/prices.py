"""``heliograph prices``: recompute stored costs, list unpriced models, check a price."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from heliograph.capture.builder import make_pricebook
from heliograph.capture.enrich import columns_for
from heliograph.cli.location import home_option, location_options, open_store, settings_for
from heliograph.config import Settings
from heliograph.pricing import PROVIDER_IDS, Cost, PriceBook, Usage
from heliograph.pricing.catalog import bundled_providers, genai_prices_version
from heliograph.store import costs as cost_store
from heliograph.store import rollups
from heliograph.store.orgs import list_orgs
from heliograph.store.times import TimeError, parse_time

# Prices that say what a token costs; "local" (free) and "gpu-hour" (by duration) do not.
PER_TOKEN_SOURCES = frozenset({"genai-prices", "override"})


def _since(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return parse_time(value, "since")
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc


@click.group()
def prices() -> None:
    """Prices: recompute costs after price or override changes, find unpriced models."""


@prices.command()
@click.option(
    "--since",
    default=None,
    help="Only requests created at or after (ISO 8601, or epoch seconds or milliseconds).",
)
@location_options
def recompute(since: str | None, home: Path | None, database_url: str | None) -> None:
    """Price stored requests again with the current price data and overrides."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    book = make_pricebook(settings)
    seen = priced = unknown = 0
    for rows in cost_store.iter_for_recompute(engine, _since(since)):
        updates = []
        for row in rows:
            usage = Usage(
                prompt_tokens=row["prompt_tokens"],
                completion_tokens=row["completion_tokens"],
                cached_tokens=row["cached_tokens"],
                cache_write_tokens=row["cache_write_tokens"],
                reasoning_tokens=row["reasoning_tokens"],
            )
            cost = book.cost(
                provider=row["provider"],
                model=row["model_override"] or row["response_model"] or row["model"],
                usage=usage,
                upstream=row["served_by"] or row["upstream"],
                latency_ms=row["latency_ms"],
                at=dt.datetime.fromtimestamp(row["created_at"] / 1000, dt.UTC),
            )
            columns = columns_for(cost, bool(row["cache_hit"]))
            if columns.get("price_ref"):
                columns["price_ref"] = str(columns["price_ref"])[:255]
            updates.append({"id": row["id"], **columns})
            priced += bool(cost.known)
            unknown += not cost.known
        cost_store.update_costs(engine, updates)
        seen += len(rows)
    with engine.begin() as conn:  # dashboards read rollups: rebuild the hours that changed
        rollups.rebuild(conn, _since(since))
    engine.dispose()
    click.echo(f"Recomputed {seen} requests: {priced} priced, {unknown} with no known price.")


@prices.command()
@click.option(
    "--since",
    default=None,
    help="Only requests created at or after (ISO 8601, or epoch seconds or milliseconds).",
)
@location_options
def unpriced(since: str | None, home: Path | None, database_url: str | None) -> None:
    """Models with traffic but no price (add an override with HELIOGRAPH_PRICES)."""
    engine = open_store(settings_for(home, database_url))
    found = False
    for org in list_orgs(engine):
        for row in cost_store.unpriced_models(engine, str(org["id"]), _since(since)):
            found = True
            click.echo(
                f"{org['name']}: {row['provider']}/{row['model']}  "
                f"{row['requests']} requests, {row['prompt_tokens']}+{row['completion_tokens']} tokens"
            )
    engine.dispose()
    if not found:
        click.echo("Every model with traffic has a price.")


@prices.command()
@click.argument("model")
@click.option(
    "--provider",
    default=None,
    help="Provider or upstream name, e.g. openai, anthropic, groq, myllm "
    "[the first one whose price data has MODEL].",
)
@click.option("--prompt-tokens", type=int, default=1_000_000, show_default=True)
@click.option("--completion-tokens", type=int, default=1_000_000, show_default=True)
@home_option(
    "Data directory whose config.toml (price overrides, upstreams) is read "
    "[HELIOGRAPH_HOME, else ~/.heliograph]."
)
def check(
    model: str, provider: str | None, prompt_tokens: int, completion_tokens: int, home: Path | None
) -> None:
    """Show the price that applies to MODEL and what a given usage costs (no store needed)."""
    settings = settings_for(home)
    book = make_pricebook(settings)
    usage = Usage(prompt_tokens, completion_tokens)
    if provider is None:
        found = _priced_under(book, settings, model, usage)
        if not found:
            raise click.ClickException(
                f"no known price for {model!r} under any provider: it is neither in the bundled "
                f"price data (genai-prices {genai_prices_version()}) nor in HELIOGRAPH_PRICES. "
                "Add it to HELIOGRAPH_PRICES, or name its provider with --provider."
            )
        provider, cost = found[0]
        others = ", ".join(name for name, _ in found[1:])
        click.echo(
            f"{model}: found under provider {provider} (no --provider given"
            + (f"; also priced under {others})" if others else ")")
        )
    else:
        cost = book.cost(provider=provider, model=model, usage=usage)
        if not cost.known:
            raise click.ClickException(_no_price(provider, model, cost))
    _show(cost, prompt_tokens, completion_tokens)


def _priced_under(
    book: PriceBook, settings: Settings, model: str, usage: Usage
) -> list[tuple[str, Cost]]:
    """Every provider that prices MODEL per token: Heliograph's upstreams first (the
    built-in ones in their usual order), then the rest of the bundled price data."""
    names = [name for name in settings.resolved_upstreams() if name != "openrouter"]
    covered = {PROVIDER_IDS.get(name, name) for name in names}
    rest = sorted(p.id for p in bundled_providers() if p.id not in covered | {"openrouter"})
    # openrouter last: it also prices any name genai-prices can attribute to a vendor
    found = []
    for name in [*names, *rest, "openrouter"]:
        cost = book.cost(provider=name, model=model, usage=usage)
        if cost.known and cost.source in PER_TOKEN_SOURCES:
            found.append((name, cost))
    return found


def _no_price(provider: str, model: str, cost: Cost) -> str:
    if cost.price_ref:  # a price exists, but not one per token (GPU time, other units)
        return f"no per-token price for {provider}/{model}: {cost.price_ref}"
    return (
        f"no known price for {provider}/{model}: not in the bundled price data (genai-prices "
        f"{genai_prices_version()}) for {provider}, and no HELIOGRAPH_PRICES override matches. "
        "Leave out --provider to look it up under every provider."
    )


def _show(cost: Cost, prompt_tokens: int, completion_tokens: int) -> None:
    click.echo(f"Price: {cost.price_ref}")
    click.echo(
        f"{prompt_tokens} prompt + {completion_tokens} completion tokens = "
        f"${(cost.total_nusd or 0) / 1e9:.9f} (input ${(cost.input_nusd or 0) / 1e9:.9f}, "
        f"output ${(cost.output_nusd or 0) / 1e9:.9f})"
    )
