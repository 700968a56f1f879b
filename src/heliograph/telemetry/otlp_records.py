"""The writer's half of OTLP ingest: a spooled batch of spans as span rows and records.

Every span becomes a row of ``spans`` (the trace around LLM calls); an LLM span also becomes
a record like a gateway record, source ``otlp``, priced by the same code. Record ids are
derived from (organization, trace, span), so a batch an exporter sends twice is stored once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from heliograph.capture.enrich import cost_columns
from heliograph.capture.frames import TraceFrame
from heliograph.capture.ids import derived_record_id
from heliograph.capture.record import (
    RecordRows,
    clamp_int,
    clean,
    normalise_model,
    strip_inline_media,
)
from heliograph.pricing import PriceBook
from heliograph.store.bodies import ENCODING, BodyPacker
from heliograph.telemetry.otlp_decode import EventData, SpanData
from heliograph.telemetry.otlp_genai import Call, is_llm, read_call, usage_of
from heliograph.telemetry.otlp_messages import (
    input_messages,
    output_messages,
    request_body,
    response_body,
)

log = logging.getLogger(__name__)
SPAN_TEXT_CHARS = 4096  # longest attribute string kept in ``spans`` (records keep bodies)
SOURCE = "otlp"


@dataclass(slots=True)
class TraceRows:
    records: list[RecordRows] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)


def build_trace_rows(
    header: bytes, body: bytes, pricebook: PriceBook | None, packer: BodyPacker, body_cap: int
) -> TraceRows:
    """The rows of one spooled batch; a span that cannot be read is logged and skipped."""
    out = TraceRows()
    try:
        frame: TraceFrame = orjson.loads(header)
        spans: list[SpanData] = orjson.loads(body)
    except orjson.JSONDecodeError:
        log.error("unreadable OTLP spool frame; batch skipped")
        return out
    org, key = str(frame["org"]), frame.get("key")
    stored_ms = int(float(frame["ts"]) * 1000)
    if len(spans) != frame.get("n"):
        log.warning("OTLP batch %s: %d spans, header says %s", frame["id"], len(spans), frame["n"])
    for span in spans:
        try:
            request_id = None
            if is_llm(span["a"]):
                record = llm_record(span, org, key, pricebook, packer, body_cap)
                out.records.append(record)
                request_id = record.request["id"]
            out.spans.append(span_row(span, org, request_id, stored_ms))
        except Exception:  # one odd span must not lose its batch
            log.exception("OTLP batch %s: span %s skipped", frame["id"], span.get("s"))
    return out


def span_row(span: SpanData, org: str, request_id: str | None, stored_ms: int) -> dict[str, Any]:
    """The ``spans`` row of one span."""
    return {
        "org_id": org,
        "trace_id": span["t"],
        "span_id": span["s"],
        "parent_span_id": span["p"],
        "name": clean(span["n"], 255) or "",
        "kind": span["k"],
        "service": clean(span["sv"], 255),
        "start_ns": span["st"],
        "end_ns": span["en"],
        "status": span["ss"],
        "status_message": clean(span["sm"], 4000),
        "attributes": {str(clean(k, 255)): _capped(v) for k, v in span["a"].items()} or None,
        "request_id": request_id,
        "created_at": stored_ms,
    }


def _capped(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value, SPAN_TEXT_CHARS)
    if isinstance(value, list):
        return [_capped(v) for v in value[:100]]
    if isinstance(value, dict):
        return {str(clean(k, 255)): _capped(v) for k, v in list(value.items())[:100]}
    return value


def _failure(span: SpanData, events: list[EventData]) -> str | None:
    """Why the call failed, in words, or None when it did not."""
    error_type = span["a"].get("error.type")
    if span["ss"] != "error" and error_type is None:
        return None
    for event in events:
        if event["n"] == "exception" and event["a"].get("exception.message"):
            return str(event["a"]["exception.message"])
    return span["sm"] or (str(error_type) if error_type is not None else "error")


def _status(span: SpanData, failed: bool) -> int:
    code = span["a"].get("http.response.status_code", span["a"].get("http.status_code"))
    if isinstance(code, int) and 100 <= code <= 599:
        return code
    return 500 if failed else 200


def llm_record(
    span: SpanData,
    org: str,
    key: str | None,
    pricebook: PriceBook | None,
    packer: BodyPacker,
    body_cap: int,
) -> RecordRows:
    """The record of one LLM span."""
    call = read_call(span["a"])
    analysis = call.analysis
    events = span.get("ev") or []
    created_ms = span["st"] // 1_000_000
    latency = (span["en"] - span["st"]) / 1e6
    rid = derived_record_id(created_ms, org, span["t"], span["s"])
    error = _failure(span, events)
    costs = cost_columns(
        analysis,
        pricebook,
        provider=call.provider,
        upstream=call.upstream,
        model_override=None,
        created_ms=created_ms,
        latency_ms=latency,
        cache_hit=False,
    )
    properties = {str(clean(k, 255)): str(clean(v, 1000)) for k, v in call.properties.items()}
    row = {
        "id": rid,
        "org_id": org,
        "key_id": key,
        "created_at": created_ms,
        "kind": "llm",
        "provider": clean(call.provider, 64),
        "upstream": clean(call.upstream, 64),
        "method": "POST",
        "endpoint": call.endpoint,
        "model": clean(normalise_model(analysis.model), 255),
        "response_model": clean(normalise_model(analysis.response_model), 255),
        "stream": analysis.stream,
        "status": _status(span, error is not None),
        "state": "error" if error is not None else "ok",
        "error": clean(error, 4000),
        "latency_ms": round(latency, 3),
        "ttft_ms": call.ttft_ms,
        "output_tokens_per_s": _speed(analysis.completion_tokens, latency, call.ttft_ms),
        "prompt_tokens": clamp_int(analysis.prompt_tokens),
        "completion_tokens": clamp_int(analysis.completion_tokens),
        "total_tokens": clamp_int(analysis.total_tokens),
        "cached_tokens": clamp_int(analysis.cached_tokens),
        "reasoning_tokens": clamp_int(analysis.reasoning_tokens),
        "cache_write_tokens": clamp_int(analysis.cache_write_tokens),
        "user_id": clean(call.user, 255),
        "session_id": clean(call.session, 255),
        "properties": properties or None,
        "protocol": "openai",  # the shape of the stored bodies
        "tokens_estimated": False,
        **costs,
        "price_ref": clean(costs.get("price_ref"), 255),
        "cache_hit": False,
        "retries": 0,
        "trace_id": span["t"],
        "span_id": span["s"],
        "parent_span_id": span["p"],
        "source": SOURCE,
    }
    return RecordRows(
        row,
        {**_bodies(rid, span, call, events, packer, body_cap), "created_at": created_ms},
        [{"request_id": rid, "name": k, "value": v, "org_id": org} for k, v in properties.items()],
    )


def _speed(tokens: int | None, latency_ms: float, ttft_ms: float | None) -> float | None:
    window = latency_ms - ttft_ms if ttft_ms is not None else latency_ms
    if not tokens or window <= 0:
        return None
    return round(tokens / (window / 1000.0), 2)


def _bodies(
    rid: str,
    span: SpanData,
    call: Call,
    events: list[EventData],
    packer: BodyPacker,
    body_cap: int,
) -> dict[str, Any]:
    analysis = call.analysis
    asked = request_body(analysis.model, input_messages(span["a"], events))
    answered = response_body(
        analysis.response_model or analysis.model,
        output_messages(span["a"], events),
        usage_of(analysis),
    )
    req, req_cut = packer.pack(strip_inline_media(asked) if asked else None, body_cap)
    resp, resp_cut = packer.pack(strip_inline_media(answered) if answered else None, body_cap)
    return {
        "request_id": rid,
        "encoding": ENCODING,
        "request_body": req,
        "response_body": resp,
        "request_headers": {"request": [], "query": None, "response": []},
        "truncated": req_cut or resp_cut,
    }
