"""Alerts API: rules, notification channels (with a test send) and the history of events.

Admin keys write, read keys read; another organization's rule or channel is answered as
absent (404). Bad definitions are a 400 naming the field and what it accepts (the checks are
``alerts.definitions``, shared with the dashboard and ``config.toml``). Channel secrets (a
webhook's signing secret, Slack and Discord URLs, an SMTP password) are accepted but never
returned: a channel shows a masked hint of each. Rows from ``config.toml`` are read-only here
(409): the file is synced at every start and would undo the change.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.alerts import channels as senders
from heliograph.alerts.definitions import (
    DefinitionError,
    check_channel,
    check_rule,
    format_window,
    hint,
)
from heliograph.api.auth import require
from heliograph.api.params import check_params, id_param
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import alert_state
from heliograph.store import alerts as store
from heliograph.store.requests import iso_ms

MAX_EVENTS = 500


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


def channel_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "enabled": row["enabled"],
        "source": row["source"],
        "config": row["config"],
        "secrets": {k: hint(v) for k, v in (row["secrets"] or {}).items()},
        "created_at": iso_ms(row["created_at"]),
        "updated_at": iso_ms(row["updated_at"]),
    }


def rule_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "metric": row["metric"],
        "filter": row["filter"] or {},
        "window": format_window(row["window_s"]),
        "window_s": row["window_s"],
        "comparison": row["comparison"],
        "threshold": row["threshold"],
        "min_requests": row["min_requests"],
        "cooldown": format_window(row["cooldown_s"]) if row["cooldown_s"] else "0s",
        "cooldown_s": row["cooldown_s"],
        "channels": row["channels"] or [],
        "enabled": row["enabled"],
        "source": row["source"],
        "state": row["state"],
        "state_since": _iso(row["state_since"]),
        "last_value": row["last_value"],
        "last_count": row["last_count"],
        "last_evaluated_at": _iso(row["last_evaluated_at"]),
        "last_error": row["last_error"],
        "created_at": iso_ms(row["created_at"]),
        "updated_at": iso_ms(row["updated_at"]),
    }


def event_api(row: dict[str, Any], deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "rule_id": row["rule_id"],
        "rule_name": row["rule_name"],
        "kind": row["kind"],
        "metric": row["metric"],
        "comparison": row["comparison"],
        "threshold": row["threshold"],
        "value": row["value"],
        "request_count": row["request_count"],
        "notified": row["notified"],
        "at": iso_ms(row["at"]),
        "deliveries": [
            {
                "channel_id": d["channel_id"],
                "channel": d["channel_name"],
                "status": d["status"],
                "attempts": d["attempts"],
                "last_error": d["last_error"],
                "sent_at": _iso(d["sent_at"]),
            }
            for d in deliveries
        ],
    }


def _id(request: Request, what: str) -> str:
    return id_param(request, "item_id", lambda value: _missing(what, value))


def _missing(what: str, value: str) -> ApiError:
    return ApiError(404, f"No alert {what} {value[:100]!r} here.", "not_found")


def _invalid(exc: DefinitionError) -> ApiError:
    return ApiError(400, str(exc), "invalid_parameter")


def _config_owned(what: str, row: dict[str, Any]) -> None:
    if row["source"] == "config":
        raise ApiError(
            409,
            f"This {what} comes from config.toml; change it there (synced at start).",
            "conflict",
        )


# ---- rules ---------------------------------------------------------------------------------


async def list_rules(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rows = await run_in_threadpool(store.list_rules, request.app.state.engine, info.org_id)
    return JSONResponse({"data": [rule_api(r) for r in rows]})


async def create_rule(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    doc = await read_json_object(request)
    engine = request.app.state.engine
    refs = await run_in_threadpool(store.channel_refs, engine, info.org_id)
    try:
        rule = check_rule(doc, refs)
    except DefinitionError as exc:
        raise _invalid(exc) from exc
    try:
        row = await run_in_threadpool(
            store.create_rule, engine, info.org_id, rule, f"key:{info.id}"
        )
    except store.DuplicateName as exc:
        raise ApiError(409, f"A rule named {rule['name']!r} exists.", "conflict") from exc
    return JSONResponse(rule_api(row), 201)


async def get_rule(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rid = _id(request, "rule")
    row = await run_in_threadpool(store.get_rule, request.app.state.engine, info.org_id, rid)
    if row is None:
        raise _missing("rule", rid)
    return JSONResponse(rule_api(row))


async def update_rule(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    rid = _id(request, "rule")
    doc = await read_json_object(request)
    engine = request.app.state.engine
    row = await run_in_threadpool(store.get_rule, engine, info.org_id, rid)
    if row is None:
        raise _missing("rule", rid)
    _config_owned("rule", row)
    refs = await run_in_threadpool(store.channel_refs, engine, info.org_id)
    try:
        rule = check_rule(doc, refs, stored_definition(row))
    except DefinitionError as exc:
        raise _invalid(exc) from exc
    try:
        updated = await run_in_threadpool(store.update_rule, engine, info.org_id, rid, rule)
    except store.DuplicateName as exc:
        raise ApiError(409, f"A rule named {rule['name']!r} exists.", "conflict") from exc
    if updated is None:
        raise _missing("rule", rid)
    return JSONResponse(rule_api(updated))


def stored_definition(row: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as a definition ``check_rule`` reads (what a PATCH changes)."""
    return {
        "name": row["name"],
        "metric": row["metric"],
        "filter": row["filter"] or {},
        "window": row["window_s"],
        "comparison": row["comparison"],
        "threshold": row["threshold"],
        "min_requests": row["min_requests"],
        "cooldown": row["cooldown_s"],
        "channels": row["channels"] or [],
        "enabled": row["enabled"],
    }


async def delete_rule(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    rid = _id(request, "rule")
    engine = request.app.state.engine
    row = await run_in_threadpool(store.get_rule, engine, info.org_id, rid)
    if row is None:
        raise _missing("rule", rid)
    _config_owned("rule", row)
    await run_in_threadpool(store.delete_rule, engine, info.org_id, rid)
    return Response(status_code=204)


# ---- channels ------------------------------------------------------------------------------


async def list_channels(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rows = await run_in_threadpool(store.list_channels, request.app.state.engine, info.org_id)
    return JSONResponse({"data": [channel_api(r) for r in rows]})


async def create_channel(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    doc = await read_json_object(request)
    try:
        channel = check_channel(doc)
    except DefinitionError as exc:
        raise _invalid(exc) from exc
    engine = request.app.state.engine
    try:
        row = await run_in_threadpool(store.create_channel, engine, info.org_id, channel)
    except store.DuplicateName as exc:
        raise ApiError(409, f"A channel named {channel['name']!r} exists.", "conflict") from exc
    return JSONResponse(channel_api(row), 201)


async def _channel(request: Request, action: str) -> tuple[Any, str, dict[str, Any]]:
    info = await require(request, action)
    check_params(request, ())
    cid = _id(request, "channel")
    row = await run_in_threadpool(store.get_channel, request.app.state.engine, info.org_id, cid)
    if row is None:
        raise _missing("channel", cid)
    return info, cid, row


async def get_channel(request: Request) -> Response:
    _, _, row = await _channel(request, "read")
    return JSONResponse(channel_api(row))


async def update_channel(request: Request) -> Response:
    info, cid, row = await _channel(request, "admin")
    _config_owned("channel", row)
    doc = await read_json_object(request)
    try:
        channel = check_channel(doc, row)
    except DefinitionError as exc:
        raise _invalid(exc) from exc
    engine = request.app.state.engine
    try:
        updated = await run_in_threadpool(store.update_channel, engine, info.org_id, cid, channel)
    except store.DuplicateName as exc:
        raise ApiError(409, f"A channel named {channel['name']!r} exists.", "conflict") from exc
    if updated is None:
        raise _missing("channel", cid)
    return JSONResponse(channel_api(updated))


async def delete_channel(request: Request) -> Response:
    info, cid, row = await _channel(request, "admin")
    _config_owned("channel", row)
    await run_in_threadpool(store.delete_channel, request.app.state.engine, info.org_id, cid)
    return Response(status_code=204)


async def test_channel(request: Request) -> Response:
    _, _, row = await _channel(request, "admin")
    settings = request.app.state.settings
    error = await senders.send_test(row, settings.base_url(), settings.alerts_send_timeout_s)
    return JSONResponse({"ok": error is None, "error": error})


# ---- history -------------------------------------------------------------------------------


async def list_events(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("rule_id", "limit"))
    rule_id = request.query_params.get("rule_id") or None
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_EVENTS:
        raise ApiError(
            400, f"limit: must be a whole number from 1 to {MAX_EVENTS}", "invalid_parameter"
        )
    engine = request.app.state.engine

    def read() -> list[dict[str, Any]]:
        rows = store.list_events(engine, info.org_id, rule_id=rule_id, limit=int(raw))
        sent = alert_state.deliveries(engine, info.org_id, [r["id"] for r in rows])
        return [event_api(r, sent.get(r["id"], [])) for r in rows]

    return JSONResponse({"data": await run_in_threadpool(read)})


routes = [
    Route("/api/v1/alerts/rules", list_rules, methods=["GET"]),
    Route("/api/v1/alerts/rules", create_rule, methods=["POST"]),
    Route("/api/v1/alerts/rules/{item_id}", get_rule, methods=["GET"]),
    Route("/api/v1/alerts/rules/{item_id}", update_rule, methods=["PATCH"]),
    Route("/api/v1/alerts/rules/{item_id}", delete_rule, methods=["DELETE"]),
    Route("/api/v1/alerts/channels", list_channels, methods=["GET"]),
    Route("/api/v1/alerts/channels", create_channel, methods=["POST"]),
    Route("/api/v1/alerts/channels/{item_id}", get_channel, methods=["GET"]),
    Route("/api/v1/alerts/channels/{item_id}", update_channel, methods=["PATCH"]),
    Route("/api/v1/alerts/channels/{item_id}", delete_channel, methods=["DELETE"]),
    Route("/api/v1/alerts/channels/{item_id}/test", test_channel, methods=["POST"]),
    Route("/api/v1/alerts/events", list_events, methods=["GET"]),
]
