"""What the writer adds to an analysed exchange: estimated tokens and the priced cost."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from heliograph.pricing import Cost, PriceBook, Usage
from heliograph.pricing.tokens import count_output_tokens, estimate_prompt_tokens
from heliograph.providers import output_text
from heliograph.providers.analysis import Analysis

log = logging.getLogger(__name__)
UNKNOWN_COST: dict[str, Any] = {
    "cost_nusd": None,
    "cost_known": False,
    "cost_input_nusd": None,
    "cost_output_nusd": None,
    "cost_cache_read_nusd": None,
    "cost_cache_write_nusd": None,
    "cost_source": None,
    "price_ref": None,
}


def estimate_missing_tokens(analysis: Analysis, endpoint: str) -> bool:
    """Count tokens offline when the provider reported none; True when it did so."""
    if analysis.kind != "llm" or analysis.prompt_tokens is not None:
        return False
    model = analysis.response_model or analysis.model
    try:
        prompt = estimate_prompt_tokens(analysis.request_doc, endpoint, model)
        completion: int | None = None  # no response at all: the output is unknown, not 0
        if analysis.response_body:
            try:
                doc = orjson.loads(analysis.response_body)
            except orjson.JSONDecodeError:
                doc = None
            text = output_text(doc)
            completion = count_output_tokens(text, model) if text else 0
    except Exception:  # estimation must never lose a record
        log.exception("token estimation failed")
        return False
    if prompt is None and not completion:
        return False
    analysis.prompt_tokens = prompt or 0
    analysis.completion_tokens = completion
    analysis.total_tokens = analysis.prompt_tokens + (completion or 0)
    return True


def cost_columns(
    analysis: Analysis,
    pricebook: PriceBook | None,
    *,
    provider: str,
    upstream: str,
    model_override: str | None,
    created_ms: int,
    latency_ms: float | None,
    cache_hit: bool,
) -> dict[str, Any]:
    """The cost_* columns of a record (unknown stays unknown: never a silent 0)."""
    if pricebook is None or analysis.kind != "llm":
        return dict(UNKNOWN_COST)
    model = model_override or analysis.response_model or analysis.model
    usage = Usage(
        prompt_tokens=analysis.prompt_tokens,
        completion_tokens=analysis.completion_tokens,
        cached_tokens=analysis.cached_tokens,
        cache_write_tokens=analysis.cache_write_tokens,
        reasoning_tokens=analysis.reasoning_tokens,
    )
    try:
        cost = pricebook.cost(
            provider=provider,
            model=model,
            usage=usage,
            upstream=upstream,
            generation_ms=analysis.generation_ms,
            latency_ms=latency_ms,
            at_ms=created_ms,
        )
    except Exception:
        log.exception("pricing failed for %s/%s", provider, model)
        return dict(UNKNOWN_COST)
    return columns_for(cost, cache_hit)


def columns_for(cost: Cost, cache_hit: bool) -> dict[str, Any]:
    """Cost columns from a Cost; a cache hit costs nothing and records what it saved."""
    if not cost.known:
        return {**UNKNOWN_COST, "price_ref": cost.price_ref, "cost_source": cost.source}
    if cache_hit:
        return {
            "cost_nusd": 0,
            "cost_known": True,
            "cost_input_nusd": 0,
            "cost_output_nusd": 0,
            "cost_cache_read_nusd": 0,
            "cost_cache_write_nusd": 0,
            "cost_source": "cache",
            "price_ref": cost.price_ref,
            "cost_saved_nusd": cost.total_nusd,
        }
    return {
        "cost_nusd": cost.total_nusd,
        "cost_known": True,
        "cost_input_nusd": cost.input_nusd,
        "cost_output_nusd": cost.output_nusd,
        "cost_cache_read_nusd": cost.cache_read_nusd,
        "cost_cache_write_nusd": cost.cache_write_nusd,
        "cost_source": cost.source,
        "price_ref": cost.price_ref,
    }
