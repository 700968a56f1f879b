"""Read-only adapter over genai-prices' bundled price data (never its auto-update).

Maps Heliograph's provider names to genai-prices provider ids, finds the model entry a
request's model name refers to (dated snapshots, ``vendor/model`` names from OpenRouter)
and turns its price entries into exact ``TokenRates``. Lookups here are slow (the OpenRouter
list alone has ~900 regex-matched models); ``PriceBook`` caches their results.

We match models ourselves with genai-prices' own ``Provider.find_model`` instead of calling
``calc_price``: its snapshot keeps unbounded caches keyed by every model name it is asked
about, and it does not report the uncached/cache-read/cache-write parts separately.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.metadata import version
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from heliograph.pricing.rates import (
    FREE,
    ZERO,
    AnyRate,
    Rate,
    TieredRate,
    TokenRates,
)

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, Provider

# Heliograph provider name -> genai-prices provider id. Names not listed are looked up by
# exact genai-prices id (e.g. "cerebras", "perplexity"); "ollama" never reaches this table.
PROVIDER_IDS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "openai",
        "anthropic": "anthropic",
        "groq": "groq",
        "together": "together",
        "openrouter": "openrouter",
        "deepseek": "deepseek",
        "mistral": "mistral",
        "fireworks": "fireworks",
        "xai": "x-ai",
        "gemini": "google",
        "google": "google",
        "azure": "azure",
        "bedrock": "aws",
    }
)

# Vendor prefixes in "vendor/model" names (OpenRouter, LiteLLM) -> genai-prices provider id.
VENDOR_IDS: Mapping[str, str] = MappingProxyType(
    {
        **PROVIDER_IDS,
        "x-ai": "x-ai",
        "mistralai": "mistral",
        "moonshotai": "moonshotai",
        "cohere": "cohere",
    }
)

TOKEN_PRICE_KEYS = frozenset(
    {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok"}
)


@cache
def genai_prices_version() -> str:
    return version("genai-prices")


@cache
def bundled_providers() -> tuple[Provider, ...]:
    """genai-prices' bundled data, loaded once on first use (~0.2 s)."""
    from genai_prices.data import providers

    return tuple(providers)


@dataclass(frozen=True, slots=True)
class PriceChoice:
    """One (possibly time-constrained) price entry of a model."""

    constraint: Any  # genai-prices StartDateConstraint | TimeOfDateConstraint | None
    rates: TokenRates | None  # None: priced in units we do not meter (pages, audio hours)
    note: str  # e.g. "; price from 2025-06-10", appended to price_ref

    def active(self, at: datetime) -> bool:
        return self.constraint is None or bool(self.constraint.active(at))


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The model entry a name resolved to, with its price choices in genai-prices order."""

    provider_id: str
    model_id: str
    choices: tuple[PriceChoice, ...]

    @property
    def ref(self) -> str:
        return f"{self.provider_id}/{self.model_id} (genai-prices {genai_prices_version()})"


def select_choice(choices: tuple[PriceChoice, ...], at: datetime) -> PriceChoice:
    """The last active price wins; the first is the fallback (genai-prices' rule)."""
    for choice in reversed(choices):
        if choice.active(at):
            return choice
    return choices[0]


def find_entry(provider: str, model: str) -> CatalogEntry | None:
    """The price entry for a model served by one of our providers, or None."""
    ref = model.strip().lower().removeprefix("models/")
    provider_id = genai_provider_id(provider)
    if provider_id is not None and provider_id != "openrouter":
        return _in_provider(provider_id, ref) or _own_prefix(provider_id, ref)
    if provider_id == "openrouter" and (entry := _in_provider("openrouter", ref)):
        return entry
    return _by_vendor_prefix(ref) or _by_name(ref)


def genai_provider_id(provider: str) -> str | None:
    name = provider.strip().lower()
    if name in PROVIDER_IDS:
        return PROVIDER_IDS[name]
    return name if _provider(name) is not None else None


def _provider(provider_id: str) -> Provider | None:
    return next((p for p in bundled_providers() if p.id == provider_id), None)


def _in_provider(provider_id: str, ref: str) -> CatalogEntry | None:
    provider = _provider(provider_id)
    if provider is None:
        return None
    model = provider.find_model(ref, all_providers=list(bundled_providers()))
    return None if model is None else _entry(provider.id, model)


def _own_prefix(provider_id: str, ref: str) -> CatalogEntry | None:
    """A redundant vendor prefix ("openai/gpt-4o" sent to OpenAI): retry without it."""
    vendor, _, name = ref.partition("/")
    if name and VENDOR_IDS.get(vendor) == provider_id:
        return _in_provider(provider_id, name)
    return None


def _by_vendor_prefix(ref: str) -> CatalogEntry | None:
    vendor, _, name = ref.partition("/")
    if not name:
        return None
    vendor_id = VENDOR_IDS.get(vendor, vendor)
    return _in_provider(vendor_id, name) or _by_name(name)


def _by_name(ref: str) -> CatalogEntry | None:
    """genai-prices' provider inference: the first provider whose model_match fits."""
    for provider in bundled_providers():
        if provider.model_match is not None and provider.model_match.is_match(ref):
            return _in_provider(provider.id, ref)
    return None


def _entry(provider_id: str, model: ModelInfo) -> CatalogEntry:
    from genai_prices.types import ModelPrice

    if isinstance(model.prices, ModelPrice):
        choices: tuple[PriceChoice, ...] = (
            PriceChoice(None, token_rates(model.prices), _fee_note(model.prices)),
        )
    else:
        choices = tuple(
            PriceChoice(
                c.constraint,
                token_rates(c.prices),
                _constraint_note(c.constraint) + _fee_note(c.prices),
            )
            for c in model.prices
        )
    return CatalogEntry(provider_id, model.id, choices)


def _constraint_note(constraint: Any) -> str:
    start_date = getattr(constraint, "start_date", None)
    if start_date is not None:
        return f"; price from {start_date.isoformat()}"
    start, end = getattr(constraint, "start_time", None), getattr(constraint, "end_time", None)
    if start is not None and end is not None:
        return f"; {start:%H:%M}-{end:%H:%M} UTC price"
    return ""


def token_rates(model_price: Any) -> TokenRates | None:
    """Exact rates of a genai-prices ModelPrice; None if it has no per-token price at all.

    Unpriced cache reads/writes pay the input rate (genai-prices does the same). Prices for
    units our Usage does not carry (web searches, audio, 1-hour cache writes) are not used.
    """
    prices = {k: v for k, v in vars(model_price).items() if v is not None and k[0] != "_"}
    if not prices:
        return FREE  # an explicitly free entry, e.g. ":free" variants
    if not prices.keys() & TOKEN_PRICE_KEYS:
        return None
    rates = {key: _rate(value) for key, value in prices.items() if key in TOKEN_PRICE_KEYS}
    tier_starts = sorted(
        {
            start
            for rate in rates.values()
            if isinstance(rate, TieredRate)
            for start, _ in rate.tiers
        }
    )
    input_rate = rates.get("input_mtok", ZERO)
    return TokenRates(
        input=input_rate,
        output=rates.get("output_mtok", ZERO),
        cache_read=rates.get("cache_read_mtok", input_rate),
        cache_write=rates.get("cache_write_mtok", input_rate),
        reasoning=rates.get("output_reasoning_mtok"),
        tier_starts=tuple(tier_starts),
    )


def _fee_note(model_price: Any) -> str:
    """Flag a per-request fee (Perplexity) that a token-based cost cannot include."""
    return "; per-request fee not included" if getattr(model_price, "requests_kcount", None) else ""


def _rate(value: Any) -> AnyRate:
    from genai_prices.types import TieredPrices

    if isinstance(value, TieredPrices):
        tiers = tuple((tier.start, Rate.per_mtok(tier.price)) for tier in value.tiers)
        return TieredRate(Rate.per_mtok(value.base), tiers)
    return Rate.per_mtok(value)
