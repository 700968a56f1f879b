"""The latest requests that came from Open WebUI, for the connection check on its setup page.

A request came from Open WebUI when its stored request headers hold any ``x-openwebui-*``
header (stored names are lower-case; values are redacted where they look like secrets, so a
user JWT shows only as present). The search is bounded twice: only the organization's newest
``SCAN`` requests are looked at (the ``(org_id, created_at)`` index walks them newest first),
and at most ``limit`` of them are returned.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Text, cast, select

from heliograph.store.schema import request_bodies, requests

SCAN = 5000  # newest requests of the organization looked through
MAX_LIMIT = 100
# Stored headers are JSON text, ``[name, value]`` pairs with lower-case names:
# '... ["x-openwebui-user-id","u-1"] ...'. A name opens its pair, so it follows '[' and a
# bare quote; in a value the same text would have its quote escaped (\").
_MARK = '%["x-openwebui-%'


def recent_openwebui_requests(
    engine: Engine, org_id: str, limit: int = 20, scan: int = SCAN
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the newest ``scan`` requests of ``org_id`` that carry Open WebUI
    headers, newest first: id, time, model, endpoint, status, error, user and session, and
    the stored request headers as ``[name, value]`` pairs."""
    limit = max(1, min(limit, MAX_LIMIT))
    newest = (
        select(requests.c.id, requests.c.created_at)
        .where(requests.c.org_id == org_id)
        .order_by(requests.c.created_at.desc(), requests.c.id.desc())
        .limit(max(1, scan))
        .subquery()
    )
    query = (
        select(
            requests.c.id,
            requests.c.created_at,
            requests.c.model,
            requests.c.endpoint,
            requests.c.upstream,
            requests.c.status,
            requests.c.error,
            requests.c.user_id,
            requests.c.session_id,
            request_bodies.c.request_headers,
        )
        .select_from(
            newest.join(requests, requests.c.id == newest.c.id).join(
                request_bodies, request_bodies.c.request_id == newest.c.id
            )
        )
        .where(
            requests.c.org_id == org_id, cast(request_bodies.c.request_headers, Text).like(_MARK)
        )
        .order_by(newest.c.created_at.desc(), newest.c.id.desc())
        .limit(limit)
    )
    out = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            data = dict(row._mapping)
            data["headers"] = _request_headers(data.pop("request_headers"))
            if any(name.startswith("x-openwebui-") for name, _ in data["headers"]):
                out.append(data)
    return out


def _request_headers(stored: Any) -> list[tuple[str, str]]:
    """The request's headers as stored: ``{"request": [[name, value], ...], ...}``."""
    pairs = stored.get("request") if isinstance(stored, dict) else stored
    if not isinstance(pairs, list):
        return []
    out = []
    for pair in pairs:
        if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], str):
            out.append((pair[0].lower(), "" if pair[1] is None else str(pair[1])))
    return out
