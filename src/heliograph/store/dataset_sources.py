"""Logged requests as material for dataset items: which ones a filter selects, and each with
its bodies, many at a time.

``count_matching`` is the "count first" step of adding every request that matches a filter;
``matching_ids`` takes at most ``limit`` of them, newest first. ``records_with_bodies`` reads
records and their decompressed bodies by id, a chunk per query rather than a query per
record, in the shape ``evals.observation.from_record`` reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from heliograph.store.bodies import unpack_body
from heliograph.store.filters import holds_nul
from heliograph.store.requests import LIST_COLUMNS
from heliograph.store.schema import request_bodies, requests
from heliograph.store.selection import RequestFilter

CHUNK = 200


def count_matching(engine: Engine, org_id: str, f: RequestFilter) -> int:
    query = select(func.count()).select_from(requests).where(f.condition(org_id))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def matching_ids(engine: Engine, org_id: str, f: RequestFilter, limit: int) -> list[str]:
    """The ids of at most ``limit`` matching requests, newest first."""
    query = (
        select(requests.c.id)
        .where(f.condition(org_id))
        .order_by(requests.c.created_at.desc(), requests.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [str(i) for i in conn.execute(query).scalars()]


def records_with_bodies(
    engine: Engine, org_id: str, ids: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """This organization's records among ``ids`` (others' and unknown ids are left out), in
    the order given, each with ``request_body``, ``response_body`` (bytes) and
    ``response_headers``."""
    wanted = [i for i in dict.fromkeys(ids) if not holds_nul(i)]
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        query = (
            select(
                *LIST_COLUMNS,
                request_bodies.c.encoding,
                request_bodies.c.request_body,
                request_bodies.c.response_body,
                request_bodies.c.request_headers,
            )
            .select_from(
                requests.outerjoin(request_bodies, request_bodies.c.request_id == requests.c.id)
            )
            .where(requests.c.org_id == org_id, requests.c.id.in_(chunk))
        )
        with engine.connect() as conn:
            found = {r.id: dict(r._mapping) for r in conn.execute(query)}
        for rid in chunk:
            row = found.get(rid)
            if row is None:
                continue
            encoding = row.pop("encoding") or "raw"
            row["request_body"] = unpack_body(row["request_body"], encoding)
            row["response_body"] = unpack_body(row["response_body"], encoding)
            headers = row.pop("request_headers")
            response = headers.get("response") if isinstance(headers, dict) else None
            row["response_headers"] = dict(response or [])
            yield row
