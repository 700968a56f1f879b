"""What a request may cost before it is sent: the amount a budget reserves for it.

Prompt tokens are counted offline from the body (``pricing.tokens``, the writer's own
counter); output tokens are the request's own cap (``max_tokens``, ``max_completion_tokens``,
``max_output_tokens``, Ollama's ``options.num_predict``) or, when it sets none, the
``budget_output_tokens`` setting. The cost is that usage at the model's price, from the same
price book the writer uses, so the estimate is an upper bound whenever the request caps its
output: the upstream cannot bill more output tokens than the cap.

Counting is the dear part (a tokenizer call per request, and more for long prompts), and far
from a budget's limit an exact count changes nothing: ``quick`` bounds the prompt by its size
instead (a token is at least one byte, and the JSON around the messages outweighs the chat
framing), and the guard asks for the exact count only when a budget's room is tight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from heliograph.pricing.book import PriceBook
from heliograph.pricing.cost import Usage
from heliograph.pricing.tokens import REPLY_PRIMING, count_text_tokens, estimate_prompt_tokens

CAP_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
WHOLE_BODY_BYTES = 16 * 1024


class Estimate(NamedTuple):
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


class Rates:
    """Per-token prices of the models requests name, worked out once per model.

    The price book's exact cost is made for the writer (tiers, cache parts, rational
    arithmetic); a reservation needs an upper bound, fast. Each model's price of a million
    input and of a million output tokens is asked once; a tiered price is taken at its
    million-token tier, the dearest one, so the bound holds.
    """

    def __init__(self, prices: PriceBook, size: int = 4096) -> None:
        self.prices = prices
        self.size = size
        self._per_token: dict[tuple[str, str | None, str], tuple[float, float] | None] = {}

    def per_token(
        self, provider: str, model: str | None, upstream: str
    ) -> tuple[float, float] | None:
        key = (provider, model, upstream)
        found = self._per_token.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        million = 1_000_000
        book = self.prices
        inp = book.cost(provider=provider, model=model, usage=Usage(million, 0), upstream=upstream)
        out = book.cost(provider=provider, model=model, usage=Usage(0, million), upstream=upstream)
        if inp.known and out.known:
            rates: tuple[float, float] | None = (
                (inp.total_nusd or 0) / million,
                (out.total_nusd or 0) / million,
            )
        elif not inp.known and inp.source == "gpu-hour":
            rates = (0.0, 0.0)  # priced by duration: settled at its real cost
        else:
            rates = None
        if len(self._per_token) >= self.size:
            self._per_token.clear()
        self._per_token[key] = rates
        return rates


def countable_as_text(body: bytes) -> bool:
    """Whether the body's tokens are all in its text (no image or audio parts, whose tokens
    their bytes say nothing of)."""
    return b"image" not in body and b"audio" not in body


def prompt_tokens(body: bytes, doc: Mapping[str, Any], rest: str, model: str | None) -> int:
    """Prompt tokens, counted offline, never fewer than the upstream will bill.

    A body of at most ``WHOLE_BODY_BYTES`` without images is counted whole, as text: its
    messages, and the JSON around them, which costs more tokens than the chat framing the
    upstream adds (3 per message), so the count is a bound, in one call to the tokenizer.
    Larger bodies, and bodies with images (whose bytes say nothing of their tokens), are
    walked message by message like the writer does.
    """
    if len(body) <= WHOLE_BODY_BYTES and countable_as_text(body):
        return count_text_tokens(body.decode("utf-8", "replace"), model) + REPLY_PRIMING
    return estimate_prompt_tokens(doc, rest, model) or 0


def estimate(
    body: bytes,
    doc: Mapping[str, Any],
    rest: str,
    model: str | None,
    provider: str,
    upstream: str,
    rates: Rates,
    default_output: int,
    quick: bool = False,
) -> Estimate:
    """What the request may cost: ``quick`` bounds the prompt by the body's size (an upper
    bound of the exact count, for text bodies) instead of counting it."""
    if quick and countable_as_text(body):
        prompt = len(body) + REPLY_PRIMING
    else:
        prompt = prompt_tokens(body, doc, rest, model)
    output = output_cap(doc, default_output)
    per_token = rates.per_token(provider, model, upstream)
    if per_token is None:
        return Estimate(prompt + output, None)
    return Estimate(prompt + output, math.ceil(prompt * per_token[0] + output * per_token[1]))
