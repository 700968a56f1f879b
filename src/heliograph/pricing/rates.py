"""Exact per-token rates and the one rounding rule that turns them into nano-USD.

Prices are published in USD per million tokens with a few decimals (0.075, 2.5, 0.0028).
Floats cannot hold them exactly, so a rate is kept as an exact fraction of nano-USD per
token and every part of a cost is ``round_half_even(tokens * rate)``: exact until the single
rounding step, integers afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

NUSD_PER_USD = 1_000_000_000
TOKENS_PER_MTOK = 1_000_000

PriceValue = Decimal | float | int | str


def round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even (banker's rounding); denominator > 0."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        quotient += 1
    return quotient


def exact(value: PriceValue) -> Fraction:
    """A price or quantity as an exact fraction; floats are read as their shortest repr."""
    if isinstance(value, bool):
        raise TypeError("a price cannot be a bool")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"price must be finite, got {value!r}")
        value = repr(value)
    try:
        number = Fraction(Decimal(value)) if isinstance(value, str) else Fraction(value)
    except (ArithmeticError, ValueError) as exc:
        raise ValueError(f"not a finite price: {value!r}") from exc
    if number < 0:
        raise ValueError(f"price must not be negative, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Rate:
    """Exact price of one token in nano-USD: num / den."""

    num: int
    den: int

    @classmethod
    def per_mtok(cls, usd: PriceValue) -> Rate:
        """The rate for a price in USD per million tokens."""
        return cls.of(exact(usd) * NUSD_PER_USD / TOKENS_PER_MTOK)

    @classmethod
    def of(cls, nusd_per_token: Fraction) -> Rate:
        return cls(nusd_per_token.numerator, nusd_per_token.denominator)

    def scaled(self, factor: Fraction) -> Rate:
        return Rate.of(Fraction(self.num, self.den) * factor)

    def at(self, prompt_tokens: int) -> Rate:
        """Flat rates do not depend on prompt size (same interface as TieredRate)."""
        return self

    def nusd(self, tokens: int) -> int:
        return round_div(tokens * self.num, self.den)


ZERO = Rate(0, 1)


@dataclass(frozen=True, slots=True)
class TieredRate:
    """Long-context pricing: above a tier's start, ALL tokens pay that tier's rate.

    This is genai-prices' (and the providers') "cliff" rule: the tier applies when the
    request's total input tokens (cache reads and writes included) exceed ``start``.
    """

    base: Rate
    tiers: tuple[tuple[int, Rate], ...]  # ascending by start

    def at(self, prompt_tokens: int) -> Rate:
        for start, rate in reversed(self.tiers):
            if prompt_tokens > start:
                return rate
        return self.base

    def scaled(self, factor: Fraction) -> TieredRate:
        tiers = tuple((start, rate.scaled(factor)) for start, rate in self.tiers)
        return TieredRate(self.base.scaled(factor), tiers)


AnyRate = Rate | TieredRate


@dataclass(frozen=True, slots=True)
class TokenRates:
    """The per-token rates of one price entry; missing cache rates default to the input rate."""

    input: AnyRate
    output: AnyRate
    cache_read: AnyRate
    cache_write: AnyRate
    reasoning: AnyRate | None = None  # None: reasoning tokens pay the output rate
    tier_starts: tuple[int, ...] = ()  # every tier threshold, to explain which one applied

    def scaled(self, factor: Fraction) -> TokenRates:
        reasoning = None if self.reasoning is None else self.reasoning.scaled(factor)
        return TokenRates(
            self.input.scaled(factor),
            self.output.scaled(factor),
            self.cache_read.scaled(factor),
            self.cache_write.scaled(factor),
            reasoning,
            self.tier_starts,
        )

    def applied_tier(self, prompt_tokens: int) -> int | None:
        """The highest tier threshold the prompt exceeds, or None for base prices."""
        above = [start for start in self.tier_starts if prompt_tokens > start]
        return max(above) if above else None


FREE = TokenRates(ZERO, ZERO, ZERO, ZERO)


def output_nusd(rates: TokenRates, prompt: int, completion: int, reasoning: int) -> int:
    """Output cost; reasoning tokens are inside completion and pay the output rate
    unless the price entry has a distinct reasoning rate."""
    out = rates.output.at(prompt)
    if rates.reasoning is None or reasoning <= 0:
        return out.nusd(completion)
    think = rates.reasoning.at(prompt)
    reasoning = min(reasoning, completion)
    numerator = (completion - reasoning) * out.num * think.den + reasoning * think.num * out.den
    return round_div(numerator, out.den * think.den)
