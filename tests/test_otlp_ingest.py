"""OTLP ingest over HTTP: POST /v1/traces on a live app with its embedded writer."""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy import Engine

from conftest import LiveGateway, gateway_settings
from heliograph.capture.builder import make_pricebook
from heliograph.pricing import Usage
from heliograph.store.engine import make_engine
from heliograph.store.spans import spans_of_trace
from mock_upstream import MockUpstream
from otlp_support import SpanSpec, batch, chat_attributes, json_batch, trace

PROTOBUF = {"content-type": "application/x-protobuf"}
LIMIT = 64 * 1024


@pytest.fixture
def live(tmp_path: Path, mock: MockUpstream, db_url: str) -> Iterator[LiveGateway]:
    """The app on each store dialect, its embedded writer on."""
    mock.reset()
    settings = gateway_settings(tmp_path, db_url, mock.url, otlp_max_body_bytes=LIMIT)
    gw = LiveGateway(settings).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def engine(live: LiveGateway) -> Iterator[Engine]:
    eng = make_engine(live.settings.sqlalchemy_url)
    try:
        yield eng
    finally:
        eng.dispose()


def post(
    gw: LiveGateway, body: bytes, key: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = {**PROTOBUF, **(headers or {})}
    if key != "":
        sent["authorization"] = f"Bearer {key or gw.org.write_key}"
    return httpx.post(f"{gw.base_url}/v1/traces", content=body, headers=sent, timeout=10)


def agent_tool_llm() -> list[SpanSpec]:
    agent = SpanSpec("invoke_agent planner", {"gen_ai.operation.name": "invoke_agent"})
    tool = SpanSpec("execute_tool search", {"gen_ai.operation.name": "execute_tool"})
    llm = SpanSpec("chat gpt-4o-mini", chat_attributes(), kind=3)
    specs = trace(agent, tool, llm)
    tool.parent = llm.parent = agent.span_id
    return specs


def wait_spans(engine: Engine, org: str, trace_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = spans_of_trace(engine, org, trace_id)
        if len(rows) >= n:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"expected {n} spans, saw {rows}")


def test_protobuf_batch_becomes_spans_and_a_priced_record(
    live: LiveGateway, engine: Engine, mock: MockUpstream
) -> None:
    specs = agent_tool_llm()
    agent, _tool, llm = specs
    resp = post(live, batch(specs))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert not answer.HasField("partial_success")
    (rec,) = live.wait_records(1, source="otlp")
    assert rec["model"] == "gpt-4o-mini" and rec["provider"] == "openai"
    assert rec["upstream"] == "api.openai.com" and rec["kind"] == "llm"
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["total_tokens"]) == (11, 5, 16)
    assert rec["trace_id"] == agent.trace_id.hex() and rec["span_id"] == llm.span_id.hex()
    assert rec["parent_span_id"] == agent.span_id.hex()
    assert rec["latency_ms"] == pytest.approx(1000.0) and rec["state"] == "ok"
    book = make_pricebook(live.settings)
    cost = book.cost(
        provider="openai",
        model="gpt-4o-mini",
        usage=Usage(prompt_tokens=11, completion_tokens=5),
        upstream="api.openai.com",
        at_ms=llm.start_ns // 1_000_000,
    )
    assert cost.known and rec["cost_usd"] == pytest.approx(cost.total_nusd / 1e9)
    detail = live.record(rec["id"])
    assert detail["request_body"]["messages"] == [{"role": "user", "content": "hi there"}]
    choice = detail["response_body"]["choices"][0]
    assert choice["message"]["content"] == "Hello." and choice["finish_reason"] == "stop"
    rows = wait_spans(engine, live.org.id, agent.trace_id.hex(), 3)
    by_name = {r["name"]: r for r in rows}
    assert by_name["execute_tool search"]["parent_span_id"] == agent.span_id.hex()
    assert by_name["invoke_agent planner"]["parent_span_id"] is None
    assert by_name["chat gpt-4o-mini"]["request_id"] == rec["id"]
    assert by_name["execute_tool search"]["request_id"] is None
    assert by_name["invoke_agent planner"]["service"] == "test-app"
    assert not mock.requests, "an OTLP batch must never reach the upstream"


def test_json_batch_with_hex_ids_and_string_int64(live: LiveGateway, engine: Engine) -> None:
    specs = agent_tool_llm()
    body = orjson.dumps(json_batch(specs))
    resp = post(live, body, headers={"content-type": "application/json"})
    assert resp.status_code == 200 and resp.json() == {}
    (rec,) = live.wait_records(1, source="otlp")
    assert rec["trace_id"] == specs[0].trace_id.hex() and rec["prompt_tokens"] == 11
    assert len(wait_spans(engine, live.org.id, specs[0].trace_id.hex(), 3)) == 3


def test_rejected_spans_are_reported_as_partial_success(live: LiveGateway, engine: Engine) -> None:
    now = time.time_ns()
    good, future, backwards, bad_id = trace(
        SpanSpec("good", chat_attributes()),
        SpanSpec("future", start_ns=now + 2 * 3600 * 10**9),
        SpanSpec("backwards", start_ns=now - 10**9, end_ns=now - 2 * 10**9),
        SpanSpec("bad id", span_id=b"\x00" * 8),
    )
    resp = post(live, batch([good, future, backwards, bad_id]))
    assert resp.status_code == 200
    partial = ExportTraceServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_spans == 3
    assert "future" in partial.error_message and "before they start" in partial.error_message
    json_resp = post(
        live,
        orjson.dumps(json_batch(trace(SpanSpec("f", start_ns=now + 7200 * 10**9)))),
        headers={"content-type": "application/json"},
    )
    assert json_resp.json()["partialSuccess"]["rejectedSpans"] == "1"
    rows = wait_spans(engine, live.org.id, good.trace_id.hex(), 1)
    time.sleep(0.3)  # the writer had its chance to store anything else
    rows = spans_of_trace(engine, live.org.id, good.trace_id.hex())
    assert [r["name"] for r in rows] == ["good"]


def test_malformed_batches_get_400_and_store_nothing(live: LiveGateway, engine: Engine) -> None:
    resp = post(live, b"\xff\xff\xff\xff not protobuf")
    assert resp.status_code == 400
    status = Status.FromString(resp.content)
    assert status.code == 3 and "protobuf" in status.message
    resp = post(live, b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["code"] == 3
    # A valid span beside a malformed part: the whole batch is refused.
    specs = trace(SpanSpec("valid-looking", chat_attributes()))
    doc = json_batch(specs)
    doc["resourceSpans"].append({"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]})
    resp = post(live, orjson.dumps(doc), headers={"content-type": "application/json"})
    assert resp.status_code == 400
    marker = trace(SpanSpec("marker"))
    assert post(live, batch(marker)).status_code == 200
    wait_spans(engine, live.org.id, marker[0].trace_id.hex(), 1)  # the writer got this far
    assert spans_of_trace(engine, live.org.id, specs[0].trace_id.hex()) == []
    assert live.records(source="otlp") == []


def test_size_limits_gzip_and_bombs(live: LiveGateway, engine: Engine) -> None:
    big = SpanSpec("big", {"blob": "x" * (LIMIT + 10)})
    assert post(live, batch(trace(big))).status_code == 413
    specs = trace(SpanSpec("zipped", chat_attributes()))
    resp = post(live, gzip.compress(batch(specs)), headers={"content-encoding": "gzip"})
    assert resp.status_code == 200
    bomb = gzip.compress(b"\x00" * (LIMIT * 50))
    assert len(bomb) < LIMIT
    resp = post(live, bomb, headers={"content-encoding": "gzip"})
    assert resp.status_code == 413 and "decompressed" in Status.FromString(resp.content).message
    resp = post(live, b"\x1f\x8b garbage", headers={"content-encoding": "gzip"})
    assert resp.status_code == 400
    assert post(live, batch(specs), headers={"content-encoding": "br"}).status_code == 415
    assert wait_spans(engine, live.org.id, specs[0].trace_id.hex(), 1)[0]["name"] == "zipped"


def test_content_type_auth_and_method(live: LiveGateway) -> None:
    body = batch(trace(SpanSpec("x")))
    assert post(live, body, headers={"content-type": "text/plain"}).status_code == 415
    assert post(live, body, key="").status_code == 401
    assert post(live, body, key="hg_" + "n" * 30).status_code == 401
    refused = post(live, body, key=live.org.read_key)
    assert refused.status_code == 403 and Status.FromString(refused.content).code == 7
    assert post(live, body, key=live.org.admin_key).status_code == 200
    other_header = {"heliograph-auth": f"Bearer {live.org.write_key}"}
    assert post(live, body, key="", headers=other_header).status_code == 200
    got = httpx.get(f"{live.base_url}/v1/traces", timeout=10)
    assert got.status_code == 405


def test_traces_path_is_never_proxied(live: LiveGateway, mock: MockUpstream) -> None:
    body = batch(trace(SpanSpec("x")))
    key = live.org.write_key
    for path, auth in (
        ("/v1/traces", True),
        ("//v1/traces", True),
        ("/v1//traces/", True),
        (f"/v1/{key}/traces", False),  # the key in the path, as for the gateway
        (f"/{key}/v1/traces", False),
        ("/openai/traces", True),
    ):
        headers = {**PROTOBUF, "authorization": f"Bearer {key}"} if auth else PROTOBUF
        resp = httpx.post(live.base_url + path, content=body, headers=headers, timeout=10)
        assert resp.status_code == 200, path
        assert "heliograph-id" not in resp.headers  # not a gateway answer
    resp = httpx.post(f"{live.base_url}/v1/{live.org.read_key}/traces", content=body, timeout=10)
    assert resp.status_code == 403
    time.sleep(0.2)
    assert mock.requests == []


def test_resent_batch_is_stored_once_and_orgs_are_apart(live: LiveGateway, engine: Engine) -> None:
    specs = agent_tool_llm()
    body = batch(specs)
    assert post(live, body).status_code == 200
    assert post(live, body).status_code == 200
    other = trace(SpanSpec("other org llm", chat_attributes()))
    assert post(live, batch(other), key=live.other.write_key).status_code == 200
    wait_spans(engine, live.other.id, other[0].trace_id.hex(), 1)
    time.sleep(0.3)
    assert len(live.wait_records(1, source="otlp")) == 1
    assert len(spans_of_trace(engine, live.org.id, specs[0].trace_id.hex())) == 3
    theirs = live.records(key=live.other.read_key, source="otlp")
    assert [r["trace_id"] for r in theirs] == [other[0].trace_id.hex()]
    assert spans_of_trace(engine, live.org.id, other[0].trace_id.hex()) == []
    assert os.path.isdir(live.settings.spool_dir)
