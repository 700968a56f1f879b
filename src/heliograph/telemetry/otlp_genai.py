"""What an ingested span says about an LLM call, read from GenAI attributes.

The OpenTelemetry GenAI semantic conventions have moved (``gen_ai.system`` became
``gen_ai.provider.name``, ``prompt_tokens`` became ``input_tokens``), and OpenLLMetry and
OpenLIT add names of their own, so each field is looked up under every name it goes by,
current name first. The result is a provider ``Analysis`` so the record is priced by the
same code as a gateway record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from heliograph.providers.analysis import Analysis

LLM_OPERATIONS = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "completion", "embedding"}
)
# Heliograph provider names for the values of gen_ai.provider.name / gen_ai.system.
PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "aws.bedrock": "bedrock",
        "azure.ai.openai": "azure",
        "azure.ai.inference": "azure",
        "az.ai.openai": "azure",
        "az.ai.inference": "azure",
        "gcp.gemini": "gemini",
        "gcp.vertex_ai": "google",
        "gcp.gen_ai": "google",
        "vertex_ai": "google",
        "vertexai": "google",
        "mistral_ai": "mistral",
        "mistralai": "mistral",
        "x_ai": "xai",
        "togetherai": "together",
    }
)
ENDPOINTS: Mapping[str, str] = MappingProxyType(  # the OpenAI path of the stored body shape
    {
        "embeddings": "/embeddings",
        "embedding": "/embeddings",
        "text_completion": "/completions",
        "completion": "/completions",
    }
)
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
MODEL = ("gen_ai.request.model", "llm.request.model")
RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model")
INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
OUTPUT = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
)
TOTAL = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens")
CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cached_tokens",
)
CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
)
TTFT_SECONDS = (
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.server.time_to_first_token",
    "gen_ai.server.ttft",
)
USER = ("user.id", "enduser.id", "gen_ai.user.id", "gen_ai.request.user", "llm.user")
SESSION = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
)
STREAM = ("gen_ai.request.stream", "llm.is_streaming")
PROPERTY_PREFIX = "heliograph.property."


def first(attributes: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None and value != "":
            return value
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value >= 0 and value == int(value):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):  # some instrumentations send one-element arrays
        return _text(value[0]) if value else None
    return str(value)


def is_llm(attributes: dict[str, Any]) -> bool:
    """An LLM call (a record), as opposed to agent, tool, retrieval or HTTP spans."""
    operation = attributes.get("gen_ai.operation.name")
    if operation is not None:
        return str(operation).lower() in LLM_OPERATIONS
    if first(attributes, PROVIDER) is not None and first(attributes, MODEL + RESPONSE_MODEL):
        return True
    request_type = attributes.get("llm.request.type")  # OpenLLMetry
    return request_type is not None and str(request_type).lower() != "unknown"


def provider_of(attributes: dict[str, Any]) -> str:
    """Heliograph's name for the provider (what prices are looked up under)."""
    raw = _text(first(attributes, PROVIDER))
    if raw is None:
        return "unknown"
    name = raw.strip().lower()
    return PROVIDERS.get(name, name)


def endpoint_of(attributes: dict[str, Any]) -> str:
    operation = str(attributes.get("gen_ai.operation.name") or attributes.get("llm.request.type"))
    return ENDPOINTS.get(operation.lower(), "/chat/completions")


@dataclass(slots=True)
class Call:
    """The LLM-call facts of one span beside its usage (which lives in ``analysis``)."""

    analysis: Analysis
    provider: str
    upstream: str
    endpoint: str
    user: str | None
    session: str | None
    properties: dict[str, str]
    ttft_ms: float | None


def read_call(attributes: dict[str, Any]) -> Call:
    """The record fields a span's attributes give."""
    analysis = Analysis(kind="llm")
    analysis.model = _text(first(attributes, MODEL))
    analysis.response_model = _text(first(attributes, RESPONSE_MODEL))
    analysis.model = analysis.model or analysis.response_model
    analysis.stream = first(attributes, STREAM) is True
    analysis.prompt_tokens = _int(first(attributes, INPUT))
    analysis.completion_tokens = _int(first(attributes, OUTPUT))
    total = _int(first(attributes, TOTAL))
    if analysis.completion_tokens is None and total is not None and analysis.prompt_tokens:
        analysis.completion_tokens = max(total - analysis.prompt_tokens, 0)
    if total is None and analysis.prompt_tokens is not None:
        total = analysis.prompt_tokens + (analysis.completion_tokens or 0)
    analysis.total_tokens = total
    analysis.cached_tokens = _int(first(attributes, CACHE_READ))
    analysis.cache_write_tokens = _int(first(attributes, CACHE_WRITE))
    analysis.reasoning_tokens = _int(first(attributes, REASONING))
    provider = provider_of(attributes)
    ttft = first(attributes, TTFT_SECONDS)
    ttft_ms = float(ttft) * 1000 if isinstance(ttft, int | float) and ttft >= 0 else None
    properties = {
        name[len(PROPERTY_PREFIX) :].lower(): str(value)
        for name, value in attributes.items()
        if name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX)
    }
    return Call(
        analysis=analysis,
        provider=provider,
        upstream=_text(attributes.get("server.address")) or provider,
        endpoint=endpoint_of(attributes),
        user=_text(first(attributes, USER)),
        session=_text(first(attributes, SESSION)),
        properties=properties,
        ttft_ms=ttft_ms,
    )


def usage_of(analysis: Analysis) -> dict[str, int]:
    """The usage object of the stored response body (OpenAI's names)."""
    usage: dict[str, int] = {}
    for name, value in (
        ("prompt_tokens", analysis.prompt_tokens),
        ("completion_tokens", analysis.completion_tokens),
        ("total_tokens", analysis.total_tokens),
    ):
        if value is not None:
            usage[name] = value
    return usage
