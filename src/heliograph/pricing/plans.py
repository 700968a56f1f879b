"""How one (provider, model, upstream) is priced: decided once, then applied per record.

``PriceBook`` resolves a name to one of these plans (slow: database lookups, glob matching)
and caches it; applying a plan to a record is a few integer multiplications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Protocol

from heliograph.pricing.catalog import CatalogEntry, PriceChoice, select_choice
from heliograph.pricing.cost import Cost, Usage, token_parts
from heliograph.pricing.overrides import GpuHourPrice, PriceOverride
from heliograph.pricing.rates import NUSD_PER_USD, exact, round_div

MS_PER_HOUR = 3_600_000


class Plan(Protocol):
    @property
    def priced(self) -> bool: ...

    def cost(
        self,
        usage: Usage,
        generation_ms: float | None,
        latency_ms: float | None,
        at: datetime | None,
    ) -> Cost: ...


@dataclass(frozen=True, slots=True)
class FixedPlan:
    """The same answer for every record: unknown models, and local models (free)."""

    result: Cost

    @property
    def priced(self) -> bool:
        return self.result.known

    def cost(
        self,
        usage: Usage,
        generation_ms: float | None,
        latency_ms: float | None,
        at: datetime | None,
    ) -> Cost:
        return self.result


def local_plan(where: str) -> FixedPlan:
    """A model on a local server costs nothing per token: known, zero, source "local"."""
    ref = f"local model on {where}: no per-token price (set a GPU-hour price to charge)"
    return FixedPlan(Cost.of_parts((0, 0, 0, 0), "local", ref))


UNKNOWN = FixedPlan(Cost.unknown())


@dataclass(frozen=True, slots=True)
class TokenPlan:
    """Per-token prices, possibly changing with the request time (genai-prices history)."""

    choices: tuple[PriceChoice, ...]
    source: str
    ref: str

    @classmethod
    def of_entry(cls, entry: CatalogEntry) -> TokenPlan:
        return cls(entry.choices, "genai-prices", entry.ref)

    @classmethod
    def discounted(cls, entry: CatalogEntry, override: PriceOverride) -> TokenPlan:
        factor = override.discount_factor()
        choices = tuple(
            PriceChoice(c.constraint, None if c.rates is None else c.rates.scaled(factor), c.note)
            for c in entry.choices
        )
        ref = f"{entry.ref} -{override.discount_percent}% ({override.describe()})"
        return cls(choices, "override", ref)

    @classmethod
    def of_override(cls, override: PriceOverride) -> TokenPlan:
        return cls(
            (PriceChoice(None, override.token_rates(), ""),), "override", override.describe()
        )

    @property
    def priced(self) -> bool:
        return any(choice.rates is not None for choice in self.choices)

    def cost(
        self,
        usage: Usage,
        generation_ms: float | None,
        latency_ms: float | None,
        at: datetime | None,
    ) -> Cost:
        choices = self.choices
        choice = (
            choices[0] if len(choices) == 1 else select_choice(choices, at or datetime.now(UTC))
        )
        rates = choice.rates
        if rates is None:
            return Cost.unknown(f"{self.ref}{choice.note}: not priced per token")
        if usage.prompt_tokens is None and usage.completion_tokens is None:
            return Cost.unknown(f"{self.ref}: no token counts")
        ref = self.ref + choice.note
        if rates.tier_starts:
            ref += _tier_note(rates.applied_tier(usage.prompt_tokens or 0))
        return Cost.of_parts(token_parts(rates, usage), self.source, ref)


def _tier_note(start: int | None) -> str:
    return "" if start is None else f"; tier above {start} input tokens"


@dataclass(frozen=True, slots=True)
class GpuHourPlan:
    """GPU time: usd_per_hour x the request's latency (the GPU is held for all of it).

    latency_ms (arrival to last byte) is used because the model is busy for the whole
    request: prompt processing, generation and any queueing on a single-slot server.
    generation_ms (first to last token) is the fallback when latency is missing. With
    several requests batched on one GPU each pays its full duration: an upper bound.
    """

    upstream: str
    usd_per_hour: Fraction
    label: str

    @classmethod
    def of(cls, price: GpuHourPrice) -> GpuHourPlan:
        return cls(price.upstream, exact(price.usd_per_hour), f"${price.usd_per_hour}/h")

    @property
    def priced(self) -> bool:
        return True

    def cost(
        self,
        usage: Usage,
        generation_ms: float | None,
        latency_ms: float | None,
        at: datetime | None,
    ) -> Cost:
        ms, what = (
            (latency_ms, "latency") if latency_ms is not None else (generation_ms, "generation")
        )
        if ms is None or not 0 <= ms < float("inf"):
            return Cost.unknown(f"gpu-hour {self.upstream}: no request duration", "gpu-hour")
        nusd = self.usd_per_hour * exact(ms) * NUSD_PER_USD / MS_PER_HOUR
        total = round_div(nusd.numerator, nusd.denominator)
        ref = f"gpu-hour {self.upstream} at {self.label} for {ms:g} ms {what}"
        return Cost.of_parts((0, total, 0, 0), "gpu-hour", ref)
