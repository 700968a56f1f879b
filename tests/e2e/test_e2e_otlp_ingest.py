"""OTLP ingest end to end: an application instrumented with the real
opentelemetry-instrumentation-openai-v2 calls the (mock) provider directly, not through the
gateway, and exports its trace to `heliograph serve` as the README says: the OTLP/HTTP
exporter configured by OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS.
The LLM call becomes a record priced like a gateway record of the same call; the agent and
tool spans around it are stored with their parents.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, serving
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from heliograph.store.engine import make_engine
from heliograph.store.orgs import first_org
from heliograph.store.spans import spans_of_trace
from mock_upstream import DEFAULT_TEXT, MockUpstream, prompt_tokens_for, split_pieces

pytestmark = pytest.mark.slow
MODEL = "gpt-4o-mini"
PROMPT = "What is the capital of France? Answer briefly."
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    with MockUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[Heliograph]:
    home = tmp_path_factory.mktemp("otlp-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": mock.url,
        "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",
        "HELIOGRAPH_DATABASE_URL": f"sqlite:///{home / 'otlp.db'}",
    }
    with serving(home, env) as heliograph:
        yield heliograph


def otlp_records(server: Heliograph, trace_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        resp = server.api("/api/v1/requests", source="otlp", trace_id=trace_id, limit=100)
        assert resp.status_code == 200, resp.text
        rows = resp.json()["data"]
        if len(rows) >= n:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"expected {n} otlp records of {trace_id}, saw {rows}\n{server.output()}")


def stored_spans(server: Heliograph, trace_id: str, n: int) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{server.home / 'otlp.db'}")
    try:
        org = first_org(engine)
        assert org is not None
        deadline = time.monotonic() + TIMEOUT
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = spans_of_trace(engine, org, trace_id)
            if len(rows) >= n:
                return rows
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"expected {n} spans, saw {rows}")


def test_instrumented_app_traces_become_records_and_spans(
    server: Heliograph, mock: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's configuration of a standard OTLP exporter, and message capture on spans.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{server.base_url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {server.write_key}")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    provider = TracerProvider(resource=Resource.create({"service.name": "trip-planner"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=mock.url, api_key="sk-app-own-key", max_retries=0)
        tracer = provider.get_tracer("trip-planner")
        with tracer.start_as_current_span("invoke_agent planner") as agent:
            agent.set_attribute("gen_ai.operation.name", "invoke_agent")
            with tracer.start_as_current_span("execute_tool lookup_city") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "lookup_city")
                answer = client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": PROMPT}]
                )
        assert provider.force_flush(10_000)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert answer.choices[0].message.content == DEFAULT_TEXT
    trace_id = f"{agent.get_span_context().trace_id:032x}"
    agent_id = f"{agent.get_span_context().span_id:016x}"
    tool_id = f"{tool.get_span_context().span_id:016x}"

    (record,) = otlp_records(server, trace_id, 1)
    prompt_tokens = prompt_tokens_for(len(PROMPT))
    completion_tokens = len(split_pieces(DEFAULT_TEXT))
    assert answer.usage is not None and answer.usage.prompt_tokens == prompt_tokens
    assert record["source"] == "otlp" and record["model"] == MODEL
    assert record["provider"] == "openai" and record["state"] == "ok"
    assert record["prompt_tokens"] == prompt_tokens
    assert record["completion_tokens"] == completion_tokens
    assert record["parent_span_id"] == tool_id and record["trace_id"] == trace_id
    assert record["latency_ms"] > 0

    # The same call through the gateway is priced the same.
    via_gateway = httpx.post(
        f"{server.url('v1')}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]},
        timeout=15,
    )
    assert via_gateway.status_code == 200
    gateway_record = server.record(via_gateway.headers["heliograph-id"])
    assert gateway_record["prompt_tokens"] == prompt_tokens
    assert record["cost_usd"] is not None and record["cost_usd"] > 0
    assert record["cost_usd"] == pytest.approx(gateway_record["cost_usd"])

    detail = server.record(record["id"])
    assert detail["request_body"]["messages"] == [{"role": "user", "content": PROMPT}]
    assert detail["response_body"]["choices"][0]["message"]["content"] == DEFAULT_TEXT

    spans = {s["span_id"]: s for s in stored_spans(server, trace_id, 3)}
    assert spans[agent_id]["parent_span_id"] is None
    assert spans[agent_id]["name"] == "invoke_agent planner"
    assert spans[tool_id]["parent_span_id"] == agent_id
    assert spans[tool_id]["attributes"]["gen_ai.tool.name"] == "lookup_city"
    assert spans[record["span_id"]]["request_id"] == record["id"]
    assert {s["service"] for s in spans.values()} == {"trip-planner"}
    assert len(mock.requests) == 2  # the app's call and the gateway's: no batch went upstream

    # The trace view: agent -> tool -> the LLM call, which opens its record.
    tree = server.api(f"/api/v1/traces/{trace_id}").json()
    got = [(n["span_id"], n["depth"], (n["request"] or {}).get("id")) for n in tree["nodes"]]
    assert got == [(agent_id, 0, None), (tool_id, 1, None), (record["span_id"], 2, record["id"])]


def test_malformed_batch_gets_400_and_nothing_is_stored(server: Heliograph) -> None:
    before = server.api("/api/v1/requests", source="otlp", limit=1000).json()["data"]
    resp = httpx.post(
        f"{server.base_url}/v1/traces",
        content=b"\x0a\xff\xff\xff\xff\x0f broken",
        headers={
            "content-type": "application/x-protobuf",
            "authorization": f"Bearer {server.write_key}",
        },
        timeout=10,
    )
    assert resp.status_code == 400
    assert Status.FromString(resp.content).code == 3
    time.sleep(1.0)  # the writer polls every 20 ms: anything spooled would be stored by now
    after = server.api("/api/v1/requests", source="otlp", limit=1000).json()["data"]
    assert after == before
