"""``heliograph prices``: recompute stored costs, list unpriced models, check a price."""

from __future__ import annotations

import datetime as dt

import click

from heliograph.capture.builder import make_pricebook
from heliograph.capture.enrich import columns_for
from heliograph.config import load_settings
from heliograph.pricing import Usage
from heliograph.store import costs as cost_store
from heliograph.store import rollups
from heliograph.store.engine import make_engine, migrate
from heliograph.store.orgs import list_orgs


def _since(value: str | None) -> int | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


@click.group()
def prices() -> None:
    """Prices: recompute costs after price or override changes, find unpriced models."""


@prices.command()
@click.option("--since", default=None, help="Only requests created at or after (ISO 8601).")
def recompute(since: str | None) -> None:
    """Price stored requests again with the current price data and overrides."""
    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
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
@click.option("--since", default=None, help="Only requests created at or after (ISO 8601).")
def unpriced(since: str | None) -> None:
    """Models with traffic but no price (add an override with HELIOGRAPH_PRICES)."""
    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
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
@click.option("--provider", default="openai", show_default=True)
@click.option("--prompt-tokens", type=int, default=1_000_000, show_default=True)
@click.option("--completion-tokens", type=int, default=1_000_000, show_default=True)
def check(model: str, provider: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Show the price that applies to MODEL and what a given usage costs."""
    book = make_pricebook(load_settings())
    cost = book.cost(provider=provider, model=model, usage=Usage(prompt_tokens, completion_tokens))
    if not cost.known:
        raise click.ClickException(f"no known price for {provider}/{model} ({cost.price_ref})")
    assert cost.total_nusd is not None
    click.echo(f"{cost.price_ref}")
    click.echo(
        f"{prompt_tokens} prompt + {completion_tokens} completion tokens = "
        f"${cost.total_nusd / 1e9:.9f} (input ${(cost.input_nusd or 0) / 1e9:.9f}, "
        f"output ${(cost.output_nusd or 0) / 1e9:.9f})"
    )
