"""The token usage a price is applied to and the explained, integer cost that results.

Kept apart from the price lookup so that the writer, the store and the API share one shape:
token counts in, nano-USD parts out, and an explicit ``known`` flag so that a missing price
shows as null, never as a silent zero.
"""

from __future__ import annotations

from typing import NamedTuple

from heliograph.pricing.rates import TokenRates, output_nusd


class Usage(NamedTuple):
    """Token counts of one request, in Heliograph's normalised shape.

    Named tuples (here and for :class:`Cost`): immutable, and several times cheaper to make
    than frozen dataclasses, which matters at one of each per stored record.
    """

    prompt_tokens: int | None  # ALL input tokens, including cache reads and cache writes
    completion_tokens: int | None  # all output tokens, including reasoning tokens
    cached_tokens: int | None = None  # input tokens read from cache (subset of prompt_tokens)
    cache_write_tokens: int | None = None  # input tokens written to cache (subset of prompt)
    reasoning_tokens: int | None = None  # subset of completion_tokens


class Cost(NamedTuple):
    """A cost in nano-USD (1e-9 USD); total is always the sum of the four parts."""

    known: bool  # False: no price applies -> the API shows cost_usd null, never 0
    total_nusd: int | None
    input_nusd: int | None  # uncached input part
    output_nusd: int | None
    cache_read_nusd: int | None
    cache_write_nusd: int | None
    source: str | None  # "genai-prices", "override", "gpu-hour", "local"
    price_ref: str | None  # which price applied; for unknown costs, why none did

    @classmethod
    def unknown(cls, reason: str | None = None, source: str | None = None) -> Cost:
        return cls(False, None, None, None, None, None, source, reason)

    @classmethod
    def of_parts(cls, parts: tuple[int, int, int, int], source: str, price_ref: str) -> Cost:
        """A known cost from (input, output, cache_read, cache_write) parts."""
        uncached, output, cache_read, cache_write = parts
        total = uncached + output + cache_read + cache_write
        return cls(True, total, uncached, output, cache_read, cache_write, source, price_ref)


def token_parts(rates: TokenRates, usage: Usage) -> tuple[int, int, int, int]:
    """(input, output, cache_read, cache_write) nano-USD, each rounded half-even.

    Counts that are None are zero. If the cache counts exceed prompt_tokens (inconsistent
    upstream data) the prompt is taken to be exactly the cached part, never negative.
    """
    cached = max(usage.cached_tokens or 0, 0)
    written = max(usage.cache_write_tokens or 0, 0)
    prompt = max(usage.prompt_tokens or 0, cached + written)
    completion = max(usage.completion_tokens or 0, 0)
    reasoning = max(usage.reasoning_tokens or 0, 0)
    return (
        rates.input.at(prompt).nusd(prompt - cached - written),
        output_nusd(rates, prompt, completion, reasoning),
        rates.cache_read.at(prompt).nusd(cached),
        rates.cache_write.at(prompt).nusd(written),
    )
