"""A stored gateway record as an OpenTelemetry span (the GenAI semantic conventions).

The span is made in the writer from the row it has just committed, not on the request path:
only there are the tokens, the cost and the reassembled stream known. The gateway chose the
span id already when the client sent a ``traceparent`` (it sent it upstream), so such a record
becomes the child of the client's span in the client's trace. A record without one gets ids
derived from its record id, so exporting it again gives the same span.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from heliograph import __version__

# The record's provider as the conventions' well-known gen_ai.provider.name values; a
# provider not listed (ollama, vllm, together ...) is sent under its own name.
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "aws-bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex-ai": "gcp.vertex_ai",
    "groq": "groq",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
}

# Endpoint endings -> gen_ai.operation.name, most specific first (OpenAI paths come with or
# without /v1 and an Azure deployment prefix; Anthropic's and Ollama's are whole paths).
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "chat"),
    ("/responses", "chat"),
    ("/v1/messages", "chat"),
    ("/api/chat", "chat"),
    ("/completions", "text_completion"),
    ("/v1/complete", "text_completion"),
    ("/api/generate", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/api/embed", "embeddings"),
    (":generateContent", "generate_content"),
    (":streamGenerateContent", "generate_content"),
)

# The record columns a span is made of (the writer picks just these out of its row tuples).
COLUMNS = (
    "id",
    "created_at",
    "kind",
    "provider",
    "upstream",
    "method",
    "endpoint",
    "model",
    "response_model",
    "status",
    "state",
    "error",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nusd",
    "cost_known",
    "user_id",
    "session_id",
    "properties",
    "cache_hit",
    "served_by",
    "retries",
    "tokens_estimated",
    "prompt_name",
    "trace_id",
    "span_id",
    "parent_span_id",
)

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
SCOPE = InstrumentationScope("heliograph", __version__)
NANOS_PER_MS = 1_000_000


@dataclass(frozen=True)
class SpanSetup:
    """What every span of one exporter shares: resource, upstream addresses, content switch."""

    resource: Resource = field(default_factory=lambda: Resource.create({}))
    servers: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # upstream -> addr
    capture_content: bool = False


def operation_name(row: Mapping[str, Any]) -> str | None:
    """The GenAI operation of a model call; None for model lists, files and the like."""
    if row.get("kind") != "llm":
        return None
    endpoint = str(row.get("endpoint") or "").split("?", 1)[0].rstrip("/")
    for ending, operation in OPERATIONS:
        if endpoint.endswith(ending):
            return operation
    return None


def provider_name(provider: str | None) -> str | None:
    if not provider:
        return None
    return PROVIDER_NAMES.get(provider.lower(), provider)


def span_name(row: Mapping[str, Any], operation: str | None) -> str:
    """``{operation} {model}`` as the conventions ask; ``{method} {path}`` for other calls."""
    model = row.get("model")
    if operation:
        return f"{operation} {model}" if model else operation
    return f"{row.get('method') or 'POST'} {row.get('endpoint') or '/'}"


def _hex_id(value: Any, digits: int) -> int:
    """A non-zero id from lower-case hex of the right length, else 0."""
    if not isinstance(value, str) or len(value) != digits:
        return 0
    try:
        return int(value, 16)
    except ValueError:
        return 0


def derived_ids(record_id: str) -> tuple[int, int]:
    """(trace id, span id) of a record that joined no trace: the record id's 128 bits (a hash
    of it when a client chose an id that is not a UUID) and 64 bits of a hash of it."""
    try:
        trace = uuid.UUID(record_id).int
    except ValueError:
        trace = int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:16])
    span = int.from_bytes(hashlib.sha256(b"heliograph-span:" + record_id.encode()).digest()[:8])
    return trace or 1, span or 1


def span_contexts(row: Mapping[str, Any]) -> tuple[SpanContext, SpanContext | None]:
    """The record's own span context and its parent's (the client's span, remote) if any.

    The gateway records every call whatever the client's sampling flag (it is not stored),
    so every span is sent as sampled."""
    trace = _hex_id(row.get("trace_id"), 32)
    span = _hex_id(row.get("span_id"), 16)
    if not (trace and span):
        trace, span = derived_ids(str(row["id"]))
        return SpanContext(trace, span, is_remote=False, trace_flags=SAMPLED), None
    parent_id = _hex_id(row.get("parent_span_id"), 16)
    own = SpanContext(trace, span, is_remote=False, trace_flags=SAMPLED)
    if not parent_id:
        return own, None
    return own, SpanContext(trace, parent_id, is_remote=True, trace_flags=SAMPLED)


def _properties(value: Any) -> Mapping[str, Any]:
    """The properties column: a dict as built, JSON text as packed for insertion."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def failed(row: Mapping[str, Any]) -> bool:
    status = row.get("status") or 0
    return row.get("state") != "ok" or status >= 400


def error_type(row: Mapping[str, Any]) -> str | None:
    """``error.type``: the HTTP status of a refused call, else how it ended (interrupted,
    cancelled, a stream that broke: error)."""
    if not failed(row):
        return None
    status = row.get("status") or 0
    return str(status) if status >= 400 else str(row.get("state") or "error")


def record_attributes(
    row: Mapping[str, Any], operation: str | None, setup: SpanSetup
) -> dict[str, AttributeValue]:
    """The span's attributes: GenAI conventions first, then Heliograph's own.

    Encoding attributes is most of what a span costs the writer (the SDK's encoder builds two
    protobuf objects per attribute), so what is unknown, empty or the default is left out:
    no cache or reasoning tokens, no user, no cache hit, no retries."""
    out: dict[str, AttributeValue] = {}

    def put(key: str, value: Any) -> None:
        if value is not None:
            out[key] = value

    def positive(key: str, value: Any) -> None:
        if value:
            out[key] = value

    put("gen_ai.operation.name", operation)
    put("gen_ai.provider.name", provider_name(row.get("provider")))
    put("gen_ai.request.model", row.get("model"))
    put("gen_ai.response.model", row.get("response_model"))
    put("gen_ai.usage.input_tokens", row.get("prompt_tokens"))
    put("gen_ai.usage.output_tokens", row.get("completion_tokens"))
    positive("gen_ai.usage.cache_read.input_tokens", row.get("cached_tokens"))
    positive("gen_ai.usage.cache_creation.input_tokens", row.get("cache_write_tokens"))
    positive("gen_ai.usage.reasoning.output_tokens", row.get("reasoning_tokens"))
    positive("gen_ai.conversation.id", row.get("session_id"))
    positive("gen_ai.prompt.name", row.get("prompt_name"))
    put("error.type", error_type(row))
    upstream = row.get("served_by") or row.get("upstream")
    server = setup.servers.get(str(upstream)) if upstream else None
    if server is not None:
        out["server.address"], out["server.port"] = server
    positive("http.response.status_code", row.get("status"))
    user = row.get("user_id")
    if user:
        out["user.id"] = out["heliograph.user_id"] = user
    put("heliograph.record_id", row.get("id"))
    if row.get("cost_known") and row.get("cost_nusd") is not None:
        out["heliograph.cost_usd"] = row["cost_nusd"] / 1e9
    put("heliograph.ttft_ms", row.get("ttft_ms"))
    put("heliograph.upstream", row.get("upstream"))
    if row.get("served_by") and row["served_by"] != row.get("upstream"):
        out["heliograph.served_by"] = row["served_by"]
    put("heliograph.state", row.get("state"))
    if row.get("cache_hit"):
        out["heliograph.cache_hit"] = True
    if row.get("tokens_estimated"):
        out["heliograph.tokens_estimated"] = True
    positive("heliograph.retries", row.get("retries"))
    for name, value in _properties(row.get("properties")).items():
        out[f"heliograph.properties.{name}"] = str(value)
    return out


def record_span(
    row: Mapping[str, Any],
    setup: SpanSetup,
    content: Mapping[str, AttributeValue] | None = None,
) -> ReadableSpan:
    """The span of one record row (a dict as ``record.request_row`` builds it)."""
    operation = operation_name(row)
    context, parent = span_contexts(row)
    attributes = record_attributes(row, operation, setup)
    if content:
        attributes.update(content)
    start = int(row["created_at"]) * NANOS_PER_MS
    latency = row.get("latency_ms")
    end = start + int(float(latency) * NANOS_PER_MS) if latency is not None else start
    status = _UNSET
    if failed(row):
        status = Status(StatusCode.ERROR, str(row.get("error") or error_type(row))[:1000])
    return ReadableSpan(
        name=span_name(row, operation),
        context=context,
        parent=parent,
        resource=setup.resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=status,
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )
