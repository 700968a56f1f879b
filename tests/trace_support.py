"""A trace to look at: an agent's spans as the OTLP ingest stores them, an ingested LLM call,
and LLM calls through the real gateway under the agent's span (W3C ``traceparent``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from conftest import LiveGateway
from heliograph.store.engine import make_engine
from heliograph.store.inserts import insert_records
from heliograph.store.spans import insert_spans
from web_support import send

TRACE = "5b8efff798038103d269b633813fc60c"
AGENT, TOOL, LLM, LOST = (
    "a1a1a1a1a1a1a1a1",
    "b2b2b2b2b2b2b2b2",
    "c3c3c3c3c3c3c3c3",
    "d4d4d4d4d4d4d4d4",
)
HOSTILE = "<script>alert(1)</script>"
NS = 1_000_000


@dataclass
class Seeded:
    start_ms: int
    ingested: str  # the ingested LLM call's record id
    gateway: str  # the gateway record under the agent span
    orphan: str  # the gateway record whose parent span was never ingested


def span(org_id: str, sid: str, parent: str | None, at: int, dur: int, **kw: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "org_id": org_id,
        "trace_id": TRACE,
        "span_id": sid,
        "parent_span_id": parent,
        "name": f"span {sid}",
        "kind": "internal",
        "service": "travel-agent",
        "start_ns": (now - 60_000 + at) * NS,
        "end_ns": (now - 60_000 + at + dur) * NS,
        "status": "unset",
        "status_message": None,
        "attributes": {},
        "request_id": None,
        "created_at": now,
        **kw,
    }


def ingested_record(org_id: str, rid: str, start_ns: int) -> dict[str, Any]:
    """What the OTLP ingest makes of an LLM span: a record with its ids and source otlp."""
    return {
        "id": rid,
        "org_id": org_id,
        "key_id": None,
        "created_at": start_ns // NS,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "gpt-4o",
        "stream": False,
        "status": 200,
        "state": "ok",
        "latency_ms": 800.0,
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "cost_nusd": 600_000,
        "cost_known": True,
        "trace_id": TRACE,
        "span_id": LLM,
        "parent_span_id": TOOL,
        "source": "otlp",
    }


def seed_trace(gw: LiveGateway, org_id: str | None = None) -> Seeded:
    """Spans (agent > tool > ingested LLM call), two gateway calls in the same trace: one
    under the agent span, one under a span that was never ingested."""
    org = org_id or gw.org.id
    agent = span(org, AGENT, None, 0, 120_000, name="agent plan-trip", attributes={"note": HOSTILE})
    tool = span(
        org, TOOL, AGENT, 200, 1500, name=f"tool {HOSTILE}", attributes={"tool.name": "search"}
    )
    llm = span(org, LLM, TOOL, 400, 800, name="chat gpt-4o", kind="client", request_id="ing-1")
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            insert_spans(conn, [agent, tool, llm])
            insert_records(conn, [ingested_record(org, "ing-1", llm["start_ns"])], [], [])
    finally:
        engine.dispose()
    key = gw.org.write_key if org == gw.org.id else gw.other.write_key
    under_agent = send(gw, "which train?", key=key, traceparent=f"00-{TRACE}-{AGENT}-01")
    orphan = send(gw, "which hotel?", key=key, traceparent=f"00-{TRACE}-{LOST}-01")
    return Seeded(agent["start_ns"] // NS, "ing-1", under_agent, orphan)
