"""OpenAI protocol analysis for the writer: models, usage and timings (streams: openai_streams).

Runs off the request path on the raw bytes the gateway spooled. Covers Chat Completions,
legacy Completions, the Responses API, embeddings, moderations and the audio/image endpoints,
and every OpenAI-compatible server that speaks the same wire format.
"""

from __future__ import annotations

import re

import orjson

from heliograph.providers.analysis import Analysis, apply_timings, apply_usage, load_request
from heliograph.providers.openai_streams import chat_stream, responses_stream

LLM_PREFIXES = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
    "/moderations",
    "/audio/",
    "/images/",
)
# The model part of a multipart form: its header lines, a blank line, then the value.
_MULTIPART_MODEL = re.compile(rb'name="model"(?:\r\n[^\r\n]+)*?\r\n\r\n([^\r\n]{1,255})\r\n')


_AZURE_DEPLOYMENT = re.compile(r"^/(?:openai/)?deployments/([^/]+)(/.*)$")


def normalise_endpoint(endpoint: str) -> tuple[str, str | None]:
    """The OpenAI path of an endpoint (no /v1 or Azure prefix) and the Azure deployment."""
    if endpoint.startswith("/v1/"):
        endpoint = endpoint[3:]
    elif endpoint.startswith("/openai/v1/"):
        endpoint = endpoint[10:]
    match = _AZURE_DEPLOYMENT.match(endpoint)
    if match:
        return match.group(2), match.group(1)
    return endpoint, None


def is_llm_call(method: str, endpoint: str) -> bool:
    """Generation calls count as LLM requests; model lists, files and lookups do not."""
    if method != "POST":
        return False
    if endpoint.startswith(("/responses", "/chat/completions", "/completions")):
        return endpoint in ("/responses", "/chat/completions", "/completions")
    return endpoint.startswith(LLM_PREFIXES)


def analyse_request(method: str, endpoint: str, body: bytes, ctype: str, out: Analysis) -> None:
    endpoint, deployment = normalise_endpoint(endpoint)
    out.kind = "llm" if is_llm_call(method, endpoint) else "other"
    out.model = deployment
    if not body:
        return
    if body[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
        doc = load_request(body, out)
        if doc is not None:
            model = doc.get("model")
            out.model = model if isinstance(model, str) else out.model
            out.stream = doc.get("stream") is True
            user = doc.get("user")
            out.user = user if isinstance(user, str) and user else None
        return
    if "multipart/form-data" in ctype:
        match = _MULTIPART_MODEL.search(body)
        if match:
            out.model = match.group(1).decode("utf-8", "replace")


def analyse_response(
    endpoint: str, body: bytes, ctype: str, marks: list[tuple[int, float]], out: Analysis
) -> None:
    """Fill usage, response model, timings and the reassembled body from the response."""
    endpoint, _ = normalise_endpoint(endpoint)
    if ctype.startswith("text/event-stream"):
        out.stream = True
        if endpoint.startswith("/responses"):
            responses_stream(body, marks, out)
        else:
            chat_stream(body, marks, out)
        return
    if not body or "json" not in ctype:
        out.response_body = body
        return
    out.response_body = body
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(doc, dict):
        model = doc.get("model")
        out.response_model = model if isinstance(model, str) else None
        apply_usage(doc.get("usage"), out)
        if "timings" in doc:
            apply_timings(doc["timings"], out)
