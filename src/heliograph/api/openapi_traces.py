"""The traces part of the OpenAPI document; ``openapi.document`` merges it."""

from __future__ import annotations

from typing import Any

from heliograph.api.openapi import TIME, error, op, q
from heliograph.api.openapi_schemas import BOOL, INT, NUM, STR, nullable, obj, ref
from heliograph.store.trace_list import MAX_LIST

DATE: dict[str, Any] = {"type": "string", "format": "date-time"}
HEX32: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
CALL = obj(
    {
        "id": STR,
        "source": {"enum": ["gateway", "otlp"]},
        "model": nullable(STR),
        "provider": STR,
        "status": nullable(INT),
        "state": STR,
        "error": nullable(STR),
        "prompt_tokens": nullable(INT),
        "completion_tokens": nullable(INT),
        "total_tokens": nullable(INT),
        "cost_usd": nullable(NUM),
        "cost_known": BOOL,
        "latency_ms": nullable(NUM),
        "user_id": nullable(STR),
        "session_id": nullable(STR),
    }
)
NODE = obj(
    {
        "span_id": {"type": "string", "description": "The span id (a record's id if it has none)."},
        "parent_span_id": nullable(STR),
        "name": STR,
        "kind": {"type": "string", "description": "OTLP span kind; client for LLM calls."},
        "service": nullable(STR),
        "source": {
            "enum": ["gateway", "otlp"],
            "description": "Recorded by the gateway, or ingested over OTLP.",
        },
        "start": DATE,
        "offset_ms": {"type": "number", "description": "From the start of the trace."},
        "duration_ms": NUM,
        "depth": COUNT,
        "children": COUNT,
        "status": {"enum": ["unset", "ok", "error"]},
        "status_message": nullable(STR),
        "note": {
            "type": ["string", "null"],
            "description": "Why a span with a parent id is shown as a root: its parent was "
            "not recorded, or the parent links form a loop.",
        },
        "attributes": {"type": "object", "description": "The span's attributes."},
        "request": {
            "oneOf": [ref("TraceCall"), {"type": "null"}],
            "description": "The LLM call's record (its request page), if the span is one.",
        },
    }
)
SUMMARY = obj(
    {
        "trace_id": HEX32,
        "root_name": STR,
        "start": DATE,
        "start_ms": INT,
        "duration_ms": NUM,
        "span_count": COUNT,
        "llm_calls": COUNT,
        "cost_usd": nullable(NUM),
        "unpriced": COUNT,
        "errors": COUNT,
    }
)
TRACE = obj(
    {
        "trace_id": HEX32,
        "start": DATE,
        "duration_ms": NUM,
        "span_count": COUNT,
        "llm_calls": COUNT,
        "errors": COUNT,
        "cost_usd": nullable(NUM),
        "unpriced": COUNT,
        "services": {"type": "array", "items": STR},
        "truncated": {"type": "boolean", "description": "More spans than max_nodes: cut."},
        "max_nodes": INT,
        "nodes": {
            "type": "array",
            "items": ref("TraceNode"),
            "description": "Depth first, siblings by start time.",
        },
    }
)


def schemas() -> dict[str, Any]:
    return {"TraceCall": CALL, "TraceNode": NODE, "TraceSummary": SUMMARY, "Trace": TRACE}


def paths() -> dict[str, Any]:
    trace_id = {
        "name": "trace_id",
        "in": "path",
        "required": True,
        "schema": STR,
        "description": "W3C trace id: 32 lower-case hex digits.",
    }
    return {
        "/api/v1/traces": {
            "get": op(
                "The latest traces (spans ingested over OTLP and records with a trace id), "
                "newest first, with figures over what the window holds of each.",
                "read",
                obj({"data": {"type": "array", "items": ref("TraceSummary")}}),
                params=[
                    q("since", STR, TIME),
                    q("until", STR, TIME),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST}),
                ],
            )
        },
        "/api/v1/traces/{trace_id}": {
            "get": op(
                "One trace as a span tree: ingested spans and LLM calls (gateway records "
                "joined by trace id, ingested ones merged into their span).",
                "read",
                ref("Trace"),
                params=[trace_id],
                errors={"404": error("No such trace in this organization.")},
            )
        },
    }
