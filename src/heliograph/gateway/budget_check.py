"""The budget policy on the gateway path: who the request is, what it may cost, and the
guard's verdict. Only organizations with budgets come here; the rest pay one dict lookup.

The request's facts are decided as the record will decide them (the same user precedence,
the model as sent upstream after any prompt rendering), so a budget's scope and the record it
is later settled from agree.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from types import MappingProxyType
from typing import Any

import orjson

from heliograph.budgets.cache import BudgetCache
from heliograph.budgets.estimate import Rates, estimate
from heliograph.budgets.guard import BudgetGuard, Verdict
from heliograph.budgets.rules import Budget, RequestFacts
from heliograph.capture.frames import MetaFrame
from heliograph.gateway.headers import user_of
from heliograph.pricing.book import PriceBook
from heliograph.providers import anthropic as anthropic_wire
from heliograph.providers import ollama as ollama_wire
from heliograph.providers import openai as openai_wire
from heliograph.providers.openai import normalise_endpoint

REQUESTS_ONLY: Mapping[str, int | None] = MappingProxyType({"requests": 1, "tokens": 0, "usd": 0})


class BudgetCheck:
    def __init__(
        self, cache: BudgetCache, guard: BudgetGuard, prices: PriceBook, output_tokens: int
    ) -> None:
        self.cache = cache
        self.guard = guard
        self.rates = Rates(prices)
        self.output_tokens = output_tokens
        self._metered_by_org: dict[str, tuple[tuple[Budget, ...], bool]] = {}

    def applies(self, org_id: str, protocol: str, method: str, rest: str) -> bool:
        """Whether budgets are checked: the organization has some, and this is a model call
        (generation or embeddings); model lists, lookups and management never count."""
        return bool(self.cache.for_org(org_id)) and model_call(protocol, method, rest)

    def admit(
        self,
        org_id: str,
        key_id: str | None,
        md: MetaFrame,
        body: bytes,
        rest: str,
        protocol: str,
        provider: str,
        upstream: str,
        started: float,
    ) -> Verdict | Coroutine[Any, Any, Verdict]:
        """The verdict at once when an open slab admits the request (the usual case far from
        every limit: no coroutine, no await), else the check to await."""
        doc = _document(body)
        model = md.get("model") or _model(doc)
        facts = RequestFacts(
            key_id=key_id,
            user_id=user_of(md, _body_user(doc, protocol)),
            properties=md.get("props") or {},
            model=model,
            upstream=upstream,
        )
        budgets = self.cache.for_org(org_id)
        guard = self.guard
        if not self._metered(org_id, budgets):
            return guard.from_slab(budgets, facts, 0, 0, started) or guard.check(
                budgets, facts, REQUESTS_ONLY, started
            )

        def amounts(quick: bool) -> dict[str, int | None]:
            est = estimate(
                body, doc, rest, model, provider, upstream, self.rates, self.output_tokens, quick
            )
            return {"requests": 1, "tokens": est.tokens, "usd": est.cost_nusd}

        bound = amounts(True)
        tokens, usd = bound["tokens"] or 0, bound["usd"]
        return guard.from_slab(budgets, facts, tokens, usd, started) or guard.check(
            budgets, facts, bound, started, lambda: amounts(False)
        )

    def _metered(self, org_id: str, budgets: tuple[Budget, ...]) -> bool:
        """Whether any of the organization's budgets counts tokens or dollars (asked once per
        loaded set of budgets: a reload makes a new tuple)."""
        known = self._metered_by_org.get(org_id)
        if known is None or known[0] is not budgets:
            known = self._metered_by_org[org_id] = (
                budgets,
                any(b.unit != "requests" for b in budgets),
            )
        return known[1]


def model_call(protocol: str, method: str, rest: str) -> bool:
    if method != "POST":
        return False
    if protocol == "ollama" and rest.startswith("/v1/"):  # Ollama's OpenAI-compatible API
        protocol, rest = "openai", rest[3:]
    if protocol == "anthropic":
        return anthropic_wire.is_llm_call(method, rest)
    if protocol == "ollama":
        return ollama_wire.is_llm_call(method, rest)
    return openai_wire.is_llm_call(method, normalise_endpoint(rest)[0])


def _document(body: bytes) -> dict[str, Any]:
    if not body or body[:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _model(doc: dict[str, Any]) -> str | None:
    model = doc.get("model")
    return model if isinstance(model, str) else None


def _body_user(doc: dict[str, Any], protocol: str) -> str | None:
    if protocol == "anthropic":
        metadata = doc.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
    else:
        user = doc.get("user")
    return user if isinstance(user, str) and user else None
