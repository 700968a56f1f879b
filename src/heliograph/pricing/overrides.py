"""User-configured prices: per-model overrides, enterprise discounts and GPU-hour pricing.

Custom models (fine-tunes, self-hosted names) and negotiated prices are not in any public
database, so operators declare them here. Both classes can be built from plain dicts so the
settings file can hold them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from fnmatch import translate
from fractions import Fraction
from typing import Any

from heliograph.pricing.rates import PriceValue, Rate, TokenRates, exact

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A price for models matching ``model`` (exact name or fnmatch glob, case-insensitive).

    Give per-million-token USD prices, or ``discount_percent`` to take that much off the
    genai-prices price (an enterprise discount). With explicit prices, an unset input or
    output price is 0 and unset cache prices equal the input price (no cache discount).
    """

    model: str
    provider: str | None = None  # matches our provider name or the upstream name
    input_per_mtok: PriceValue | None = None
    output_per_mtok: PriceValue | None = None
    cache_read_per_mtok: PriceValue | None = None
    cache_write_per_mtok: PriceValue | None = None
    discount_percent: PriceValue | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("a price override needs a model name or glob")
        prices = [self.input_per_mtok, self.output_per_mtok]
        prices += [self.cache_read_per_mtok, self.cache_write_per_mtok]
        has_prices = any(price is not None for price in prices)
        if has_prices == (self.discount_percent is not None):
            raise ValueError(f"override {self.model!r}: give prices or discount_percent (not both)")
        for price in prices:
            if price is not None:
                exact(price)
        if self.discount_percent is not None and exact(self.discount_percent) > 100:
            raise ValueError(f"override {self.model!r}: discount_percent must be <= 100")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceOverride:
        return cls(**_checked_fields(cls, data))

    @property
    def is_glob(self) -> bool:
        return bool(_GLOB_CHARS & set(self.model))

    def matches(self, provider: str, upstream: str | None, model: str) -> bool:
        if self.provider is not None and self.provider.lower() not in (provider, upstream):
            return False
        if self.is_glob:
            return re.match(translate(self.model.lower()), model) is not None
        return self.model.lower() == model

    def discount_factor(self) -> Fraction:
        """The multiplier for database prices, e.g. 0.8 for a 20 % discount."""
        return 1 - exact(self.discount_percent or 0) / 100

    def token_rates(self) -> TokenRates:
        input_rate = Rate.per_mtok(self.input_per_mtok or 0)
        return TokenRates(
            input=input_rate,
            output=Rate.per_mtok(self.output_per_mtok or 0),
            cache_read=_rate_or(self.cache_read_per_mtok, input_rate),
            cache_write=_rate_or(self.cache_write_per_mtok, input_rate),
        )

    def describe(self) -> str:
        where = f" on {self.provider}" if self.provider else ""
        return f"override {self.model!r}{where}"


@dataclass(frozen=True, slots=True)
class GpuHourPrice:
    """A self-hosted upstream billed by GPU time: every request pays for its duration."""

    upstream: str
    usd_per_hour: PriceValue

    def __post_init__(self) -> None:
        if not isinstance(self.upstream, str) or not self.upstream.strip():
            raise ValueError("a GPU-hour price needs an upstream name")
        exact(self.usd_per_hour)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GpuHourPrice:
        return cls(**_checked_fields(cls, data))


def _rate_or(value: PriceValue | None, default: Rate) -> Rate:
    return default if value is None else Rate.per_mtok(value)


def _checked_fields(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Reject unknown keys (a typo must not silently drop a price); numbers as Decimal."""
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    return {key: _number(value) for key, value in data.items()}


def _number(value: Any) -> Any:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return Decimal(repr(value))
    return value
