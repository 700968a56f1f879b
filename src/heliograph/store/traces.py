"""Traces: the span tree of one trace, and the latest traces, for the trace view and its API.

A trace's nodes come from two tables. ``spans`` holds what applications sent over OTLP (agent,
tool and retrieval spans, and LLM spans whose ``request_id`` names the record they became);
``requests`` holds LLM calls with a ``trace_id``: gateway records (a client's ``traceparent``
made them children of the client's span) and ingested ones (``source = 'otlp'``, with the same
span id as their span row). An ingested span and its record are one node; a gateway record is
a node of its own, timed by ``created_at`` and its latency. A node whose parent is absent (the
client's span was never ingested) is a root with a note. The tree is bounded: a runaway trace
shows its first ``MAX_NODES`` nodes by start time and says so. The list of the latest traces
is ``store.trace_list``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from heliograph.store.requests import iso_ms, usd
from heliograph.store.schema import requests
from heliograph.store.schema_ops import spans

MAX_NODES = 2000
TRACE_ID = re.compile(r"[0-9a-f]{32}")
FAILED = ("error", "interrupted")
NO_PARENT = "parent span not recorded"
IN_A_LOOP = "parent links form a loop"
MS = 1_000_000  # nanoseconds
RECORD_COLUMNS = (
    requests.c.id,
    requests.c.created_at,
    requests.c.latency_ms,
    requests.c.kind,
    requests.c.provider,
    requests.c.endpoint,
    requests.c.model,
    requests.c.status,
    requests.c.state,
    requests.c.error,
    requests.c.prompt_tokens,
    requests.c.completion_tokens,
    requests.c.total_tokens,
    requests.c.cost_nusd,
    requests.c.cost_known,
    requests.c.user_id,
    requests.c.session_id,
    requests.c.trace_id,
    requests.c.span_id,
    requests.c.parent_span_id,
    requests.c.source,
)
OPERATIONS = (  # endpoint suffix -> GenAI operation name, for a gateway record's node name
    ("/chat/completions", "chat"),
    ("/messages", "chat"),
    ("/api/chat", "chat"),
    ("/completions", "text_completion"),
    ("/api/generate", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/api/embed", "embeddings"),
)


def valid_trace_id(value: str) -> bool:
    """32 lower-case hex digits, not all zero (W3C); anything else cannot name a trace."""
    return bool(TRACE_ID.fullmatch(value)) and value != "0" * 32


@dataclass
class TraceTree:
    """A trace's nodes in display order (depth first, siblings by start)."""

    trace_id: str
    nodes: list[dict[str, Any]]
    start_ns: int
    duration_ms: float
    truncated: bool
    llm_calls: int = 0
    errors: int = 0
    cost_usd: float | None = None
    unpriced: int = 0
    services: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "start": iso_ms(self.start_ns // MS),
            "duration_ms": self.duration_ms,
            "span_count": len(self.nodes),
            "llm_calls": self.llm_calls,
            "errors": self.errors,
            "cost_usd": self.cost_usd,
            "unpriced": self.unpriced,
            "services": self.services,
            "truncated": self.truncated,
            "max_nodes": MAX_NODES,
            "nodes": self.nodes,
        }


def operation(endpoint: str | None) -> str:
    """The GenAI operation a record's endpoint performs (chat, embeddings...), for its name."""
    for suffix, name in OPERATIONS:
        if (endpoint or "").endswith(suffix):
            return name
    return endpoint or "call"


def _request(row: dict[str, Any]) -> dict[str, Any]:
    """What a node shows of its record (the request page has the rest)."""
    known = bool(row["cost_known"])
    return {
        "id": row["id"],
        "source": row["source"] or "gateway",
        "model": row["model"],
        "provider": row["provider"],
        "status": row["status"],
        "state": row["state"],
        "error": row["error"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_tokens": row["total_tokens"],
        "cost_usd": usd(row["cost_nusd"]) if known else None,
        "cost_known": known,
        "latency_ms": row["latency_ms"],
        "user_id": row["user_id"],
        "session_id": row["session_id"],
    }


def _record_status(row: dict[str, Any]) -> str:
    return "ok" if row["state"] == "ok" else ("error" if row["state"] in FAILED else "unset")


def _span_node(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "span_id": row["span_id"],
        "parent_span_id": row["parent_span_id"],
        "name": row["name"],
        "kind": row["kind"],
        "service": row["service"],
        "source": "otlp",
        "start_ns": int(row["start_ns"]),
        "end_ns": max(int(row["end_ns"]), int(row["start_ns"])),
        "status": row["status"],
        "status_message": row["status_message"],
        "attributes": row["attributes"] if isinstance(row["attributes"], dict) else {},
        "request": None,
        "request_id": row["request_id"],
    }


def _record_node(row: dict[str, Any], key: str) -> dict[str, Any]:
    start = int(row["created_at"]) * MS
    return {
        "span_id": key,
        "parent_span_id": row["parent_span_id"],
        "name": f"{operation(row['endpoint'])} {row['model'] or ''}".strip(),
        "kind": "client",
        "service": "heliograph",
        "source": row["source"] or "gateway",
        "start_ns": start,
        "end_ns": start + int((row["latency_ms"] or 0) * MS),
        "status": _record_status(row),
        "status_message": row["error"],
        "attributes": {},
        "request": _request(row),
        "request_id": row["id"],
    }


def _attach(node: dict[str, Any], row: dict[str, Any]) -> None:
    """An ingested LLM span and its record: one node, the span's timing, the record linked."""
    node["request"] = _request(row)
    if _record_status(row) == "error":
        node["status"] = "error"
        node["status_message"] = node["status_message"] or row["error"]


def _load(engine: Engine, org_id: str, trace_id: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Span rows and record rows of the trace (each capped one past the bound), and records
    named by spans that did not carry the trace id themselves."""
    span_q = (
        select(spans)
        .where(spans.c.org_id == org_id, spans.c.trace_id == trace_id)
        .order_by(spans.c.start_ns, spans.c.span_id)
        .limit(MAX_NODES + 1)
    )
    rec_q = (
        select(*RECORD_COLUMNS)
        .where(requests.c.org_id == org_id, requests.c.trace_id == trace_id)
        .order_by(requests.c.created_at, requests.c.id)
        .limit(MAX_NODES + 1)
    )
    with engine.connect() as conn:
        span_rows = [dict(r._mapping) for r in conn.execute(span_q)]
        rec_rows = [dict(r._mapping) for r in conn.execute(rec_q)]
        have = {r["id"] for r in rec_rows}
        missing = sorted({s["request_id"] for s in span_rows if s["request_id"]} - have)
        extra = []
        for i in range(0, len(missing), 500):
            q = select(*RECORD_COLUMNS).where(
                requests.c.org_id == org_id, requests.c.id.in_(missing[i : i + 500])
            )
            extra += [dict(r._mapping) for r in conn.execute(q)]
    return span_rows, rec_rows, extra


def _nodes(span_rows: list[Any], rec_rows: list[Any], extra: list[Any]) -> dict[str, Any]:
    """Nodes by span id: spans, then records merged into their span or added as their own."""
    nodes: dict[str, dict[str, Any]] = {}
    for row in span_rows:
        nodes.setdefault(row["span_id"], _span_node(row))
    by_request = {n["request_id"]: n for n in nodes.values() if n["request_id"]}
    for row in [*rec_rows, *extra]:
        linked = by_request.get(row["id"])
        same = nodes.get(row["span_id"]) if row["span_id"] else None
        if linked is None and same is not None and same["request_id"] is None:
            linked = same  # an ingested record whose span did not name it
        if linked is not None:
            if linked["request"] is None:
                _attach(linked, row)
            continue
        if row["trace_id"] is None:
            continue  # named by a span of this trace but belongs to none: the span shows it
        key = row["span_id"] if row["span_id"] and row["span_id"] not in nodes else row["id"]
        nodes[key] = _record_node(row, key)
    return nodes


def _order(nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first, children by start; orphans and loops of parent links become roots with a
    note (a loop is entered at its earliest node)."""
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for node in nodes.values():
        parent = node["parent_span_id"]
        node["note"] = None
        if parent == node["span_id"]:
            node["note"] = IN_A_LOOP
            roots.append(node)
        elif parent and parent in nodes:
            children.setdefault(parent, []).append(node)
        else:
            node["note"] = NO_PARENT if parent else None
            roots.append(node)

    def key(n: dict[str, Any]) -> tuple[int, str]:
        return n["start_ns"], n["span_id"]

    def walk(root: dict[str, Any], seen: set[str], out: list[dict[str, Any]]) -> None:
        stack = [(root, 0)]
        while stack:
            node, depth = stack.pop()
            if node["span_id"] in seen:
                continue
            seen.add(node["span_id"])
            node["depth"] = depth
            node["children"] = len(children.get(node["span_id"], ()))
            out.append(node)
            kids = sorted(children.get(node["span_id"], ()), key=key, reverse=True)
            stack.extend((kid, depth + 1) for kid in kids)

    reached: set[str] = set()
    for root in roots:
        walk(root, reached, [])
    for node in sorted(nodes.values(), key=key):  # unreachable: inside a loop
        if node["span_id"] not in reached:
            node["note"] = IN_A_LOOP
            roots.append(node)
            walk(node, reached, [])
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for root in sorted(roots, key=key):
        walk(root, seen, out)
    return out


def _finish(trace_id: str, ordered: list[dict[str, Any]], truncated: bool) -> TraceTree:
    start = min(n["start_ns"] for n in ordered)
    end = max(n["end_ns"] for n in ordered)
    for n in ordered:
        n["start"] = iso_ms(n["start_ns"] // MS)
        n["offset_ms"] = (n["start_ns"] - start) / MS
        n["duration_ms"] = (n["end_ns"] - n["start_ns"]) / MS
        n.setdefault("note", None)
        del n["start_ns"], n["end_ns"], n["request_id"]  # ns overflow JSON's safe integers
    calls = [n["request"] for n in ordered if n["request"]]
    priced = [c["cost_usd"] for c in calls if c["cost_known"]]
    return TraceTree(
        trace_id=trace_id,
        nodes=ordered,
        start_ns=start,
        duration_ms=(end - start) / MS,
        truncated=truncated,
        llm_calls=len(calls),
        errors=sum(1 for n in ordered if n["status"] == "error"),
        cost_usd=sum(priced) if priced else None,
        unpriced=len(calls) - len(priced),
        services=sorted({n["service"] for n in ordered if n["service"]}),
    )


def trace_tree(engine: Engine, org_id: str, trace_id: str) -> TraceTree | None:
    """The trace's tree in this organization, or None when it has no span and no record."""
    if not valid_trace_id(trace_id):
        return None
    nodes = _nodes(*_load(engine, org_id, trace_id))
    if not nodes:
        return None
    kept = sorted(nodes.values(), key=lambda n: (n["start_ns"], n["span_id"]))[:MAX_NODES]
    truncated = len(nodes) > MAX_NODES
    return _finish(trace_id, _order({n["span_id"]: n for n in kept}), truncated)
