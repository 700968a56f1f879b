"""The Prometheus series derived from records, counted by the writer.

The writer builds every record of every gateway worker exactly once, so it is the one place
that counts them: no work is added to the request path, and ``--workers N`` cannot double
count. Under ``heliograph serve`` the writer is a process of its own and prometheus_client's
multiprocess mode keeps these values in files under ``<home>/metrics`` that the gateway
workers' ``/metrics`` reads; in an app with an embedded writer they live in this object's
registry.

Cost matters (the writer sustains thousands of records a second, and in multiprocess mode
each increment is a locked write to a memory-mapped file): counters are summed per label set
over a batch and incremented once per label set, and a histogram's observations of a batch
are sorted into its buckets here and added with one increment per bucket touched.

Model names come from clients, so at most ``max_models`` distinct ones become label values;
the rest are counted as ``model="other"``. The other labels are bounded by configuration
(providers, upstreams) or by protocol (status, state).
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values

from heliograph.config import Settings
from heliograph.gateway.ratelimit import REFUSED_MESSAGE
from heliograph.store.inserts import REQUESTS

OTHER_MODEL = "other"
NANO = 1e-9

# The OpenTelemetry GenAI semantic conventions' advice, extended to ten minutes (the default
# upstream timeout): reasoning models and long generations take minutes.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    163.84, 327.68, 655.36,
)  # fmt: skip
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
SPEED_BUCKETS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)

_COLUMNS = (
    "id", "provider", "upstream", "model", "status", "state", "error", "endpoint", "latency_ms",
    "ttft_ms", "output_tokens_per_s", "prompt_tokens", "completion_tokens", "cached_tokens",
    "reasoning_tokens", "cost_nusd", "cache_hit",
)  # fmt: skip
_PICK = operator.itemgetter(*(REQUESTS.names.index(name) for name in _COLUMNS))
MAX_ENDPOINTS = 512  # endpoint -> operation name memo; paths come from clients, so bounded
_TOKEN_TYPES = ("input", "output", "cached", "reasoning")


def multiprocess() -> bool:
    """True when prometheus_client keeps values in files (``heliograph serve``'s children)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def operation_of(endpoint: str | None) -> str:
    """The GenAI ``gen_ai.operation.name`` of an endpoint (a bounded set of values)."""
    path = (endpoint or "").rstrip("/")
    if path.endswith(("/chat/completions", "/messages", "/api/chat", "/responses")):
        return "chat"
    if path.endswith(("/embeddings", "/api/embed", "/api/embeddings")):
        return "embeddings"
    if path.endswith(("/completions", "/api/generate")):
        return "text_completion"
    return "other"


def local_upstreams(settings: Settings) -> frozenset[str]:
    """The upstreams serving local models, by the dashboard's rule (``_LOCAL``, else known
    local servers and private addresses)."""
    from heliograph.web.dashboard import is_local

    upstreams = settings.resolved_upstreams()
    return frozenset(name for name in upstreams if is_local(name, upstreams))


def record_metrics(settings: Settings) -> RecordMetrics:
    """The series as this server's settings shape them."""
    return RecordMetrics(settings.metrics_max_models, local=local_upstreams(settings))


class RecordMetrics:
    """The record-derived series and their per-batch observation."""

    def __init__(
        self,
        max_models: int = 100,
        *,
        local: frozenset[str] = frozenset(),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.max_models = max_models
        self.local = local  # upstreams whose output speed is observed
        self._models: set[str] = set()
        self._children: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self._operations: dict[str | None, str] = {}
        r = self.registry
        pm = ("provider", "model")
        genai = ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name")
        self.requests = Counter(
            "heliograph_requests",
            "Requests recorded, by provider, upstream, model, HTTP status and state.",
            ("provider", "upstream", "model", "status", "state"),
            registry=r,
        )
        self.tokens = Counter(
            "heliograph_tokens",
            "Tokens recorded, by type: input, output, cached (input read from a cache), "
            "reasoning (part of output).",
            (*pm, "type"),
            registry=r,
        )
        self.cost = Counter(
            "heliograph_cost_usd", "Cost of recorded requests in USD.", pm, registry=r
        )
        self.cache_hits = Counter(
            "heliograph_cache_hits", "Requests answered from the response cache.", pm, registry=r
        )
        self.refusals = Counter(
            "heliograph_refusals",
            "Requests refused by the gateway: rate_limit or budget.",
            ("reason",),
            registry=r,
        )
        for reason in ("rate_limit", "budget"):
            self.refusals.labels(reason)  # present at 0 from the start, so rate() works
        self.written = Counter(
            "heliograph_records_written", "Records the writer stored.", registry=r
        )
        self.store_errors = Counter(
            "heliograph_store_errors",
            "Store failures: batches the store could not take (retried from the spool) and "
            "records it refused.",
            registry=r,
        )
        self.duration = Histogram(
            "heliograph_request_duration_seconds",
            "Request duration until the last byte.",
            pm,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "heliograph_time_to_first_token_seconds",
            "Time to the first token of streamed responses.",
            pm,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.speed = Histogram(
            "heliograph_output_tokens_per_second",
            "Output tokens per second of local models (the server's own figure when it "
            "reports one, as Ollama does).",
            pm,
            buckets=SPEED_BUCKETS,
            registry=r,
        )
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (gen_ai.client.operation.duration).",
            genai,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.genai_ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to first token (gen_ai.server.time_to_first_token).",
            genai,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per request, by gen_ai_token_type (gen_ai.client.token.usage).",
            (*genai, "gen_ai_token_type"),
            buckets=TOKEN_BUCKETS,
            registry=r,
        )

    def model(self, name: str | None) -> str:
        """The label value of a model name, within the cap."""
        if not name:
            return ""
        if name in self._models:
            return name
        if len(self._models) < self.max_models:
            self._models.add(name)
            return name
        return OTHER_MODEL

    def _histograms(self, provider: str, model: str, operation: str) -> tuple[Any, ...]:
        key = (provider, model, operation)
        found = self._children.get(key)
        if found is None:
            g = (provider, model, operation)
            found = self._children[key] = (
                self.duration.labels(provider, model),
                self.ttft.labels(provider, model),
                self.speed.labels(provider, model),
                self.genai_duration.labels(*g),
                self.genai_ttft.labels(*g),
                self.genai_tokens.labels(*g, "input"),
                self.genai_tokens.labels(*g, "output"),
            )
        return found

    def _operation(self, endpoint: str | None) -> str:
        found = self._operations.get(endpoint)
        if found is None:
            found = operation_of(endpoint)
            if len(self._operations) < MAX_ENDPOINTS:
                self._operations[endpoint] = found
        return found

    def observe(self, rows: Iterable[tuple[Any, ...]], inserted: set[str]) -> None:
        """Count a committed batch: ``rows`` in the store's column order, of which the ids in
        ``inserted`` were new (a replayed record is not counted twice)."""
        observed: dict[tuple[str, str, str], tuple[list[float], ...]] = {}
        requests: dict[tuple[str, str, str, str, str], int] = {}
        tokens: dict[tuple[str, str, str], int] = {}
        cost: dict[tuple[str, str], int] = {}
        hits: dict[tuple[str, str], int] = {}
        refused = {"rate_limit": 0, "budget": 0}
        written = 0
        for row in rows:
            (rid, provider, upstream, name, status, state, error, endpoint, latency, ttft,
             speed, tin, tout, tcached, treason, nusd, hit) = _PICK(row)  # fmt: skip
            if rid not in inserted:
                continue
            written += 1
            model = self.model(name)
            key = (provider, upstream or "", model, str(status), state)
            requests[key] = requests.get(key, 0) + 1
            pm = (provider, model)
            for kind, count in zip(_TOKEN_TYPES, (tin, tout, tcached, treason), strict=True):
                if count:
                    tk = (provider, model, kind)
                    tokens[tk] = tokens.get(tk, 0) + count
            if nusd:
                cost[pm] = cost.get(pm, 0) + nusd
            if hit:
                hits[pm] = hits.get(pm, 0) + 1
            if state == "refused":
                refused["budget"] += 1
            elif status == 429 and error and error.startswith(REFUSED_MESSAGE):
                refused["rate_limit"] += 1
            hk = (provider, model, self._operation(endpoint))
            lists = observed.get(hk)
            if lists is None:
                lists = observed[hk] = ([], [], [], [], [])
            if latency is not None:
                lists[0].append(latency / 1000.0)
            if ttft is not None:
                lists[1].append(ttft / 1000.0)
            if speed is not None and upstream in self.local:
                lists[2].append(speed)
            if tin is not None:
                lists[3].append(tin)
            if tout is not None:
                lists[4].append(tout)
        for hk, (durations, ttfts, speeds, tins, touts) in observed.items():
            dur, first, rate, g_dur, g_first, g_in, g_out = self._histograms(*hk)
            for child, got in (
                (dur, durations), (g_dur, durations), (first, ttfts), (g_first, ttfts),
                (rate, speeds), (g_in, tins), (g_out, touts),
            ):  # fmt: skip
                if got:
                    observe_many(child, got)
        for rk, n in requests.items():
            self.requests.labels(*rk).inc(n)
        for tk, n in tokens.items():
            self.tokens.labels(*tk).inc(n)
        for pm, n in cost.items():
            self.cost.labels(*pm).inc(n * NANO)
        for pm, n in hits.items():
            self.cache_hits.labels(*pm).inc(n)
        for reason, n in refused.items():
            if n:
                self.refusals.labels(reason).inc(n)
        if written:
            self.written.inc(written)

    def store_error(self, count: int = 1) -> None:
        self.store_errors.inc(count)


def observe_many(child: Any, amounts: Sequence[float]) -> None:
    """``child.observe(a)`` for each amount, with one increment per bucket touched.

    prometheus_client has no bulk observation, so this does what ``Histogram.observe`` does
    (the sum, then the first bucket whose upper bound holds the amount) over its internals
    (``_upper_bounds``, ``_buckets``, ``_sum``); if those change shape, it falls back to
    observing one by one (a test compares the two).
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if not bounds or buckets is None or len(buckets) != len(bounds) or total is None:
        for amount in amounts:
            child.observe(amount)
        return
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1
    total.inc(sum(amounts))
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
