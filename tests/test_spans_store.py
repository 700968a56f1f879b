"""Ingested spans in the store, on each dialect: idempotent inserts, reads per organization."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from heliograph.store import orgs
from heliograph.store.spans import insert_spans, spans_of_trace

TRACE = "ab" * 16


def row(org: str, span: str, parent: str | None, start: int, **extra: Any) -> dict[str, Any]:
    return {
        "org_id": org,
        "trace_id": TRACE,
        "span_id": span,
        "parent_span_id": parent,
        "name": f"span {span}",
        "kind": "internal",
        "service": "svc",
        "start_ns": start,
        "end_ns": start + 1000,
        "status": "unset",
        "status_message": None,
        "attributes": {"gen_ai.operation.name": "execute_tool", "n": 3, "ok": True},
        "request_id": None,
        "created_at": 1,
        **extra,
    }


def test_spans_are_stored_once_and_read_per_org(engine: Engine) -> None:
    mine, theirs = orgs.create_org(engine, "a"), orgs.create_org(engine, "b")
    rows = [row(mine, "1" * 16, None, 10), row(mine, "2" * 16, "1" * 16, 20, attributes=None)]
    with engine.begin() as conn:
        assert insert_spans(conn, rows) == 2
    with engine.begin() as conn:
        assert insert_spans(conn, [*rows, row(theirs, "1" * 16, None, 5)]) == 1
    got = spans_of_trace(engine, mine, TRACE.upper())
    assert [r["span_id"] for r in got] == ["1" * 16, "2" * 16]
    assert got[0]["attributes"] == {"gen_ai.operation.name": "execute_tool", "n": 3, "ok": True}
    assert got[1]["parent_span_id"] == "1" * 16 and got[1]["attributes"] is None
    assert [r["start_ns"] for r in spans_of_trace(engine, theirs, TRACE)] == [5]
