"""E2E: OpenTelemetry export from `heliograph serve`, configured only with the standard
OTEL_EXPORTER_OTLP_* variables as the README says.

An OTLP/HTTP receiver runs in the test and decodes what the writer process sends with
``opentelemetry-proto``. A real application instrumented with the OpenTelemetry SDK starts a
span, injects its context into the headers and calls through the gateway with the real
``openai`` package: the gateway's span must arrive as that span's child in the same trace,
with the GenAI attributes equal to the stored record, the ids the record API shows, and the
span id the upstream received in its ``traceparent``. Message content is not exported by
default, and an upstream error arrives with status ERROR and ``error.type``.
"""

from __future__ import annotations

import gzip
import importlib.util
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import orjson
import pytest
from e2e_harness import Heliograph, marker, new_id, received, serving
from opentelemetry import propagate
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import free_port
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

WAIT_S = 30.0
CLIENT_KEY = "sk-proj-otel-e2e-0123456789abcdef"


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in items if isinstance(kv, KeyValue)}


class Receiver:
    """An OTLP/HTTP (protobuf) trace receiver on a free loopback port."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], Span]] = []  # (resource attributes, span)
        self.posts: list[str] = []  # request paths, in order
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                encoding = self.headers.get("content-encoding", "")
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                request = ExportTraceServiceRequest()
                request.ParseFromString(raw)
                with receiver.lock:
                    receiver.posts.append(self.path)
                    for resource_spans in request.resource_spans:
                        resource = attributes(resource_spans.resource.attributes)
                        for scope_spans in resource_spans.scope_spans:
                            receiver.spans += [(resource, s) for s in scope_spans.spans]
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def span_of(self, record_id: str, timeout: float = WAIT_S) -> tuple[dict[str, Any], Span]:
        """The exported span of a record (by heliograph.record_id), waiting boundedly."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [
                    (r, s)
                    for r, s in self.spans
                    if attributes(s.attributes).get("heliograph.record_id") == record_id
                ]
            if found:
                assert len(found) == 1, f"record {record_id} exported {len(found)} times"
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no span for record {record_id} within {timeout} s")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.thread.start()
    try:
        yield rec
    finally:
        rec.server.shutdown()
        rec.server.server_close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, upstream: MockUpstream
) -> Iterator[Heliograph]:
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        # What the README says to set: the standard variables only.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    with serving(tmp_path_factory.mktemp("otel-home"), env) as server:
        yield server


@pytest.fixture
def app() -> tuple[TracerProvider, InMemorySpanExporter]:
    """The application's own tracing: an SDK tracer provider with its in-memory exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-assistant"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def client(serve: Heliograph) -> openai.OpenAI:
    return openai.OpenAI(base_url=serve.url("v1"), api_key=CLIENT_KEY, max_retries=0)


def test_the_gateway_span_joins_the_applications_trace(
    serve: Heliograph,
    receiver: Receiver,
    upstream: MockUpstream,
    app: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = app
    assert any("OpenTelemetry export: on (http/protobuf" in line for line in serve.lines)
    rid, text = new_id(), marker()
    tracer = provider.get_tracer("shop-assistant")
    with tracer.start_as_current_span("answer-question") as app_span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        assert "traceparent" in carrier
        with client(serve) as llm:
            reply = llm.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Say hello {text}"}],
                extra_headers={**carrier, "Helicone-Request-Id": rid, "Helicone-User-Id": "alice"},
            )
    assert reply.choices[0].message.content
    context = app_span.get_span_context()
    app_trace, app_span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    [finished] = memory.get_finished_spans()
    assert finished.context is not None and finished.context.span_id == context.span_id

    record = serve.record(rid)
    assert (record["trace_id"], record["parent_span_id"]) == (app_trace, app_span_id)
    assert record["span_id"] and record["span_id"] != app_span_id

    resource, span = receiver.span_of(rid)
    assert receiver.posts and set(receiver.posts) == {"/v1/traces"}
    assert resource["service.name"] == "heliograph"
    assert span.trace_id.hex() == app_trace == record["trace_id"]
    assert span.parent_span_id.hex() == app_span_id == record["parent_span_id"]
    assert span.span_id.hex() == record["span_id"]
    assert span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert span.name == "chat gpt-4o-mini"
    assert span.status.code != Status.StatusCode.STATUS_CODE_ERROR
    attrs = attributes(span.attributes)
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": record["response_model"],
        "gen_ai.usage.input_tokens": record["prompt_tokens"],
        "gen_ai.usage.output_tokens": record["completion_tokens"],
        "server.address": "127.0.0.1",
        "server.port": upstream.port,
        "http.response.status_code": 200,
        "user.id": "alice",
        "heliograph.user_id": "alice",
        "heliograph.upstream": "openai",
        "heliograph.state": "ok",
    }
    assert {k: attrs.get(k) for k in expected} == expected
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert record["cost_known"] is True  # gpt-4o-mini has a price
    assert record["cost_usd"] > 0
    assert attrs["heliograph.cost_usd"] == pytest.approx(record["cost_usd"])
    # The span's time is the record's: it starts when the request arrived and lasts its latency.
    assert span.end_time_unix_nano - span.start_time_unix_nano == pytest.approx(
        record["latency_ms"] * 1e6, abs=1e6
    )
    # Content is not exported unless HELIOGRAPH_OTEL_CAPTURE_CONTENT is on.
    assert not [k for k in attrs if k.startswith(("gen_ai.input", "gen_ai.output"))]
    assert text not in str(span)

    # The upstream got the gateway's span as its parent, in the same trace.
    sent = received(upstream, text).headers["traceparent"]
    assert sent == f"00-{app_trace}-{record['span_id']}-{context.trace_flags:02x}"


def test_an_untraced_call_gets_its_own_stable_trace(serve: Heliograph, receiver: Receiver) -> None:
    rid, text = new_id(), marker()
    with client(serve) as llm:
        llm.embeddings.create(
            model="text-embedding-3-small",
            input=f"hello {text}",
            extra_headers={"Helicone-Request-Id": rid},
        )
    record = serve.record(rid)
    assert record["trace_id"] is None
    _, span = receiver.span_of(rid)
    assert span.trace_id.hex() == uuid.UUID(rid).hex  # derived from the record id
    assert span.parent_span_id == b""
    assert span.name == "embeddings text-embedding-3-small"
    attrs = attributes(span.attributes)
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.usage.input_tokens"] == record["prompt_tokens"] > 0


def test_an_upstream_error_is_an_error_span(
    serve: Heliograph,
    receiver: Receiver,
    app: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = app
    rid = new_id()
    with provider.get_tracer("shop-assistant").start_as_current_span("retry-later") as app_span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        with client(serve) as llm, pytest.raises(openai.RateLimitError):
            llm.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={**carrier, "Helicone-Request-Id": rid, "x-mock-status": "429"},
            )
    record = serve.record(rid)
    assert record["status"] == 429
    _, span = receiver.span_of(rid)
    assert span.parent_span_id.hex() == f"{app_span.get_span_context().span_id:016x}"
    assert span.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert span.status.message
    attrs = attributes(span.attributes)
    assert attrs["error.type"] == "429"
    assert attrs["http.response.status_code"] == 429


def test_content_goes_out_when_the_setting_says_so(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, upstream: MockUpstream
) -> None:
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_OTEL_CAPTURE_CONTENT": "true",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{receiver.port}/v1/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SERVICE_NAME": "llm-gateway",
    }
    server = Heliograph(tmp_path_factory.mktemp("otel-content"), free_port(), env=env)
    try:
        server.start()
        assert any("with message content" in line for line in server.lines), server.output()
        rid, text = new_id(), marker()
        with client(server) as llm:
            llm.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Say hello {text}"}],
                temperature=0.3,
                extra_headers={"Helicone-Request-Id": rid},
            )
        record = server.record(rid)
        resource, span = receiver.span_of(rid)
    finally:
        server.stop()
    assert resource["service.name"] == "llm-gateway"  # OTEL_SERVICE_NAME wins
    attrs = attributes(span.attributes)
    assert orjson.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": f"Say hello {text}"}]}
    ]
    [answer] = orjson.loads(attrs["gen_ai.output.messages"])
    assert answer["role"] == "assistant" and answer["finish_reason"] == "stop"
    assert (
        answer["parts"][0]["content"] == record["response_body"]["choices"][0]["message"]["content"]
    )
    assert attrs["gen_ai.request.temperature"] == pytest.approx(0.3)


def test_grpc_without_its_extra_stops_serve_with_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream
) -> None:
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    server = Heliograph(tmp_path_factory.mktemp("otel-grpc"), free_port(), env=env)
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        try:
            server.start()
            assert any("OpenTelemetry export: on (grpc" in line for line in server.lines)
        finally:
            server.stop()
        return
    with pytest.raises(RuntimeError, match="serve exited") as failed:
        server.start(timeout=60)
    assert "pip install 'heliograph[grpc]'" in str(failed.value)
