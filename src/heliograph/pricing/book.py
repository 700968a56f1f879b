"""PriceBook: the one place that decides what a request cost, for the writer.

Resolution order for (provider, model, upstream), decided once and cached:

1. a ``PriceOverride`` with explicit prices (exact model names before globs, then in order);
2. a ``GpuHourPrice`` for the upstream (or provider): cost of the request's GPU time;
3. a local server (ollama, vllm, llama.cpp, ...): known, cost 0, source "local";
4. genai-prices' bundled data, minus a matching ``discount_percent`` override if any;
5. otherwise unknown: ``known=False`` and every amount None, so the API shows null.

Local and GPU-hour upstreams are never priced by matching their model names against cloud
prices: a llama served by your own GPU does not cost what Together charges for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from heliograph.pricing import catalog
from heliograph.pricing.cost import Cost, Usage
from heliograph.pricing.overrides import GpuHourPrice, PriceOverride
from heliograph.pricing.plans import UNKNOWN, GpuHourPlan, Plan, TokenPlan, local_plan

# Servers that run models on hardware you pay for by the hour, not per token.
DEFAULT_LOCAL_PROVIDERS = frozenset(
    {"ollama", "vllm", "llamacpp", "llama.cpp", "llama-cpp", "lmstudio", "localai", "sglang", "tgi"}
)

_Key = tuple[str, str | None, str | None]


class PriceBook:
    """Prices records from token usage; cheap per call once a model has been seen."""

    def __init__(
        self,
        overrides: Sequence[PriceOverride | Mapping[str, Any]] = (),
        gpu_hours: Sequence[GpuHourPrice | Mapping[str, Any]] = (),
        *,
        local_providers: Collection[str] = DEFAULT_LOCAL_PROVIDERS,
        cache_size: int = 4096,
    ) -> None:
        parsed = [
            o if isinstance(o, PriceOverride) else PriceOverride.from_dict(o) for o in overrides
        ]
        self._overrides = sorted(parsed, key=lambda o: o.is_glob)  # stable: exact names first
        gpus = [g if isinstance(g, GpuHourPrice) else GpuHourPrice.from_dict(g) for g in gpu_hours]
        self._gpu_hours = {g.upstream.strip().lower(): g for g in gpus}
        self._local = frozenset(name.lower() for name in local_providers)
        self._plans: OrderedDict[_Key, Plan] = OrderedDict()
        self._cache_size = cache_size

    def cost(
        self,
        *,
        provider: str,
        model: str | None,
        usage: Usage,
        upstream: str | None = None,
        generation_ms: float | None = None,
        latency_ms: float | None = None,
        at: datetime | None = None,
        at_ms: int | None = None,
    ) -> Cost:
        """The cost of one request; its time (``at``, or ``at_ms`` in Unix milliseconds,
        default now) selects time-dependent prices. ``at_ms`` becomes a datetime only for
        the models whose price depends on time."""
        plan = self._plan(provider, model, upstream)
        timed = isinstance(plan, TokenPlan) and len(plan.choices) > 1
        if at is None and at_ms is not None and timed:
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
        return plan.cost(usage, generation_ms, latency_ms, at)

    def preload(self) -> None:
        """Load the bundled price data now (~0.2 s) rather than on the first record priced."""
        catalog.bundled_providers()

    def is_priced(self, provider: str, model: str) -> bool:
        """Whether requests for this model get a known cost (given usage or a duration)."""
        return self._plan(provider, model, None).priced

    def _plan(self, provider: str, model: str | None, upstream: str | None) -> Plan:
        key = (provider, model, upstream)
        plans = self._plans
        plan = plans.pop(key, None)  # pop + re-insert marks it most recently used
        if plan is not None:
            plans[key] = plan
            return plan
        plan = self._resolve(provider.strip().lower(), model, _lower(upstream))
        plans[key] = plan
        if len(plans) > self._cache_size:
            plans.popitem(last=False)
        return plan

    def _resolve(self, provider: str, model: str | None, upstream: str | None) -> Plan:
        name = _lower(model)
        override = self._override(provider, upstream, name) if name else None
        if override is not None and override.discount_percent is None:
            return TokenPlan.of_override(override)
        gpu = self._gpu_hours.get(upstream or provider) or self._gpu_hours.get(provider)
        if gpu is not None:
            return GpuHourPlan.of(gpu)
        if provider in self._local or upstream in self._local:
            return local_plan(upstream or provider)
        entry = catalog.find_entry(provider, name) if name else None
        if entry is None:
            return UNKNOWN
        return TokenPlan.discounted(entry, override) if override else TokenPlan.of_entry(entry)

    def _override(self, provider: str, upstream: str | None, model: str) -> PriceOverride | None:
        return next((o for o in self._overrides if o.matches(provider, upstream, model)), None)


def _lower(name: str | None) -> str | None:
    return name.strip().lower() if name else None
