"""OpenTelemetry export: a record's span (GenAI conventions, ids, parent, errors, content) and
the writer's hand-over to the SDK's batch processor (bounded, never blocking, flushed at exit).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import Engine

from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.capture.writer import Writer
from heliograph.config import Settings
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import REQUESTS, RecordBatch
from heliograph.telemetry import export
from heliograph.telemetry.export import ExportSetupError, SpanExport, make_span_export
from heliograph.telemetry.spans import (
    SpanSetup,
    derived_ids,
    operation_name,
    provider_name,
    record_span,
)
from test_writer import CHAT_REQUEST, SAMPLES, end_frame, put, start_frame

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SPAN = "b7ad6b7169203331"
RID = "019a3f2c-7b1e-7c3d-9a4b-0123456789ab"
SETUP = SpanSetup(
    resource=Resource({"service.name": "heliograph"}),
    servers={"openai": ("api.openai.com", 443)},
)


def row(**changes: Any) -> dict[str, Any]:
    """A record row as record.request_row builds it (the columns the span reads)."""
    base: dict[str, Any] = {
        "id": RID,
        "org_id": "org-1",
        "created_at": 1_700_000_000_500,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "stream": True,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": 42.5,
        "ttft_ms": 12.0,
        "prompt_tokens": 14,
        "completion_tokens": 5,
        "cached_tokens": 3,
        "cache_write_tokens": 2,
        "reasoning_tokens": 1,
        "cost_nusd": 12_345,
        "cost_known": True,
        "user_id": "alice",
        "session_id": "sess-1",
        "properties": {"environment": "prod"},
        "cache_hit": False,
        "served_by": "openai",
        "trace_id": None,
        "span_id": None,
        "parent_span_id": None,
        "source": "gateway",
    }
    return {**base, **changes}


# ------------------------------------------------------------------------------ mapping


def test_a_traced_record_is_a_client_span_in_the_clients_trace() -> None:
    span = record_span(row(trace_id=TRACE, parent_span_id=PARENT, span_id=SPAN), SETUP)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.context is not None and span.parent is not None
    assert (span.context.trace_id, span.context.span_id) == (int(TRACE, 16), int(SPAN, 16))
    assert (span.parent.trace_id, span.parent.span_id) == (int(TRACE, 16), int(PARENT, 16))
    assert span.parent.is_remote and span.context.trace_flags.sampled
    assert span.start_time == 1_700_000_000_500 * 1_000_000
    assert span.end_time == span.start_time + 42_500_000
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 14,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 3,
        "gen_ai.usage.cache_creation.input_tokens": 2,
        "gen_ai.usage.reasoning.output_tokens": 1,
        "gen_ai.conversation.id": "sess-1",
        "server.address": "api.openai.com",
        "server.port": 443,
        "http.response.status_code": 200,
        "user.id": "alice",
        "heliograph.user_id": "alice",
        "heliograph.record_id": RID,
        "heliograph.cost_usd": 12_345 / 1e9,
        "heliograph.ttft_ms": 12.0,
        "heliograph.upstream": "openai",
        "heliograph.state": "ok",
        "heliograph.properties.environment": "prod",
    }


def test_what_is_unknown_empty_or_default_is_left_out() -> None:
    plain = row(cached_tokens=0, cache_write_tokens=None, reasoning_tokens=0, user_id=None)
    plain.update(session_id=None, properties=None, ttft_ms=None, response_model=None)
    attrs = record_span(plain, SETUP).attributes or {}
    assert sorted(attrs) == [
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "heliograph.cost_usd",
        "heliograph.record_id",
        "heliograph.state",
        "heliograph.upstream",
        "http.response.status_code",
        "server.address",
        "server.port",
    ]
    hit = record_span(row(cache_hit=True, retries=2, served_by="backup"), SETUP).attributes
    assert hit is not None
    assert (hit["heliograph.cache_hit"], hit["heliograph.retries"]) == (True, 2)
    assert hit["heliograph.served_by"] == "backup" and "server.address" not in hit


def test_an_untraced_record_gets_stable_ids_from_its_record_id() -> None:
    first, again = record_span(row(), SETUP), record_span(row(), SETUP)
    assert first.parent is None
    assert first.context is not None and again.context is not None
    assert first.context.trace_id == uuid.UUID(RID).int  # the UUIDv7's 128 bits
    assert (first.context.trace_id, first.context.span_id) == (
        again.context.trace_id,
        again.context.span_id,
    )
    other = record_span(row(id=str(uuid.uuid4())), SETUP).context
    assert other is not None and other.span_id != first.context.span_id
    # A client's own request id that is not a UUID still gives valid, stable ids.
    trace, span = derived_ids("my-request-42")
    assert derived_ids("my-request-42") == (trace, span) and trace > 0 and span > 0
    assert trace < 2**128 and span < 2**64


def test_a_failed_record_has_error_status_and_type() -> None:
    span = record_span(row(status=429, state="error", error="Rate limit reached"), SETUP)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Rate limit reached"
    attrs = span.attributes or {}
    assert attrs["error.type"] == "429" and attrs["http.response.status_code"] == 429
    cut = record_span(row(status=0, state="interrupted", latency_ms=None, error=None), SETUP)
    assert cut.status.status_code is StatusCode.ERROR
    assert (cut.attributes or {})["error.type"] == "interrupted"
    assert "http.response.status_code" not in (cut.attributes or {})
    assert cut.end_time == cut.start_time
    ok = record_span(row(), SETUP).attributes or {}
    assert "error.type" not in ok


@pytest.mark.parametrize(
    ("endpoint", "kind", "operation"),
    [
        ("/chat/completions", "llm", "chat"),
        ("/v1/chat/completions", "llm", "chat"),
        ("/openai/deployments/gpt4/chat/completions", "llm", "chat"),
        ("/responses", "llm", "chat"),
        ("/v1/messages", "llm", "chat"),
        ("/api/chat", "llm", "chat"),
        ("/completions", "llm", "text_completion"),
        ("/api/generate", "llm", "text_completion"),
        ("/embeddings", "llm", "embeddings"),
        ("/api/embed", "llm", "embeddings"),
        ("/moderations", "llm", None),
        ("/models", "other", None),
    ],
)
def test_operation_names(endpoint: str, kind: str, operation: str | None) -> None:
    assert operation_name(row(endpoint=endpoint, kind=kind)) == operation


def test_other_calls_are_named_by_method_and_path_and_providers_by_the_conventions() -> None:
    span = record_span(row(kind="other", method="GET", endpoint="/models", model=None), SETUP)
    assert span.name == "GET /models"
    assert "gen_ai.operation.name" not in (span.attributes or {})
    assert [provider_name(p) for p in ("azure", "bedrock", "gemini", "mistral", "ollama")] == [
        "azure.ai.openai",
        "aws.bedrock",
        "gcp.gemini",
        "mistral_ai",
        "ollama",
    ]


def test_properties_packed_as_json_text_and_unknown_cost() -> None:
    packed = row(properties='{"team": "search"}', cost_known=False, cost_nusd=None)
    attrs = record_span(packed, SETUP).attributes or {}
    assert attrs["heliograph.properties.team"] == "search"
    assert "heliograph.cost_usd" not in attrs


# ------------------------------------------------------------------------------ writer


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def drain_spans(
    engine: Engine, tmp_path: Path, *, content: bool, frames: list[tuple[str, dict[str, Any]]]
) -> tuple[list[ReadableSpan], Writer]:
    root = tmp_path / "spool"
    spool = SpoolWriter(root, segment_bytes=1 << 20)
    response = (SAMPLES / "chat.json").read_bytes()
    for rid, extra in frames:
        put(spool, KIND_START, start_frame(rid, **extra))
        put(spool, KIND_END, end_frame(rid, response))
    memory = InMemorySpanExporter()
    setup = SpanSetup(resource=SETUP.resource, servers=SETUP.servers, capture_content=content)
    writer = Writer(engine, root, spans=SpanExport(memory, setup))
    assert writer.drain().records == len(frames)
    assert writer.spans is not None and writer.spans.flush()
    spool.close()
    return list(memory.get_finished_spans()), writer


def test_the_writer_exports_what_it_committed_without_content(
    sqlite: Engine, tmp_path: Path
) -> None:
    rid = str(uuid.uuid4())
    meta = [["helicone-user-id", "bob"], ["helicone-property-team", "search"]]
    [span], writer = drain_spans(sqlite, tmp_path, content=False, frames=[(rid, {"headers": meta})])
    attrs = span.attributes or {}
    assert span.name == "chat gpt-4o-mini"
    assert attrs["heliograph.record_id"] == rid and attrs["user.id"] == "bob"
    assert attrs["gen_ai.usage.input_tokens"] == 14 and attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["heliograph.properties.team"] == "search"
    assert not any(
        k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.request.temp")) for k in attrs
    )
    assert writer.spans is not None and writer.spans.stats()["sent"] == 1
    # The same frames replayed (another spool): nothing new is stored, nothing is exported.
    replay = SpoolWriter(tmp_path / "replay", segment_bytes=1 << 20)
    put(replay, KIND_START, start_frame(rid, headers=meta))
    put(replay, KIND_END, end_frame(rid, (SAMPLES / "chat.json").read_bytes()))
    again = Writer(sqlite, tmp_path / "replay", spans=writer.spans)
    assert again.drain().records == 1  # read and offered to the store, which had it
    writer.spans.flush()
    assert writer.spans.stats()["sent"] == 1
    replay.close()
    writer.close()


def test_content_is_exported_when_enabled(sqlite: Engine, tmp_path: Path) -> None:
    body = {**CHAT_REQUEST, "temperature": 0.2, "max_tokens": 50}
    body["messages"] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    [span], writer = drain_spans(
        sqlite, tmp_path, content=True, frames=[(str(uuid.uuid4()), {"body": body})]
    )
    attrs = span.attributes or {}
    assert orjson.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
    ]
    assert orjson.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello from the mock upstream."}],
            "finish_reason": "stop",
        }
    ]
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 50
    writer.close()


def test_anthropic_system_prompt_goes_to_system_instructions() -> None:
    from heliograph.telemetry.content import input_attributes

    attrs = input_attributes(
        {"system": "You are terse.", "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert orjson.loads(str(attrs["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "You are terse."}
    ]
    assert orjson.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    ]


def packed(rid: str, **changes: Any) -> tuple[Any, ...]:
    return REQUESTS.pack(row(id=rid, **changes))


class Stalled(SpanExporter):
    """A collector that does not answer until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.got: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        self.got += [s.name for s in spans]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_otlp_records_are_not_sent_back_and_a_full_queue_drops_without_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalled = Stalled()
    spans = SpanExport(stalled, SETUP, queue_size=3, schedule_delay_ms=10)
    ids = [str(uuid.uuid4()) for _ in range(6)]
    batch = RecordBatch(requests=[packed(ids[0], source="otlp")])
    assert spans.send(batch, {ids[0]}) == 0
    batch = RecordBatch(requests=[packed(i) for i in ids[1:]])
    t0 = time.monotonic()
    queued = spans.send(batch, set(ids[1:]))
    assert time.monotonic() - t0 < 1.0  # never waits for the collector
    assert queued == 3
    assert spans.stats()["dropped"] == 2
    assert "export queue full" in caplog.text
    stalled.release.set()
    spans.close(timeout=5)
    assert len(stalled.got) == 3


def test_close_is_bounded_when_the_collector_hangs() -> None:
    class Hung(Stalled):
        def shutdown(self) -> None:
            pass  # never lets the export return

    hung = Hung()
    spans = SpanExport(hung, SETUP, queue_size=10, schedule_delay_ms=10)
    spans.send(RecordBatch(requests=[packed(str(uuid.uuid4()))]), set())  # nothing new
    assert spans.stats()["waiting"] == 0
    rid = str(uuid.uuid4())
    spans.send(RecordBatch(requests=[packed(rid)]), {rid})
    t0 = time.monotonic()
    spans.close(timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    hung.release.set()


# ------------------------------------------------------------------------------ configuration


def test_export_follows_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    auto = Settings(home=Path("/nonexistent"))
    assert make_span_export(auto, env={}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    made = make_span_export(auto, env=endpoint)
    assert made is not None
    made.close(timeout=1)
    assert make_span_export(auto, env={**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    assert make_span_export(auto, env={**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    off = Settings(home=Path("/nonexistent"), otel_export="off")
    assert make_span_export(off, env=endpoint) is None
    on = Settings(home=Path("/nonexistent"), otel_export="on")
    assert export.describe(on, env={}) == (
        "OpenTelemetry export: on (http/protobuf to http://localhost:4318, without message content)"
    )
    json_env = {**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    with pytest.raises(ExportSetupError, match="http/json"):
        export.describe(auto, env=json_env)
    assert make_span_export(auto, env=json_env) is None  # logged; the writer carries on
    monkeypatch.setenv("HELIOGRAPH_OTEL_EXPORT", "on")
    monkeypatch.setenv("HELIOGRAPH_OTEL_CAPTURE_CONTENT", "true")
    from_env = Settings(home=Path("/nonexistent"))
    assert (from_env.otel_export, from_env.otel_capture_content) == ("on", True)


def test_grpc_needs_its_extra() -> None:
    grpc = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
    except ImportError:
        with pytest.raises(ExportSetupError, match=r"heliograph\[grpc\]"):
            export.otlp_exporter(grpc)
    else:
        assert type(export.otlp_exporter(grpc)).__module__.endswith("grpc.trace_exporter")


def test_service_name_is_heliograph_unless_the_variables_say_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    attrs = export.resource().attributes
    assert attrs["service.name"] == "heliograph" and attrs["service.version"]
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "llm-gateway")
    attrs = export.resource().attributes
    assert attrs["service.name"] == "llm-gateway"
    assert attrs["deployment.environment"] == "prod"
