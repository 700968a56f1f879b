"""Reading request records: lists with filters and cursors, one record with its bodies.

Inserting them is ``store.inserts``; which records a list selects is a ``RequestFilter``
(``store.selection``), compiled by ``store.filters``.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select

from heliograph.store import filters
from heliograph.store.bodies import unpack_body
from heliograph.store.feedback import annotate
from heliograph.store.schema import request_bodies, requests
from heliograph.store.selection import RequestFilter

LIST_COLUMNS = [
    requests.c.id,
    requests.c.created_at,
    requests.c.kind,
    requests.c.provider,
    requests.c.upstream,
    requests.c.method,
    requests.c.endpoint,
    requests.c.model,
    requests.c.response_model,
    requests.c.stream,
    requests.c.status,
    requests.c.state,
    requests.c.error,
    requests.c.latency_ms,
    requests.c.ttft_ms,
    requests.c.output_tokens_per_s,
    requests.c.prompt_tokens,
    requests.c.completion_tokens,
    requests.c.total_tokens,
    requests.c.cached_tokens,
    requests.c.reasoning_tokens,
    requests.c.cost_nusd,
    requests.c.user_id,
    requests.c.session_id,
    requests.c.properties,
    requests.c.key_id,
    requests.c.protocol,
    requests.c.cache_write_tokens,
    requests.c.prompt_tokens_per_s,
    requests.c.load_ms,
    requests.c.tokens_estimated,
    requests.c.cost_known,
    requests.c.cost_input_nusd,
    requests.c.cost_output_nusd,
    requests.c.cost_cache_read_nusd,
    requests.c.cost_cache_write_nusd,
    requests.c.cost_source,
    requests.c.price_ref,
    requests.c.session_path,
    requests.c.session_name,
    requests.c.cache_hit,
    requests.c.cost_saved_nusd,
    requests.c.retries,
    requests.c.served_by,
    requests.c.omitted,
    requests.c.model_override,
    requests.c.budget_note,
    requests.c.user_name,
    requests.c.user_email,
    requests.c.user_role,
    requests.c.user_groups,
    requests.c.identity,
    requests.c.task,
    requests.c.message_id,
    requests.c.prompt_name,
    requests.c.prompt_version,
    requests.c.prompt_label,
    requests.c.prompt_inputs,
    requests.c.trace_id,
    requests.c.span_id,
    requests.c.parent_span_id,
    requests.c.source,
]
COLD_START_MS = 1000.0


def encode_cursor(created_at: int, rid: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, rid])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ValueError on anything that is not a cursor we made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, rid = orjson.loads(raw)
    except Exception as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(created_at, int) or not isinstance(rid, str):
        raise ValueError("invalid cursor")
    return created_at, rid


def list_requests(
    engine: Engine, org_id: str, f: RequestFilter, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; returns one page and the cursor of the next page (None at the end)."""
    query = select(*LIST_COLUMNS).where(f.condition(org_id))
    if cursor:
        created_at, rid = decode_cursor(cursor)
        query = query.where(
            or_(
                requests.c.created_at < created_at,
                and_(requests.c.created_at == created_at, requests.c.id < rid),
            )
        )
    query = query.order_by(requests.c.created_at.desc(), requests.c.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
    return [to_api(r) for r in rows], next_cursor


def get_request(engine: Engine, org_id: str, rid: str) -> dict[str, Any] | None:
    """One record with bodies and redacted headers, or None (also for other orgs' ids)."""
    if filters.holds_nul(rid):
        return None
    query = (
        select(
            *LIST_COLUMNS,
            request_bodies.c.encoding,
            request_bodies.c.request_body,
            request_bodies.c.response_body,
            request_bodies.c.request_headers,
            request_bodies.c.truncated,
            requests.c.attempts,
        )
        .select_from(
            requests.outerjoin(request_bodies, request_bodies.c.request_id == requests.c.id)
        )
        .where(requests.c.org_id == org_id, requests.c.id == rid)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
        if row is None:
            return None
        data = dict(row._mapping)
        out = to_api(data)
        annotate(conn, org_id, [out])
    encoding = data.get("encoding") or "raw"
    out["request_body"] = body_value(unpack_body(data.get("request_body"), encoding))
    out["response_body"] = body_value(unpack_body(data.get("response_body"), encoding))
    headers = data.get("request_headers") or {}
    out["request_headers"] = dict(headers.get("request") or []) if isinstance(headers, dict) else {}
    out["response_headers"] = (
        dict(headers.get("response") or []) if isinstance(headers, dict) else {}
    )
    out["query"] = headers.get("query") if isinstance(headers, dict) else None
    out["body_truncated"] = bool(data.get("truncated"))
    out["attempts"] = data.get("attempts") or []
    return out


def body_value(raw: bytes | None) -> Any:
    """JSON bodies come back as JSON; text as a string; binary as a size note."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"binary": True, "bytes": len(raw)}


def iso_ms(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def usd(nusd: int | None) -> float | None:
    """Nano-USD integer to a JSON number; exact for any amount below ~9 million USD."""
    return None if nusd is None else nusd / 1e9


def to_api(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row in the API's field names and units."""
    known = bool(row.get("cost_known"))
    load_ms = row.get("load_ms")
    return {
        "id": row["id"],
        "created_at": iso_ms(row["created_at"]),
        "kind": row["kind"],
        "provider": row["provider"],
        "upstream": row["upstream"],
        "method": row["method"],
        "endpoint": row["endpoint"],
        "model": row["model"],
        "response_model": row["response_model"],
        "stream": bool(row["stream"]),
        "status": row["status"],
        "state": row["state"],
        "error": row["error"],
        "latency_ms": row["latency_ms"],
        "ttft_ms": row["ttft_ms"],
        "output_tokens_per_s": row["output_tokens_per_s"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_tokens": row["total_tokens"],
        "cached_tokens": row["cached_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "cache_write_tokens": row.get("cache_write_tokens"),
        "tokens_estimated": bool(row.get("tokens_estimated")),
        "prompt_tokens_per_s": row.get("prompt_tokens_per_s"),
        "load_ms": load_ms,
        "cold_start": load_ms is not None and load_ms > COLD_START_MS,
        "cost_usd": usd(row.get("cost_nusd")) if known else None,
        "cost_known": known,
        "cost_input_usd": usd(row.get("cost_input_nusd")) if known else None,
        "cost_output_usd": usd(row.get("cost_output_nusd")) if known else None,
        "cost_cache_read_usd": usd(row.get("cost_cache_read_nusd")) if known else None,
        "cost_cache_write_usd": usd(row.get("cost_cache_write_nusd")) if known else None,
        "cost_source": row.get("cost_source"),
        "price_ref": row.get("price_ref"),
        "user_id": row["user_id"],
        "session_id": row["session_id"],
        "properties": row["properties"] or {},
        "key_id": row["key_id"],
        "protocol": row.get("protocol"),
        "session_path": row.get("session_path"),
        "session_name": row.get("session_name"),
        "cache_hit": bool(row.get("cache_hit")),
        "cost_saved_usd": usd(row.get("cost_saved_nusd")),
        "retries": row.get("retries") or 0,
        "served_by": row.get("served_by"),
        "omitted": row.get("omitted"),
        "model_override": row.get("model_override"),
        "budget_note": row.get("budget_note"),
        "user_name": row.get("user_name"),
        "user_email": row.get("user_email"),
        "user_role": row.get("user_role"),
        "user_groups": row.get("user_groups") or [],
        "identity": row.get("identity"),
        "task": row.get("task"),
        "message_id": row.get("message_id"),
        "prompt_name": row.get("prompt_name"),
        "prompt_version": row.get("prompt_version"),
        "prompt_label": row.get("prompt_label"),
        "prompt_inputs": row.get("prompt_inputs"),
        "trace_id": row.get("trace_id"),
        "span_id": row.get("span_id"),
        "parent_span_id": row.get("parent_span_id"),
        "source": row.get("source") or "gateway",
    }


def recent_requests(
    engine: Engine, since_ms: int, limit: int = 500, where: filters.Filter = filters.ALL
) -> list[dict[str, Any]]:
    """Records of every organization created since ``since_ms`` that match ``where`` (for
    ``heliograph tail``)."""
    query = (
        select(*LIST_COLUMNS)
        .where(requests.c.created_at >= since_ms, filters.condition(None, where))
        .order_by(requests.c.created_at.desc(), requests.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [to_api(dict(r._mapping)) for r in conn.execute(query)]


def time_bounds(engine: Engine, org_id: str) -> tuple[int | None, int | None]:
    """The first and the latest LLM call of an organization (epoch ms), or Nones.

    Two index probes (org, created_at) rather than MIN/MAX over the org's rows: the dashboard
    asks on every page opened without a range."""
    base = select(requests.c.created_at).where(
        requests.c.org_id == org_id, requests.c.kind == "llm"
    )
    with engine.connect() as conn:
        first = conn.execute(base.order_by(requests.c.created_at).limit(1)).scalar()
        last = conn.execute(base.order_by(requests.c.created_at.desc()).limit(1)).scalar()
    return first, last
