"""OTLP trace batches (protobuf or JSON, maybe gzipped) as checked, normalised spans.

This runs on the request path, so it only decodes and validates: mapping spans to records is
the writer's work. A batch that cannot be decoded is refused whole, so nothing of it is
stored; spans that decode but break the rules (bad ids, ending before they start, times far
in the future) are dropped one by one and counted for the OTLP partial-success answer.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import orjson
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KINDS = ("internal", "internal", "server", "client", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
MAX_DEPTH = 6  # nested arrays and key-value lists; deeper values are kept as JSON text
MAX_EVENTS = 64  # per span: enough for message events, bounded for the spool
ZERO_TRACE, ZERO_SPAN = "0" * 32, "0" * 16


class BadBatch(ValueError):
    """The body is not an OTLP trace batch: refused whole with 400."""


class TooLarge(ValueError):
    """The body, or what gzip makes of it, is over the limit: refused with 413."""


class EventData(TypedDict):
    n: str  # name
    t: int  # Unix nanoseconds
    a: dict[str, Any]  # attributes, flattened


class SpanData(TypedDict):
    """One accepted span as spooled: short keys, ids in lower-case hex."""

    t: str  # trace id
    s: str  # span id
    p: str | None  # parent span id
    n: str  # name
    k: str  # kind: internal server client producer consumer
    sv: str | None  # the resource's service.name
    st: int  # start, Unix nanoseconds
    en: int  # end
    ss: str  # status: unset ok error
    sm: str | None  # status message
    a: dict[str, Any]  # attributes, flattened to name -> value
    ev: NotRequired[list[EventData]]  # events, when it has any


@dataclass(slots=True)
class Decoded:
    spans: list[SpanData] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)  # why spans were rejected

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    def message(self) -> str:
        """The partial-success error message: each reason with its count."""
        parts = [f"{count} {reason}" for reason, count in self.reasons.most_common()]
        return f"{self.rejected} span(s) rejected: " + "; ".join(parts) if parts else ""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate or none), never producing more than ``limit``
    bytes: a small gzip bomb must not expand in memory."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise TooLarge(f"the batch is larger than {limit} bytes once decompressed")
        if not inflater.eof:
            raise BadBatch(f"truncated {encoding} body")
    except zlib.error as exc:
        raise BadBatch(f"invalid {encoding} body: {exc}") from exc
    return out


def decode_batch(body: bytes, is_json: bool, now_ns: int, max_future_ns: int) -> Decoded:
    """Parse a batch and check each span; raises :class:`BadBatch` when it is not one."""
    request = _from_json(body) if is_json else _from_protobuf(body)
    out = Decoded()
    latest = now_ns + max_future_ns
    for resource_spans in request.resource_spans:
        resource = flatten(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service = str(service)[:255] if service is not None else None
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                reason = _problem(span, latest)
                if reason is not None:
                    out.reasons[reason] += 1
                    continue
                out.spans.append(_normalise(span, service, scope_name))
    return out


def _from_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError) as exc:  # RuntimeError: recursion too deep
        raise BadBatch(f"not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from exc
    return request


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBatch(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadBatch("the JSON body must be an ExportTraceServiceRequest object")
    request = ExportTraceServiceRequest()
    try:
        _hex_ids_to_base64(doc)
        ParseDict(doc, request, ignore_unknown_fields=True)
    except (ParseError, TypeError, AttributeError, ValueError, RecursionError) as exc:
        raise BadBatch(f"not an OTLP ExportTraceServiceRequest in JSON: {exc}") from exc
    return request


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids in hex, where proto3 JSON expects base64."""
    for resource_spans in _items(doc, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans"):
                _fix_ids(span)
                for link in _items(span, "links"):
                    _fix_ids(link)


def _items(doc: Any, *names: str) -> list[Any]:
    if not isinstance(doc, dict):
        raise BadBatch("expected a JSON object in the batch")
    for name in names:
        value = doc.get(name)
        if value is not None:
            if not isinstance(value, list):
                raise BadBatch(f"{name} must be a list")
            return value
    return []


def _fix_ids(item: Any) -> None:
    if not isinstance(item, dict):
        return
    for camel, snake in (
        ("traceId", "trace_id"),
        ("spanId", "span_id"),
        ("parentSpanId", "parent_span_id"),
    ):
        for name in (camel, snake):
            value = item.get(name)
            if isinstance(value, str):
                try:  # invalid hex becomes a one-byte id: the span is rejected for it
                    raw = binascii.unhexlify(value)
                except (binascii.Error, ValueError):
                    raw = b"\x00"
                item[name] = base64.b64encode(raw).decode()


def _problem(span: Span, latest_ns: int) -> str | None:
    """Why a span is rejected, or None."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "with an invalid trace id"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "with an invalid span id"
    if len(span.parent_span_id) not in (0, 8):
        return "with an invalid parent span id"
    if span.start_time_unix_nano == 0 or span.end_time_unix_nano == 0:
        return "without a start or end time"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "ending before they start"
    if span.end_time_unix_nano > latest_ns or span.start_time_unix_nano > latest_ns:
        return "with timestamps too far in the future"
    if span.start_time_unix_nano >= 2**63 or span.end_time_unix_nano >= 2**63:
        return "with timestamps out of range"
    return None


def _normalise(span: Span, service: str | None, scope_name: str) -> SpanData:
    parent = span.parent_span_id.hex() if span.parent_span_id else None
    attributes = flatten(span.attributes)
    if scope_name and "otel.scope.name" not in attributes:
        attributes["otel.scope.name"] = scope_name
    out: SpanData = {
        "t": span.trace_id.hex(),
        "s": span.span_id.hex(),
        "p": None if parent == ZERO_SPAN else parent,
        "n": span.name,
        "k": KINDS[span.kind] if 0 <= span.kind < len(KINDS) else "internal",
        "sv": service,
        "st": span.start_time_unix_nano,
        "en": span.end_time_unix_nano,
        "ss": STATUSES[span.status.code] if 0 <= span.status.code < len(STATUSES) else "unset",
        "sm": span.status.message or None,
        "a": attributes,
    }
    if span.events:
        out["ev"] = [
            {"n": e.name, "t": e.time_unix_nano, "a": flatten(e.attributes)}
            for e in span.events[:MAX_EVENTS]
        ]
    return out


def flatten(attributes: Any, prefix: str = "") -> dict[str, Any]:
    """OTLP key-values as plain JSON values; a key-value list's keys become ``outer.inner``."""
    out: dict[str, Any] = {}
    for kv in attributes:
        _put(out, prefix + kv.key, kv.value, 0)
    return out


def _put(out: dict[str, Any], name: str, value: AnyValue, depth: int) -> None:
    if value.WhichOneof("value") == "kvlist_value" and depth < MAX_DEPTH:
        for kv in value.kvlist_value.values:
            _put(out, f"{name}.{kv.key}", kv.value, depth + 1)
    else:
        out[name] = plain(value, depth)


def plain(value: AnyValue, depth: int = 0) -> Any:
    """One AnyValue as a JSON value (bytes as base64, as OTLP/JSON writes them)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "bool_value":
        return value.bool_value
    if which == "double_value":
        number = value.double_value
        return number if number == number and abs(number) != float("inf") else str(number)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if depth >= MAX_DEPTH:
        return None
    if which == "array_value":
        return [plain(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: plain(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return None
