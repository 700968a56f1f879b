"""store.traces and store.trace_list on both dialects: a trace's tree (spans and records
joined, an ingested span and its record one node, orphans, loops, truncation, organizations)
and the latest traces."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from heliograph.store import trace_list, traces
from heliograph.store.inserts import insert_records
from heliograph.store.schema import organizations
from heliograph.store.spans import insert_spans

ORG, OTHER = "org-1", "org-2"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = int(time.time() * 1000) - 3_600_000  # ms
NS = 1_000_000


def record(rid: str, at_ms: int, **kw: Any) -> dict[str, Any]:
    row = {
        "id": rid,
        "org_id": ORG,
        "key_id": None,
        "created_at": T0 + at_ms,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "gpt-4o-mini",
        "response_model": None,
        "stream": False,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "output_tokens_per_s": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "cost_nusd": 1000,
        "cost_known": True,
        "user_id": "u1",
        "session_id": None,
        "properties": None,
        "trace_id": TRACE,
        "source": "gateway",
    }
    row.update(kw)
    return row


def span(sid: str, parent: str | None, at_ms: int, dur_ms: int, **kw: Any) -> dict[str, Any]:
    row = {
        "org_id": ORG,
        "trace_id": TRACE,
        "span_id": sid,
        "parent_span_id": parent,
        "name": f"span {sid}",
        "kind": "internal",
        "service": "agent-app",
        "start_ns": (T0 + at_ms) * NS,
        "end_ns": (T0 + at_ms + dur_ms) * NS,
        "status": "unset",
        "status_message": None,
        "attributes": {},
        "request_id": None,
        "created_at": T0,
    }
    row.update(kw)
    return row


@pytest.fixture(autouse=True)
def orgs(engine: Engine) -> None:
    with engine.begin() as conn:
        for org in (ORG, OTHER):
            conn.execute(insert(organizations).values(id=org, name=org, created_at=0))


def seed(engine: Engine, spans: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        insert_spans(conn, spans)
        if records:
            insert_records(conn, records, [], [])


def agent_trace(engine: Engine) -> None:
    """agent -> tool -> (ingested LLM span + its record); agent -> gateway record; a gateway
    record whose client span was never ingested; another org's span in the same trace id."""
    seed(
        engine,
        [
            span("a" * 16, None, 0, 1000, name="agent run", attributes={"agent.name": "planner"}),
            span("b" * 16, "a" * 16, 100, 500, name="tool search", status="error"),
            span(
                "c" * 16,
                "b" * 16,
                200,
                300,
                name="chat gpt-4o",
                kind="client",
                request_id="rec-otlp",
            ),
            span("f" * 16, None, 0, 9000, org_id=OTHER, name="their secret"),
        ],
        [
            record("rec-otlp", 200, source="otlp", span_id="c" * 16, parent_span_id="b" * 16),
            record("rec-gw", 700, span_id="d" * 16, parent_span_id="a" * 16, cost_nusd=2000),
            record(
                "rec-orphan",
                1500,
                span_id="e" * 16,
                parent_span_id="9" * 16,
                state="error",
                status=500,
                cost_known=False,
                cost_nusd=None,
            ),
            record("rec-their", 100, org_id=OTHER, span_id="7" * 16),
            record("rec-none", 0, trace_id=None),
        ],
    )


def test_tree_joins_spans_and_records(engine: Engine) -> None:
    agent_trace(engine)
    tree = traces.trace_tree(engine, ORG, TRACE)
    assert tree is not None and not tree.truncated
    got = [(n["name"], n["depth"], n["source"]) for n in tree.nodes]
    assert got == [
        ("agent run", 0, "otlp"),
        ("tool search", 1, "otlp"),
        ("chat gpt-4o", 2, "otlp"),  # the ingested span and its record: one node
        ("chat gpt-4o-mini", 1, "gateway"),
        ("chat gpt-4o-mini", 0, "gateway"),  # its parent was never ingested
    ]
    agent, tool, llm, gw, orphan = tree.nodes
    assert agent["attributes"] == {"agent.name": "planner"} and agent["request"] is None
    assert agent["children"] == 2 and agent["note"] is None
    assert tool["status"] == "error" and tool["offset_ms"] == 100 and tool["duration_ms"] == 500
    assert llm["request"]["id"] == "rec-otlp" and llm["request"]["source"] == "otlp"
    assert llm["span_id"] == "c" * 16 and llm["kind"] == "client"
    assert gw["request"]["id"] == "rec-gw" and gw["span_id"] == "d" * 16
    assert gw["offset_ms"] == 700 and gw["duration_ms"] == 100 and gw["service"] == "heliograph"
    assert gw["request"]["cost_usd"] == 2000 / 1e9 and gw["request"]["total_tokens"] == 15
    assert orphan["request"]["id"] == "rec-orphan" and orphan["note"] == traces.NO_PARENT
    assert orphan["status"] == "error" and orphan["request"]["cost_usd"] is None
    assert tree.duration_ms == 1600 and tree.llm_calls == 3 and tree.errors == 2
    assert tree.cost_usd == pytest.approx(3000 / 1e9) and tree.unpriced == 1
    assert tree.services == ["agent-app", "heliograph"]
    assert "their secret" not in str(tree.to_api()) and "rec-their" not in str(tree.to_api())
    assert tree.to_api()["span_count"] == 5


def test_organizations_unknown_and_malformed_traces(engine: Engine) -> None:
    agent_trace(engine)
    theirs = traces.trace_tree(engine, OTHER, TRACE)
    assert theirs is not None
    assert [n["name"] for n in theirs.nodes] == ["their secret", "chat gpt-4o-mini"]
    assert traces.trace_tree(engine, ORG, "0" * 31 + "1") is None
    for bad in ("", TRACE.upper(), TRACE[:-1], "0" * 32, TRACE + "0", "x" * 32):
        assert traces.trace_tree(engine, ORG, bad) is None
        assert not traces.valid_trace_id(bad)


def test_loops_and_a_record_named_only_by_its_span(engine: Engine) -> None:
    seed(
        engine,
        [
            span("1" * 16, "2" * 16, 0, 10, name="loop one"),
            span("2" * 16, "1" * 16, 5, 10, name="loop two"),
            span("3" * 16, "3" * 16, 20, 10, name="own parent"),
            span("4" * 16, None, 30, 10, name="llm", request_id="untraced"),
        ],
        [record("untraced", 30, trace_id=None)],  # the ingest did not copy the trace id
    )
    tree = traces.trace_tree(engine, ORG, TRACE)
    assert tree is not None
    names = [(n["name"], n["depth"], n["note"]) for n in tree.nodes]
    assert names == [
        ("loop one", 0, traces.IN_A_LOOP),
        ("loop two", 1, None),
        ("own parent", 0, traces.IN_A_LOOP),
        ("llm", 0, None),
    ]
    assert tree.nodes[-1]["request"]["id"] == "untraced"


def test_a_record_reusing_a_span_id_named_by_another_record(engine: Engine) -> None:
    seed(
        engine,
        [
            span("c" * 16, None, 0, 100, name="llm span", request_id="mine"),
            span("f" * 16, None, 200, 100, name="unnamed llm span"),  # names no record
        ],
        [
            record("stray", -50, span_id="c" * 16),  # same span id, stored first
            record("mine", 0, source="otlp", span_id="c" * 16),
            record("plain", 10, span_id="e" * 16, parent_span_id="c" * 16),
            record("by-span-id", 200, source="otlp", span_id="f" * 16),
        ],
    )
    tree = traces.trace_tree(engine, ORG, TRACE)
    assert tree is not None
    got = [(n["span_id"], n["request"]["id"], n["depth"]) for n in tree.nodes]
    assert got == [
        ("stray", "stray", 0),
        ("c" * 16, "mine", 0),
        ("e" * 16, "plain", 1),
        ("f" * 16, "by-span-id", 0),  # merged by its span id
    ]
    assert tree.nodes[-1]["name"] == "unnamed llm span" and tree.llm_calls == 4


def test_a_runaway_trace_is_cut_and_says_so(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traces, "MAX_NODES", 5)
    rows = [span("a" * 16, None, 0, 100, name="root")]
    rows += [span(f"{i:016x}", "a" * 16, i, 1, name=f"child {i}") for i in range(1, 8)]
    seed(engine, rows, [record("late", 50, span_id="d" * 16, parent_span_id="a" * 16)])
    tree = traces.trace_tree(engine, ORG, TRACE)
    assert tree is not None and tree.truncated
    assert [n["name"] for n in tree.nodes] == ["root", *(f"child {i}" for i in range(1, 5))]
    monkeypatch.setattr(traces, "MAX_NODES", 9)
    whole = traces.trace_tree(engine, ORG, TRACE)
    assert whole is not None and not whole.truncated and len(whole.nodes) == 9


def test_recent_traces(engine: Engine) -> None:
    agent_trace(engine)
    second = "1" * 32
    seed(
        engine,
        [],
        [
            record("solo-1", 5000, trace_id=second, span_id="1" * 16, parent_span_id="2" * 16),
            record("solo-2", 5200, trace_id=second, span_id="3" * 16, model="gpt-4o"),
        ],
    )
    old = "2" * 32
    seed(engine, [span("5" * 16, None, -10 * 86_400_000, 5, trace_id=old, name="old")], [])
    got = trace_list.recent_traces(engine, ORG, 10, since_ms=T0 - 60_000)
    assert [t["trace_id"] for t in got] == [second, TRACE]
    solo, agent = got
    assert solo["root_name"] == "chat gpt-4o-mini" and solo["span_count"] == 2
    assert solo["llm_calls"] == 2 and solo["duration_ms"] == 300 and solo["errors"] == 0
    assert solo["cost_usd"] == pytest.approx(2000 / 1e9) and solo["start_ms"] == T0 + 5000
    assert agent["root_name"] == "agent run"
    assert agent["span_count"] == 5  # 3 spans + 2 gateway records; the ingested one once
    assert agent["llm_calls"] == 3 and agent["errors"] == 2 and agent["unpriced"] == 1
    assert agent["duration_ms"] == 1600 and agent["cost_usd"] == pytest.approx(3000 / 1e9)
    everything = trace_list.recent_traces(engine, ORG, 10)
    assert [t["trace_id"] for t in everything] == [second, TRACE, old]
    assert [t["trace_id"] for t in trace_list.recent_traces(engine, ORG, 1)] == [second]
    theirs = trace_list.recent_traces(engine, OTHER, 10)
    assert [(t["trace_id"], t["root_name"]) for t in theirs] == [(TRACE, "their secret")]
    assert trace_list.recent_traces(engine, "nobody", 10) == []
