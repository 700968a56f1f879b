"""What a request may cost before it is sent: the amount a budget reserves for it.

Prompt tokens are counted offline from the body (``pricing.tokens``, the writer's own
counter); output tokens are the request's own cap (``max_tokens``, ``max_completion_tokens``,
``max_output_tokens``, Ollama's ``options.num_predict``) or, when it sets none, the
``budget_output_tokens`` setting. The cost is that usage at the model's price, from the same
price book the writer uses, so the estimate is an upper bound whenever the request caps its
output: the upstream cannot bill more output tokens than the cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from heliograph.pricing.book import PriceBook
from heliograph.pricing.cost import Usage
from heliograph.pricing.tokens import estimate_prompt_tokens

CAP_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int  # prompt + output cap
    cost_nusd: int | None  # None: the model has no known price


def output_cap(doc: Mapping[str, Any], default: int) -> int:
    """The most output tokens the request allows, or ``default`` when it sets no cap."""
    for name in CAP_FIELDS:
        value = doc.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    options = doc.get("options")
    if isinstance(options, Mapping):
        value = options.get("num_predict")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def estimate(
    doc: Mapping[str, Any],
    rest: str,
    model: str | None,
    provider: str,
    upstream: str,
    prices: PriceBook,
    default_output: int,
) -> Estimate:
    prompt = estimate_prompt_tokens(doc, rest, model) or 0
    output = output_cap(doc, default_output)
    cost = prices.cost(
        provider=provider, model=model, usage=Usage(prompt, output), upstream=upstream
    )
    if not cost.known and cost.source == "gpu-hour":
        return Estimate(prompt + output, 0)  # priced by duration: settled at its real cost
    return Estimate(prompt + output, cost.total_nusd if cost.known else None)
