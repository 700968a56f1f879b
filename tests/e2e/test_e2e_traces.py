"""LLM calls of an instrumented application joined into one trace by `heliograph serve`.

The server is configured with environment variables only. An application traced with the
OpenTelemetry SDK runs an agent span with two tool spans and, inside each, a chat call through
the gateway with the real `openai` package, the W3C ``traceparent`` put in the headers by
``opentelemetry.propagate.inject``. The traces API and the dashboard's trace page (logged in
over HTTP) must show both calls in the application's trace, under the tool spans that made
them, each linked to its request page. Before the application's own spans reach the store the
calls stand as roots whose parent was not recorded; once the spans the SDK finished are stored
(as the OTLP ingest stores them), the tree is agent > tool > call.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, admin_env, dashboard_login, new_id, serving
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from heliograph.store.engine import make_engine
from heliograph.store.schema import organizations
from heliograph.store.spans import insert_spans
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "traces@example.com"
ADMIN_PASSWORD = "e2e traces horse battery"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("traces-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
    }
    with serving(home, env) as server:
        yield server


def hex_span(span: Any) -> str:
    return format(span.get_span_context().span_id, "016x")


def run_agent(sdk: openai.OpenAI, tracer: trace.Tracer) -> dict[str, Any]:
    """An agent span, two tool spans, one chat call through the gateway inside each."""
    ids: dict[str, Any] = {}
    with tracer.start_as_current_span("agent plan-trip") as agent:
        ids["trace"] = format(agent.get_span_context().trace_id, "032x")
        ids["agent"] = hex_span(agent)
        for tool in ("trains", "hotels"):
            with tracer.start_as_current_span(f"tool {tool}") as span:
                carrier: dict[str, str] = {}
                propagate.inject(carrier)  # traceparent of the current (tool) span
                assert carrier["traceparent"].split("-")[2] == hex_span(span)
                rid = new_id()
                sdk.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Find {tool} to Oslo."}],
                    extra_headers={**carrier, "Helicone-Request-Id": rid},
                )
                ids[tool] = (hex_span(span), rid)
    return ids


def wait_trace(serve: Heliograph, trace_id: str, calls: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        resp = serve.api(f"/api/v1/traces/{trace_id}")
        if resp.status_code == 200 and resp.json()["llm_calls"] >= calls:
            data: dict[str, Any] = resp.json()
            return data
        assert time.monotonic() < deadline, resp.text[:500]
        time.sleep(0.1)


def span_rows(org_id: str, finished: tuple[ReadableSpan, ...]) -> list[dict[str, Any]]:
    """The SDK's finished spans as the OTLP ingest stores them (no LLM span among them)."""
    rows = []
    for s in finished:
        assert s.context is not None and s.start_time is not None and s.end_time is not None
        rows.append(
            {
                "org_id": org_id,
                "trace_id": format(s.context.trace_id, "032x"),
                "span_id": format(s.context.span_id, "016x"),
                "parent_span_id": format(s.parent.span_id, "016x") if s.parent else None,
                "name": s.name,
                "kind": "internal",
                "service": "travel-agent",
                "start_ns": s.start_time,
                "end_ns": s.end_time,
                "status": "unset",
                "status_message": None,
                "attributes": {"tool": s.name.split()[-1]},
                "request_id": None,
                "created_at": int(time.time() * 1000),
            }
        )
    return rows


def waterfall(page: str) -> list[tuple[str, str, str]]:
    """(span id, depth, request page link) of the waterfall's rows, in page order."""
    out = []
    for attrs, body in re.findall(r"<tr (data-span=[^>]*)>(.*?)</tr>", page, re.S):
        span = re.search(r'data-span="([^"]+)"', attrs)
        depth = re.search(r'data-depth="(\d+)"', attrs)
        link = re.search(r'<a class="span-title" href="([^"]+)"', body)
        assert span and depth
        out.append((span.group(1), depth.group(1), html.unescape(link.group(1)) if link else ""))
    return out


def test_calls_with_one_traceparent_join_one_trace(serve: Heliograph) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e-agent")
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-e2e", max_retries=0) as sdk:
        ids = run_agent(sdk, tracer)
    trace_id = ids["trace"]
    (trains_span, trains_rid), (hotels_span, hotels_rid) = ids["trains"], ids["hotels"]

    # Only the gateway's records so far: both calls, each under its tool span (not stored)
    tree = wait_trace(serve, trace_id, 2)
    calls = [n for n in tree["nodes"] if n["request"]]
    assert [(n["request"]["id"], n["parent_span_id"]) for n in calls] == [
        (trains_rid, trains_span),
        (hotels_rid, hotels_span),
    ]
    for node in calls:
        assert node["depth"] == 0 and node["note"] == "parent span not recorded"
        assert node["source"] == "gateway" and node["request"]["model"] == "gpt-4o-mini"
        record = serve.record(node["request"]["id"])
        assert (record["trace_id"], record["span_id"]) == (trace_id, node["span_id"])
    listed = serve.api("/api/v1/traces").json()["data"]
    assert [(t["trace_id"], t["llm_calls"]) for t in listed] == [(trace_id, 2)]

    # The application's spans stored (what OTLP ingest does): the full tree
    engine = make_engine(f"sqlite:///{serve.home / 'heliograph.db'}")
    try:
        with engine.begin() as conn:
            org_id = conn.execute(select(organizations.c.id)).scalar_one()
            assert insert_spans(conn, span_rows(org_id, exporter.get_finished_spans())) == 3
    finally:
        engine.dispose()
    tree = serve.api(f"/api/v1/traces/{trace_id}").json()
    got = [(n["span_id"], n["depth"], (n["request"] or {}).get("id")) for n in tree["nodes"]]
    trains_call = next(n["span_id"] for n in calls if n["request"]["id"] == trains_rid)
    hotels_call = next(n["span_id"] for n in calls if n["request"]["id"] == hotels_rid)
    assert got == [
        (ids["agent"], 0, None),
        (trains_span, 1, None),
        (trains_call, 2, trains_rid),
        (hotels_span, 1, None),
        (hotels_call, 2, hotels_rid),
    ]
    assert all(n["note"] is None for n in tree["nodes"])

    with dashboard_login(serve.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        page = web.get(f"/traces/{trace_id}")
        assert page.status_code == 200
        assert waterfall(page.text) == [
            (ids["agent"], "0", ""),
            (trains_span, "1", ""),
            (trains_call, "2", f"/requests/{trains_rid}"),
            (hotels_span, "1", ""),
            (hotels_call, "2", f"/requests/{hotels_rid}"),
        ]
        assert "agent plan-trip" in page.text and "tool hotels" in page.text
        detail = web.get(f"/requests/{trains_rid}")
        assert f'href="/traces/{trace_id}"' in detail.text
        listing = web.get("/traces").text
        assert f'data-trace="{trace_id}"' in listing and "agent plan-trip" in listing
    assert httpx.get(f"{serve.base_url}/traces/{trace_id}").status_code in (303, 307)
