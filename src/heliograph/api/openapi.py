"""The OpenAPI 3.1 document of the REST API (``GET /openapi.json``) and a plain ``/docs`` page.

Paths are written here by hand (prose matters); component schemas live in ``openapi_schemas``,
generated from the code where drift would hurt. Tests check that every API route is documented
(and nothing else), that record schemas list exactly the fields the store returns, and run
schemathesis against the live app with this document. ``/docs`` is server-rendered HTML with no JavaScript.
"""

from __future__ import annotations

import functools
import html
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from heliograph.api.openapi_schemas import BOOL, INT, NUM, STR, nullable, obj, ref, schemas
from heliograph.api.responses import JSONResponse
from heliograph.store import analytics as analytics_store
from heliograph.store import export as export_store
from heliograph.store import fields


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


ERRORS = {
    "400": error("Invalid or unknown parameter, or invalid body."),
    "401": error("Missing or unknown key."),
    "403": error("The key's scope does not allow this."),
}


def ready_op() -> dict[str, Any]:
    """Readiness: 200 ready, 503 not (the same body, saying why)."""
    body = obj(
        {
            "status": {"enum": ["ready", "unready"]},
            "problems": {"type": "array", "items": STR},
            "store_down_s": {"type": "number", "minimum": 0},
            "spool_backlog_bytes": {"type": "integer", "minimum": 0},
        }
    )
    content = {"application/json": {"schema": body}}
    out = op("Readiness: the store answers and the spool backlog is bounded.", "none", body)
    out["responses"]["503"] = {"description": "Not ready (see problems)", "content": content}
    return out


def op(
    summary: str, scope: str, ok: Any, *, params: Any = (), body: Any = None, **more: Any
) -> dict[str, Any]:
    """One operation: ``ok`` is a JSON schema for the 200 body (or a full responses entry)."""
    status = more.pop("status", "200")
    response = (
        ok
        if "description" in ok
        else {"description": "OK", "content": {"application/json": {"schema": ok}}}
    )
    out: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs a key with the {scope} scope (admin keys may do anything)."
        if scope != "none"
        else "No key needed.",
        "parameters": list(params),
        "responses": {status: response, **ERRORS, **more.pop("errors", {})},
    }
    if body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if scope == "none":
        out["security"] = []
        out["responses"] = {status: response}
    return out | more


def q(name: str, schema: Any = STR, description: str = "", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR}


TIME = "ISO 8601 (UTC when no zone is given), or epoch seconds (milliseconds if above 1e11)."
WINDOW = [q("since", STR, TIME + " Default: 24 hours before until."), q("until", STR, TIME)]


def filter_param(name: str, field: fields.Field, op: str) -> dict[str, Any]:
    """One URL spelling of a declared field (``store.fields``) as a query parameter."""
    schema: dict[str, Any] = BOOL if field.kind == "bool" else STR
    if field.kind == "number":
        schema = {"type": "number", "maximum": field.maximum}
        if field.minimum is not None:
            schema["minimum"] = field.minimum
    return q(name, schema, fields.describe(field, op) + ".")


FILTER_PARAMS = [
    *(filter_param(n, f, op) for n, f, op in fields.url_params() if f.kind != "keyed"),
    q(
        "filter",
        STR,
        'A Helicone filter tree as JSON (see Filter), or "all"; ANDed with the rest. Also '
        "accepted: property.<name>=<value> and score.<name>=<number> (exact match).",
    ),
]
ANALYTICS_FILTERS = [
    q(
        n,
        {"type": "integer", "minimum": 0} if n == "prompt_version" else STR,
        "Only LLM calls of this group's current members."
        if n == analytics_store.GROUP
        else f"Only LLM calls with exactly this {n}.",
    )
    for n in analytics_store.DIMENSIONS
]
NOT_FOUND = {"404": error("No such record in this organization.")}
ENVELOPE = {"error": {"type": "null"}}


def data(items: Any) -> dict[str, Any]:
    return obj({"data": {"type": "array", "items": items}})


def paths() -> dict[str, Any]:
    query_op = op(
        "Query records with a Helicone filter tree (offset pagination).",
        "read",
        obj({"data": {"type": "array", "items": ref("AnnotatedRecord")}} | ENVELOPE),
        body=ref("QueryBody"),
        errors={"413": error("Body larger than 1 MiB.")},
    )
    count_op = op(
        "Count records matching a filter tree.",
        "read",
        obj({"data": {"type": "integer", "minimum": 0}} | ENVELOPE),
        body=ref("QueryBody"),
        errors={"413": error("Body larger than 1 MiB.")},
    )
    annotate_errors = {**NOT_FOUND, "413": error("Body larger than 1 MiB.")}
    window_ok = {"since": {"type": "string", "format": "date-time"}}
    window_ok["until"] = window_ok["since"]
    formats = list(export_store.FORMATS)
    export_ok = {
        "description": "The export, streamed (CSV has a header row; JSONL one record a line).",
        "content": {export_store.MEDIA_TYPES[f].split(";")[0]: {"schema": STR} for f in formats},
    }
    return {
        "/health": {"get": op("Liveness.", "none", obj({"status": {"const": "ok"}}))},
        "/health/live": {"get": op("Liveness.", "none", obj({"status": {"const": "ok"}}))},
        "/health/ready": {"get": ready_op()},
        "/api/v1/requests": {
            "get": op(
                "List records, newest first (cursor pagination).",
                "read",
                obj(
                    {
                        "data": {"type": "array", "items": ref("Record")},
                        "next_cursor": nullable(STR),
                    }
                ),
                params=[
                    *FILTER_PARAMS,
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
                    q("cursor", STR, "next_cursor of the previous page."),
                ],
            )
        },
        "/api/v1/requests/{request_id}": {
            "get": op(
                "One record with bodies, headers, attempts, feedback and scores.",
                "read",
                ref("RecordDetail"),
                params=[path_param("request_id")],
                errors=NOT_FOUND,
            )
        },
        "/api/v1/requests/export": {
            "get": op(
                "Export every matching record (no row cap, streamed).",
                "read",
                export_ok,
                params=[
                    q("format", {"enum": formats, "default": "jsonl"}),
                    q("include_bodies", {"type": "boolean", "default": False}),
                    *FILTER_PARAMS,
                ],
            )
        },
        "/api/v1/requests/query": {"post": query_op},
        "/api/v1/requests/query/count": {"post": count_op},
        "/v1/request/query": {"post": query_op},
        "/v1/request/query/count": {"post": count_op},
        "/v1/request/{request_id}/feedback": {
            "post": op(
                "Rate a record (upsert; a write key suffices).",
                "write",
                obj({"data": obj({"request_id": STR, "rating": BOOL})} | ENVELOPE),
                params=[path_param("request_id")],
                body=ref("FeedbackBody"),
                errors=annotate_errors,
            )
        },
        "/v1/request/{request_id}/score": {
            "post": op(
                "Set named scores on a record (upsert; booleans are stored as 1 and 0).",
                "write",
                obj(
                    {
                        "data": obj(
                            {
                                "request_id": STR,
                                "scores": {"type": "object", "additionalProperties": NUM},
                            }
                        )
                    }
                    | ENVELOPE
                ),
                params=[path_param("request_id")],
                body=ref("ScoresBody"),
                errors=annotate_errors,
            )
        },
        "/api/v1/keys": {
            "get": op(
                "List the organization's keys (never the secrets).", "admin", data(ref("Key"))
            ),
            "post": op(
                "Create a key; the secret is in the response, once.",
                "admin",
                obj({"id": STR, "name": STR, "scope": STR, "key": STR}),
                status="201",
                body=obj(
                    {
                        "name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "scope": {"enum": ["write", "read", "admin"]},
                    }
                ),
            ),
        },
        "/api/v1/keys/{key_id}": {
            "delete": op(
                "Revoke a key.",
                "admin",
                obj({"id": STR, "revoked": {"const": True}}),
                params=[path_param("key_id")],
                errors={"404": error("No such active key.")},
            )
        },
        "/api/v1/costs": {
            "get": op(
                "Cost per group (LLM calls only, biggest first).",
                "read",
                obj(
                    {
                        "group_by": STR,
                        "data": {"type": "array", "items": ref("CostRow")},
                        "total_cost_usd": NUM,
                        "unpriced_requests": INT,
                    }
                ),
                params=[
                    q(
                        "group_by",
                        STR,
                        "provider, model, user_id, session_id, key_id, day, upstream, "
                        "prompt_name, prompt_version or property.<name>; default model.",
                    ),
                    *WINDOW[:1],
                    q("until", STR, TIME),
                ],
            )
        },
        "/api/v1/costs/unpriced-models": {
            "get": op(
                "Models with traffic but no known price.",
                "read",
                data(ref("UnpricedModel")),
                params=[WINDOW[0]],
            )
        },
        "/api/v1/analytics/summary": {
            "get": op(
                "Totals for a window.",
                "read",
                {"allOf": [ref("Stats"), obj(window_ok | {"active_users": INT})]},
                params=[*WINDOW, *ANALYTICS_FILTERS],
            )
        },
        "/api/v1/analytics/timeseries": {
            "get": op(
                "Totals per time bucket. Without since and until: the last 24 hours, ending with "
                "the current bucket.",
                "read",
                obj(
                    window_ok
                    | {"bucket_ms": INT, "data": {"type": "array", "items": ref("TimeseriesPoint")}}
                ),
                params=[
                    *WINDOW,
                    *ANALYTICS_FILTERS,
                    q(
                        "bucket",
                        STR,
                        "Seconds, or a duration like 5m, 1h, 1d (default: about 20-40 buckets).",
                    ),
                ],
            )
        },
        "/api/v1/analytics/breakdown": {
            "get": op(
                "Totals per model, provider, user, session, upstream, Open WebUI task (null: "
                "chats) or user group (its current members).",
                "read",
                obj(
                    window_ok
                    | {"dimension": STR, "data": {"type": "array", "items": ref("BreakdownRow")}}
                ),
                params=[
                    *WINDOW,
                    *ANALYTICS_FILTERS,
                    q(
                        "dimension",
                        {"enum": list(analytics_store.DIMENSIONS), "default": "model"},
                    ),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            )
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    from heliograph.api import (  # built on these helpers
        openapi_alerts,
        openapi_budgets,
        openapi_datasets,
        openapi_experiment_results,
        openapi_experiments,
        openapi_online_eval,
        openapi_prompts,
        openapi_retention,
        openapi_traces,
        openapi_webhooks,
    )

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Heliograph API",
            "version": "1",
            "description": "Read, query, annotate and export recorded LLM requests; manage "
            "and compile prompts; build datasets. Helicone's "
            "query, feedback and score endpoints live under /v1/request/. Errors are "
            '{"error": {"message", "type", "code"}}.',
        },
        "security": [{"bearerAuth": []}],
        "paths": paths()
        | openapi_online_eval.paths()
        | openapi_prompts.paths()
        | openapi_budgets.paths()
        | openapi_datasets.paths()
        | openapi_experiment_results.paths()
        | openapi_experiments.paths()
        | openapi_webhooks.paths()
        | openapi_alerts.paths()
        | openapi_traces.paths()
        | openapi_retention.paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas()
            | openapi_online_eval.schemas()
            | openapi_prompts.schemas()
            | openapi_budgets.schemas()
            | openapi_datasets.schemas()
            | openapi_experiment_results.schemas()
            | openapi_experiments.schemas()
            | openapi_webhooks.schemas()
            | openapi_alerts.schemas()
            | openapi_traces.schemas()
            | openapi_retention.schemas(),
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document())


async def docs(request: Request) -> Response:
    """The document as plain HTML: one section per operation, no scripts."""
    e = html.escape
    parts = [
        "<!doctype html><meta charset=utf-8><title>Heliograph API</title>",
        '<link rel=stylesheet href="/static/app.css"><main><h1>Heliograph API</h1>',
        f"<p>{e(document()['info']['description'])} Machine-readable: "
        '<a href="/openapi.json">/openapi.json</a>.</p>',
    ]
    for path, methods in document()["paths"].items():
        for method, spec in methods.items():
            parts.append(f"<h2><code>{e(method.upper())} {e(path)}</code></h2>")
            parts.append(f"<p>{e(spec['summary'])} {e(spec['description'])}</p>")
            params = [
                f"<li><code>{e(p['name'])}</code> ({e(p['in'])}) {e(p.get('description', ''))}</li>"
                for p in spec["parameters"]
            ]
            if params:
                parts.append("<ul>" + "".join(params) + "</ul>")
            codes = ", ".join(e(c) for c in spec["responses"])
            parts.append(f"<p>Responses: {codes}</p>")
    return HTMLResponse("".join(parts) + "</main>")


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
