"""Building OTLP trace batches for tests, in protobuf and in OTLP/JSON."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


@dataclass
class SpanSpec:
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    trace_id: bytes = b""
    span_id: bytes = field(default_factory=lambda: os.urandom(8))
    parent: bytes = b""
    start_ns: int = 0
    end_ns: int = 0
    kind: int = Span.SPAN_KIND_INTERNAL
    status: int = 0
    status_message: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def proto(self) -> Span:
        span = Span(
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent,
            name=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            start_time_unix_nano=self.start_ns,
            end_time_unix_nano=self.end_ns,
            status=Status(code=self.status, message=self.status_message),  # type: ignore[arg-type]
        )
        span.attributes.extend(key_values(self.attributes))
        for name, attrs in self.events:
            event = span.events.add(name=name, time_unix_nano=self.start_ns)
            event.attributes.extend(key_values(attrs))
        return span


def trace(*specs: SpanSpec, start_ns: int | None = None) -> list[SpanSpec]:
    """Give the specs one trace id and plausible times (each 1 s long, 10 ms apart)."""
    trace_id = os.urandom(16)
    base = start_ns or time.time_ns() - 60 * 10**9
    for i, spec in enumerate(specs):
        spec.trace_id = spec.trace_id or trace_id
        spec.start_ns = spec.start_ns or base + i * 10**7
        spec.end_ns = spec.end_ns or spec.start_ns + 10**9
    return list(specs)


def batch(specs: list[SpanSpec], service: str = "test-app") -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[ScopeSpans(spans=[s.proto() for s in specs])],
            )
        ]
    )
    request.resource_spans[0].resource.attributes.extend(key_values({"service.name": service}))
    request.resource_spans[0].scope_spans[0].scope.name = "tests"
    return request.SerializeToString()


def json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a string, as OTLP/JSON writes it
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def json_batch(specs: list[SpanSpec], service: str = "test-app") -> dict[str, Any]:
    """The same batch in OTLP/JSON: lowerCamelCase names, hex ids, int64 as strings."""
    spans = []
    for s in specs:
        spans.append(
            {
                "traceId": s.trace_id.hex().upper(),
                "spanId": s.span_id.hex(),
                "parentSpanId": s.parent.hex(),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": str(s.start_ns),
                "endTimeUnixNano": str(s.end_ns),
                "attributes": [{"key": k, "value": json_value(v)} for k, v in s.attributes.items()],
                "status": {"code": s.status, "message": s.status_message},
            }
        )
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}


def chat_attributes(model: str = "gpt-4o-mini", inp: int = 11, out: int = 5) -> dict[str, Any]:
    """What opentelemetry-instrumentation-openai-v2 sets on a chat span (latest conventions)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.input.messages": '[{"role":"user","parts":[{"content":"hi there","type":"text"}]}]',
        "gen_ai.output.messages": '[{"role":"assistant","parts":[{"content":"Hello.",'
        '"type":"text"}],"finish_reason":"stop"}]',
        "server.address": "api.openai.com",
    }
