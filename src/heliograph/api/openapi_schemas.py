"""Component schemas of the OpenAPI document (records, filter tree, rows, bodies).

Generated from the code where drift would hurt: the filter tree from the declared fields
(``store.fields``) and ``store.filters``' limits, sort keys from ``store.query``. Tests
compare the record schemas with what ``store.requests.to_api`` returns.
"""

from __future__ import annotations

from typing import Any

from heliograph.store import fields, filters
from heliograph.store import query as query_store

REF = "#/components/schemas/"
STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
BOOL: dict[str, Any] = {"type": "boolean"}
MAX = fields.MAX_INT - 1


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": REF + name}


def obj(props: dict[str, Any], *required: str, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required or props), **extra}


def record_fields() -> dict[str, Any]:
    """Every field of ``store.requests.to_api`` (a test keeps this list exact)."""
    text = ("kind", "provider", "upstream", "method", "endpoint", "state", "source")
    opt_text = (
        "model",
        "response_model",
        "error",
        "cost_source",
        "price_ref",
        "user_id",
        "session_id",
        "key_id",
        "protocol",
        "session_path",
        "session_name",
        "served_by",
        "omitted",
        "model_override",
        "budget_note",
        "user_name",
        "user_email",
        "user_role",
        "identity",
        "task",
        "message_id",
        "prompt_name",
        "prompt_label",
        "trace_id",
        "span_id",
        "parent_span_id",
    )
    opt_int = (
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cache_write_tokens",
        "prompt_version",
    )
    opt_num = (
        "latency_ms",
        "ttft_ms",
        "output_tokens_per_s",
        "prompt_tokens_per_s",
        "load_ms",
        "cost_usd",
        "cost_input_usd",
        "cost_output_usd",
        "cost_cache_read_usd",
        "cost_cache_write_usd",
        "cost_saved_usd",
    )
    bools = ("stream", "tokens_estimated", "cold_start", "cost_known", "cache_hit")
    fields: dict[str, Any] = {
        "id": STR,
        "created_at": {"type": "string", "format": "date-time"},
        "status": INT,
        "retries": INT,
        "properties": {"type": "object", "additionalProperties": STR},
        "user_groups": {"type": "array", "items": STR},
        "prompt_inputs": {"type": ["object", "null"], "additionalProperties": STR},
    }
    fields |= {k: STR for k in text} | {k: nullable(STR) for k in opt_text}
    fields |= {k: nullable(INT) for k in opt_int} | {k: nullable(NUM) for k in opt_num}
    return fields | {k: BOOL for k in bools}


ANNOTATIONS = {
    "feedback": {"type": ["boolean", "null"], "description": "The latest rating, if any."},
    "scores": {"type": "object", "additionalProperties": NUM},
}
DETAIL = {
    "request_body": {"description": "JSON as JSON, text as a string, else a size note."},
    "response_body": {"description": "As request_body; streams are stored as received."},
    "request_headers": {"type": "object", "additionalProperties": STR},
    "response_headers": {"type": "object", "additionalProperties": STR},
    "query": {
        "type": ["string", "null"],
        "description": "The request's query string (credentials redacted), if it had one.",
    },
    "body_truncated": BOOL,
    "attempts": {"type": "array", "items": {"type": "object"}},
}
STATS = {
    **{k: INT for k in ("requests", "errors", "prompt_tokens", "completion_tokens")},
    **{k: INT for k in ("total_tokens", "cached_tokens", "unpriced_requests")},
    "error_rate": NUM,
    "cost_usd": NUM,
    **{
        k: nullable(NUM)
        for k in (
            "avg_latency_ms",
            "p50_latency_ms",
            "p95_latency_ms",
            "avg_ttft_ms",
            "p50_ttft_ms",
            "avg_output_tokens_per_s",
            "p95_ttft_ms",
            "p50_output_tokens_per_s",
            "p10_output_tokens_per_s",
            "avg_prompt_tokens_per_s",
            "avg_cold_load_ms",
        )
    },
    "cold_starts": INT,
}


def filter_schemas() -> dict[str, Any]:
    """The filter tree, generated from the declared fields (``store.fields``)."""
    limit = {"maximum": MAX, "minimum": -MAX}
    values: dict[str, dict[str, Any]] = {
        "text": {"type": "string", "maxLength": filters.MAX_TEXT},
        "number": {"type": "number", **limit},
        "time": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        "bool": BOOL,
    }
    ops = {kind: _ops(fields.OPS[kind], values[kind]) for kind in values}
    named: dict[str, Any] = {}
    keyed = {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"minLength": 1, "maxLength": filters.MAX_NAME},
    }
    patterns: dict[str, Any] = {}
    for field in fields.FIELDS:
        schema = ref(f"{field.value_kind.title()}Ops")
        if field.kind == "number" and (field.minimum is not None or field.maximum < MAX):
            bounded = {**values["number"], "maximum": field.maximum}
            if field.minimum is not None:
                bounded["minimum"] = field.minimum
            schema = _ops(field.ops, bounded)
        if field.kind == "keyed":
            patterns[f"^{field.name}\\..{{1,{filters.MAX_NAME}}}$"] = schema
            schema = {**keyed, "additionalProperties": schema}
        for name in (field.name, *field.aliases):
            named[name] = schema
    rmt = {
        "type": "object",
        "minProperties": 1,
        "properties": named,
        "patternProperties": patterns,
        "additionalProperties": False,
    }
    tables: dict[str, Any] = {"request_response_rmt": rmt}
    for table, mapping in filters.LEGACY.items():
        legacy = {name: named[field] for name, field in mapping.items()}
        tables[table] = {**rmt, "properties": legacy, "patternProperties": {}}
    tables["properties"] = named["properties"]
    leaf = {
        "type": "object",
        "description": "A table (request_response_rmt, or Helicone's legacy request, response, "
        "feedback and properties) mapping fields to operators; all conditions of a leaf are "
        "ANDed. Unknown fields or operators and mistyped values are a 400; a filter has at "
        f"most {filters.MAX_LEAVES} conditions and {filters.MAX_DEPTH} levels.",
        "minProperties": 1,
        "properties": tables,
        "additionalProperties": False,
    }
    branch = obj(
        {"left": ref("Filter"), "operator": {"enum": ["and", "or"]}, "right": ref("Filter")},
        additionalProperties=False,
    )
    return {
        "Filter": {
            "description": 'A leaf, a branch, or "all" (at the top level, {} also means all).',
            "anyOf": [{"const": "all"}, ref("FilterLeaf"), ref("FilterBranch")],
        },
        "FilterLeaf": leaf,
        "FilterBranch": branch,
        **{f"{kind.title()}Ops": schema for kind, schema in ops.items()},
    }


def _ops(names: tuple[str, ...], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "properties": {op: value for op in names},
        "additionalProperties": False,
    }


def schemas() -> dict[str, Any]:
    record = obj(record_fields())
    sort_keys = {k: {"enum": ["asc", "desc"]} for k in query_store.SORTS}
    return {
        "Error": obj({"error": obj({"message": STR, "type": STR, "code": STR})}),
        "Record": record,
        "AnnotatedRecord": obj(record["properties"] | ANNOTATIONS),
        "RecordDetail": obj(record["properties"] | ANNOTATIONS | DETAIL),
        "QueryBody": {
            "type": "object",
            "properties": {
                "filter": ref("Filter"),
                "offset": {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                "sort": {
                    "type": "object",
                    "properties": sort_keys,
                    "additionalProperties": False,
                    "maxProperties": 1,
                    "description": 'One key; default {"created_at": "desc"}. Missing values last.',
                },
                "isCached": {"type": "boolean", "description": "Accepted and ignored."},
            },
        },
        "Stats": obj(STATS),
        "Key": obj(
            {"id": STR, "name": STR, "scope": STR, "prefix": STR}
            | {
                k: nullable({"type": "string", "format": "date-time"})
                for k in ("created_at", "revoked_at", "last_used_at")
            }
        ),
        **filter_schemas(),
        **row_schemas(),
    }


def row_schemas() -> dict[str, Any]:
    """Bodies and rows of the other endpoints (keys, costs, analytics, feedback, scores)."""
    feedback_body = obj({"rating": BOOL}, additionalProperties=True)
    score_value = {"anyOf": [{"type": "number", "maximum": 2**53 - 1, "minimum": 1 - 2**53}, BOOL]}
    scores_body = obj(
        {
            "scores": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 100,
                "propertyNames": {"minLength": 1, "maxLength": 255},
                "additionalProperties": score_value,
            }
        },
    )
    breakdown_row = {
        "allOf": [
            ref("Stats"),
            obj(
                {
                    "key": {"type": ["string", "integer", "null"]},  # prompt_version: int
                    "first_ms": INT,
                    "last_ms": INT,
                    "first_seen": STR,
                    "last_seen": STR,
                    "providers": {"type": "array", "items": STR},
                }
            ),
        ]
    }
    point = {"allOf": [ref("Stats"), obj({"start_ms": INT, "start": STR})]}
    cost_row = obj(
        {
            "group": {"type": ["string", "integer", "null"]},
            "requests": INT,
            "cost_usd": NUM,
            "unpriced_requests": INT,
            "prompt_tokens": INT,
            "completion_tokens": INT,
            "cached_tokens": INT,
        }
    )
    unpriced_row = obj(
        {
            "provider": STR,
            "model": nullable(STR),
            "requests": INT,
            "prompt_tokens": INT,
            "completion_tokens": INT,
            "last_seen": STR,
        }
    )
    return {
        "FeedbackBody": feedback_body,
        "ScoresBody": scores_body,
        "BreakdownRow": breakdown_row,
        "TimeseriesPoint": point,
        "CostRow": cost_row,
        "UnpricedModel": unpriced_row,
    }
