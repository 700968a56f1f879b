"""Requests-page queries: any sort order, free text in prompts and outputs, export, sessions.

Bodies are compressed (zstd) in ``request_bodies``, so the free-text filter cannot be SQL that
works the same on SQLite and PostgreSQL. Instead every SQL filter runs first, then candidate
rows are read in the page's order in batches, their bodies decompressed and the JSON string
values of prompt and output searched (case-insensitive, after JSON unescaping, so ``é`` and
``\\u00e9`` both match). One call examines at most ``scan_limit`` candidates: when it stops
early it returns the matches so far and a cursor that continues after the last row examined,
so a page never takes unbounded time and no row is skipped.

Cursors are ``[sort value, id]`` keysets; the time order is the API's (same cursor format).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from heliograph.store.bodies import unpack_body
from heliograph.store.filters import holds_nul
from heliograph.store.requests import LIST_COLUMNS, to_api
from heliograph.store.schema import request_bodies, requests
from heliograph.store.selection import RequestFilter

SORTS = ("time", "cost", "latency", "tokens", "ttft", "tps")
BATCH = 200
DEFAULT_SCAN_LIMIT = 5000
_NOT_TEXT = frozenset(
    {
        "model",
        "id",
        "object",
        "role",
        "type",
        "finish_reason",
        "stop_reason",
        "system_fingerprint",
        "service_tier",
        "tool_call_id",
        "status",
        "created_at",
    }
)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    scan_stopped: bool = False  # the text search stopped at its scan limit (more may match)


def _sort_expr(sort: str, ascending: bool) -> ColumnElement[Any]:
    if sort == "time":
        return requests.c.created_at
    column: ColumnElement[Any] = {
        "cost": case((requests.c.cost_known.is_(True), requests.c.cost_nusd), else_=None),
        "latency": requests.c.latency_ms,
        "tokens": requests.c.total_tokens,
        "ttft": requests.c.ttft_ms,
        "tps": requests.c.output_tokens_per_s,
    }[sort]
    # Unknown values sort last either way; a sentinel keeps the keyset free of NULLs.
    return func.coalesce(column, 2**53 if ascending else -1)


def _encode(value: Any, rid: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([value, rid])).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int | float, str]:
    try:
        value, rid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception as exc:
        raise ValueError("invalid cursor") from exc
    if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(rid, str):
        raise ValueError("invalid cursor")
    return value, rid


def _after(expr: ColumnElement[Any], cursor: str, ascending: bool) -> ColumnElement[bool]:
    value, rid = _decode(cursor)
    if ascending:
        return or_(expr > value, and_(expr == value, requests.c.id > rid))
    return or_(expr < value, and_(expr == value, requests.c.id < rid))


def search_requests(
    engine: Engine,
    org_id: str,
    f: RequestFilter,
    limit: int,
    cursor: str | None = None,
    *,
    sort: str = "time",
    ascending: bool = False,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
) -> Page:
    """One page of ``to_api`` rows in the given order, honouring every filter."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    expr = _sort_expr(sort, ascending)
    columns: list[Any] = [*LIST_COLUMNS, expr.label("sort_key")]
    if f.text:
        columns += [
            request_bodies.c.encoding,
            request_bodies.c.request_body,
            request_bodies.c.response_body,
        ]
    source = requests.outerjoin(request_bodies, request_bodies.c.request_id == requests.c.id)
    base = select(*columns).select_from(source).where(f.condition(org_id))
    order = (expr.asc(), requests.c.id.asc()) if ascending else (expr.desc(), requests.c.id.desc())
    found: list[dict[str, Any]] = []
    scanned = 0
    needle = f.text.casefold() if f.text else None
    with engine.connect() as conn:
        while True:
            query = base.where(_after(expr, cursor, ascending)) if cursor else base
            want = limit + 1 if needle is None else max(1, min(BATCH, scan_limit - scanned))
            batch = [dict(r._mapping) for r in conn.execute(query.order_by(*order).limit(want))]
            for row in batch:
                scanned += 1
                if needle is None or _matches(row, needle):
                    found.append(row)
                if len(found) > limit:
                    break
            if len(found) > limit or len(batch) < want or needle is None:
                break
            cursor = _encode(batch[-1]["sort_key"], batch[-1]["id"])
            if scanned >= scan_limit:
                return Page([to_api(r) for r in found], cursor, scan_stopped=True)
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        next_cursor = _encode(found[-1]["sort_key"], found[-1]["id"])
    return Page([to_api(r) for r in found], next_cursor)


def iter_requests(
    engine: Engine,
    org_id: str,
    f: RequestFilter,
    *,
    sort: str = "time",
    ascending: bool = False,
    batch: int = 500,
) -> Iterator[dict[str, Any]]:
    """Every matching row, fetched a batch at a time (constant memory, no cap)."""
    cursor: str | None = None
    while True:
        page = search_requests(engine, org_id, f, batch, cursor, sort=sort, ascending=ascending)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def neighbours(
    engine: Engine, org_id: str, f: RequestFilter, rid: str
) -> tuple[str | None, str | None]:
    """Ids of the next older and the next newer record around ``rid`` that match ``f``
    (by created_at, then id: the Requests page's order), for previous/next links.

    The same keyset as the page's cursors, so each side is one indexed query (a text filter
    scans as the page does and may stop at its limit: then there is no link)."""
    if holds_nul(rid):
        return None, None
    query = select(requests.c.created_at).where(requests.c.org_id == org_id, requests.c.id == rid)
    with engine.connect() as conn:
        created = conn.execute(query).scalar()
    if created is None:
        return None, None
    cursor = _encode(created, rid)
    sides = []
    for ascending in (False, True):
        page = search_requests(engine, org_id, f, 1, cursor, ascending=ascending)
        sides.append(page.rows[0]["id"] if page.rows else None)
    return sides[0], sides[1]


def body_strings(raw: bytes | None) -> Iterator[str]:
    """The text a body holds: its JSON string values (not ids, roles or types) or its text."""
    if not raw:
        return
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield raw.decode("utf-8", "replace")
        return
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k not in _NOT_TEXT)
        elif isinstance(item, list):
            stack.extend(item)


def _matches(row: dict[str, Any], needle: str) -> bool:
    encoding = row.get("encoding") or "raw"
    for name in ("request_body", "response_body"):
        raw = unpack_body(row.get(name), encoding)
        if any(needle in text.casefold() for text in body_strings(raw)):
            return True
    return False


def request_bodies_for(engine: Engine, org_id: str, ids: list[str]) -> dict[str, bytes | None]:
    """Decompressed request bodies of the given records (for prompt previews).

    Both lookups go by primary key; joining on ``org_id`` instead lets SQLite's planner walk
    the organization's whole index, which is slow at millions of rows.
    """
    if not ids:
        return {}
    owners = select(requests.c.id, requests.c.org_id).where(requests.c.id.in_(ids))
    bodies = select(
        request_bodies.c.request_id, request_bodies.c.encoding, request_bodies.c.request_body
    ).where(request_bodies.c.request_id.in_(ids))
    with engine.connect() as conn:
        mine = {r.id for r in conn.execute(owners) if r.org_id == org_id}
        return {
            r.request_id: unpack_body(r.request_body, r.encoding or "raw")
            for r in conn.execute(bodies)
            if r.request_id in mine
        }


def _header(headers: Any, *names: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for pair in headers.get("request") or []:
        if isinstance(pair, list) and len(pair) == 2 and str(pair[0]).lower() in names:
            return str(pair[1]) if pair[1] else None
    return None


def session_requests(
    engine: Engine, org_id: str, session_id: str, limit: int = 2000
) -> list[dict[str, Any]]:
    """A session's requests, oldest first, each with its session path and name if one was sent.

    The path (``Helicone-Session-Path``) is read from the stored request headers.
    """
    if holds_nul(session_id):
        return []
    query = (
        select(*LIST_COLUMNS, request_bodies.c.request_headers)
        .select_from(
            requests.outerjoin(request_bodies, request_bodies.c.request_id == requests.c.id)
        )
        .where(requests.c.org_id == org_id, requests.c.session_id == session_id)
        .order_by(requests.c.created_at, requests.c.id)
        .limit(limit)
    )
    out = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            row = dict(r._mapping)
            api = to_api(row)
            headers = row.get("request_headers")
            api["created_ms"] = row["created_at"]
            api["session_path"] = _header(
                headers, "helicone-session-path", "heliograph-session-path"
            )
            api["session_name"] = (
                _header(headers, "helicone-session-name", "heliograph-session-name")
                or api["session_name"]  # e.g. the chat title Open WebUI generated
            )
            out.append(api)
    return out
