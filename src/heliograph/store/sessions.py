"""Sessions and one user's usage, as the Sessions and User pages show them.

A session is every record carrying one ``session_id`` (``Helicone-Session-Id``, Open WebUI's
chat id). The list is aggregated from raw rows (the partial session index keeps it to the
records that have a session), searched by session id, name or user, sorted in SQL by any
numeric column and paged with a keyset cursor that also pins the time the first page was
read: sessions and requests that arrive while someone pages are left out of that walk
instead of shifting rows from one page to the next (the first page shows them).

There is no session rollup, so the cost is in the raw rows: the default order (latest
activity first) walks the records back in time only until a page of sessions is found and
aggregates just those (40 ms for 30 days of 200k records on SQLite); other orders and
searches aggregate every session of the window (about 0.7 s for the same 30 days, 5 to 10
times faster than the breakdown the page used before). A session rollup kept by the writer
is the next step if those orders must be fast at millions of records.

The User page's per-model table needs latency percentiles, which the per-user rollups do not
keep; they are computed here from one user's raw rows (the ``(org_id, user_id, created_at)``
index), bucketed in SQL with the same histogram bounds as ``store.stats``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, Engine, and_, case, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from heliograph.store.bodies import unpack_body
from heliograph.store.filters import holds_nul
from heliograph.store.schema import end_users, request_bodies, requests
from heliograph.store.stats import BUCKETS_MS, Stats

SORTS = ("requests", "first", "last", "duration", "tokens", "cost", "errors")
MAX_SEARCH = 200
ID_CHUNK = 500
WALK_BATCH = 500
FAILED = ("error", "interrupted")


@dataclass
class SessionPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int
    as_of_ms: int


def _measures() -> dict[str, ColumnElement[Any]]:
    c = requests.c
    end = func.max(c.created_at + func.coalesce(c.latency_ms, 0))
    return {
        "requests": func.count(),
        "first": func.min(c.created_at),
        "last": func.max(c.created_at),
        "duration": cast(end, BigInteger) - func.min(c.created_at),
        "tokens": func.coalesce(
            func.sum(func.coalesce(c.prompt_tokens, 0) + func.coalesce(c.completion_tokens, 0)), 0
        ),
        "cost": func.coalesce(func.sum(case((c.cost_known.is_(True), c.cost_nusd), else_=0)), 0),
        "errors": func.coalesce(func.sum(case((c.state.in_(FAILED), 1), else_=0)), 0),
    }


def _encode(sort: str, descending: bool, value: int, sid: str, as_of: int) -> str:
    raw = orjson.dumps([sort, descending, value, sid, as_of])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str, descending: bool) -> tuple[int, str, int]:
    """(value, session id, as-of ms) of a cursor made for this order; ValueError otherwise."""
    try:
        got = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        s, d, value, sid, as_of = got
    except Exception as exc:
        raise ValueError("invalid cursor") from exc
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (value, as_of))
    if (s, d) != (sort, descending) or not ints or not isinstance(sid, str):
        raise ValueError("invalid cursor")
    return value, sid, as_of


def _matching(org_id: str, text: str, since_ms: int, until_ms: int) -> Any:
    """Ids of the sessions with a record in the window whose session id, session name or
    user (id, or the name or email Open WebUI or the directory gives it) contains ``text``."""
    needle = text.lower()
    c = requests.c
    named = select(end_users.c.user_id).where(
        end_users.c.org_id == org_id,
        or_(
            func.lower(end_users.c.name).contains(needle, autoescape=True),
            func.lower(end_users.c.email).contains(needle, autoescape=True),
        ),
    )
    fields = (c.session_id, c.session_name, c.user_id, c.user_name, c.user_email)
    return select(c.session_id).where(
        c.org_id == org_id,
        c.session_id.is_not(None),
        c.created_at >= since_ms,
        c.created_at < until_ms,
        or_(
            *(func.lower(f).contains(needle, autoescape=True) for f in fields),
            c.user_id.in_(named),
        ),
    )


def list_sessions(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    *,
    now_ms: int,
    text: str = "",
    sort: str = "last",
    descending: bool = True,
    limit: int = 50,
    cursor: str | None = None,
) -> SessionPage:
    """One page of sessions with a record in ``[since, until)``, ordered by ``sort`` then
    session id. ``now_ms`` pins the walk: records from later are left out of this and the
    following pages (the cursor carries it). Bad cursors raise ValueError."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    as_of = now_ms
    after: tuple[int, str] | None = None
    if cursor:
        value, sid, as_of = _decode(cursor, sort, descending)
        after = (value, sid)
    until = min(until_ms, as_of + 1)
    c = requests.c
    measures = _measures()
    key = measures[sort]
    base = [
        c.org_id == org_id,
        c.session_id.is_not(None),
        c.created_at >= since_ms,
        c.created_at < until,
    ]
    text = text.strip()[:MAX_SEARCH]
    if holds_nul(text):
        return SessionPage([], None, 0, as_of)
    if text:
        base.append(c.session_id.in_(_matching(org_id, text, since_ms, until)))
    unpriced = func.coalesce(func.sum(case((c.cost_known.is_(True), 0), else_=1)), 0)
    columns = [
        c.session_id.label("session_id"),
        *(expr.label(name) for name, expr in measures.items()),
        unpriced.label("unpriced"),
        func.count(func.distinct(c.user_id)).label("users"),
        func.max(c.user_id).label("user_id"),
    ]
    query = select(*columns).where(*base).group_by(c.session_id)
    with engine.connect() as conn:
        if sort == "last" and descending and not text:  # the default: no full aggregate
            ids = _latest_ids(conn, org_id, since_ms, until, after, limit + 1)
            query = query.where(c.session_id.in_(ids))
            after = None
    if after is not None:
        value, sid = after
        beyond = key < value if descending else key > value
        tie = c.session_id < sid if descending else c.session_id > sid
        query = query.having(or_(beyond, and_(key == value, tie)))
    order = (key.desc(), c.session_id.desc()) if descending else (key.asc(), c.session_id.asc())
    total_q = select(func.count()).select_from(
        select(c.session_id).where(*base).group_by(c.session_id).subquery()
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.order_by(*order).limit(limit + 1))]
        total = int(conn.execute(total_q).scalar_one())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode(sort, descending, int(last[sort]), last["session_id"], as_of)
    titles = session_names(engine, org_id, [r["session_id"] for r in rows])
    for row in rows:
        for name in ("requests", "first", "last", "duration", "tokens", "cost", "errors"):
            row[name] = int(row[name] or 0)
        row["cost_usd"] = row["cost"] / 1e9
        row["unpriced"] = int(row["unpriced"] or 0)
        row["name"] = titles.get(row["session_id"])
    return SessionPage(rows, next_cursor, total, as_of)


def _latest_ids(
    conn: Connection,
    org_id: str,
    since_ms: int,
    until_ms: int,
    after: tuple[int, str] | None,
    want: int,
) -> list[str]:
    """The next ``want`` sessions by last activity (latest first, then session id
    descending) after the cursor's ``(last, session id)``, found by walking the records
    backwards in time on the ``(org_id, created_at)`` index until enough sessions are seen,
    instead of aggregating every session of the window. A session's first sighting in the
    walk is its last record; one seen below the cursor whose last record is above it was on
    an earlier page and is left out (checked on the session index)."""
    c = requests.c
    conds = [
        c.org_id == org_id,
        c.session_id.is_not(None),
        c.created_at >= since_ms,
        c.created_at < until_ms,
    ]
    if after is not None:
        conds.append(c.created_at <= after[0])
    seen: set[str] = set()
    valid: list[tuple[int, str]] = []
    edge: tuple[int, str] | None = None  # keyset of the walk: (created_at, id) last read
    stop_at: int | None = None  # once enough are found: finish the ties at this time
    while True:
        query = select(c.created_at, c.id, c.session_id).where(*conds)
        if edge is not None:
            query = query.where(
                or_(c.created_at < edge[0], and_(c.created_at == edge[0], c.id < edge[1]))
            )
        batch = conn.execute(
            query.order_by(c.created_at.desc(), c.id.desc()).limit(WALK_BATCH)
        ).all()
        fresh = []
        for row in batch:
            if stop_at is not None and row.created_at < stop_at:
                batch = []
                break
            if row.session_id not in seen:
                seen.add(row.session_id)
                fresh.append((int(row.created_at), row.session_id))
        valid += _not_before(conn, org_id, since_ms, until_ms, after, fresh)
        if len(valid) >= want and stop_at is None:
            stop_at = sorted(valid, reverse=True)[want - 1][0]
        if len(batch) < WALK_BATCH:
            break
        edge = (batch[-1].created_at, batch[-1].id)
    return [sid for _, sid in sorted(valid, reverse=True)[:want]]


def _not_before(
    conn: Connection,
    org_id: str,
    since_ms: int,
    until_ms: int,
    after: tuple[int, str] | None,
    found: list[tuple[int, str]],
) -> list[tuple[int, str]]:
    """The sessions of ``found`` (first sighting, id) that come after the cursor: their last
    record in the window, from the session index, is below ``after`` (or equal, with a
    smaller id)."""
    if after is None or not found:
        return found
    c = requests.c
    query = (
        select(c.session_id, func.max(c.created_at).label("last"))
        .where(
            c.org_id == org_id,
            c.session_id.is_not(None),
            c.session_id.in_([sid for _, sid in found]),
            c.created_at >= since_ms,
            c.created_at < until_ms,
        )
        .group_by(c.session_id)
    )
    return [
        (int(r.last), r.session_id)
        for r in conn.execute(query)
        if (int(r.last), r.session_id) < after
    ]


def session_names(engine: Engine, org_id: str, session_ids: Sequence[str]) -> dict[str, str]:
    """Each session's latest name (``Helicone-Session-Name``, or the title Open WebUI
    generated for the chat), from any time: a chat named an hour before the window keeps it."""
    latest: dict[str, tuple[int, str, str]] = {}
    wanted = [s for s in session_ids if not holds_nul(s)]
    c = requests.c
    with engine.connect() as conn:
        for i in range(0, len(wanted), ID_CHUNK):
            # No ORDER BY: with one, SQLite walks the organization's time index instead of
            # looking each session up in the session index (500 ms against 1 ms at 200k rows).
            query = select(
                c.session_id, c.session_name, c.created_at, c.id
            ).where(
                c.org_id == org_id,
                c.session_id.is_not(None),  # lets SQLite use the partial session index
                c.session_id.in_(wanted[i : i + ID_CHUNK]),
                c.session_name.is_not(None),
                c.session_name != "",
            )
            for row in conn.execute(query):
                mark = (row.created_at, row.id, row.session_name)
                if row.session_id not in latest or mark > latest[row.session_id]:
                    latest[row.session_id] = mark
    return {sid: mark[2] for sid, mark in latest.items()}


def bodies(
    engine: Engine, org_id: str, ids: Sequence[str]
) -> dict[str, tuple[bytes | None, bytes | None]]:
    """Decompressed (request body, response body) of these records of the organization."""
    out: dict[str, tuple[bytes | None, bytes | None]] = {}
    source = requests.join(request_bodies, request_bodies.c.request_id == requests.c.id)
    with engine.connect() as conn:
        for i in range(0, len(ids), ID_CHUNK):
            query = (
                select(
                    requests.c.id,
                    request_bodies.c.encoding,
                    request_bodies.c.request_body,
                    request_bodies.c.response_body,
                )
                .select_from(source)
                .where(requests.c.id.in_(ids[i : i + ID_CHUNK]), requests.c.org_id == org_id)
            )
            for r in conn.execute(query):
                encoding = r.encoding or "raw"
                out[r.id] = (
                    unpack_body(r.request_body, encoding),
                    unpack_body(r.response_body, encoding),
                )
    return out


def _bucket() -> ColumnElement[int]:
    """The latency histogram bucket of a row (``bisect_left`` over ``BUCKETS_MS``), -1 none."""
    latency = requests.c.latency_ms
    whens: list[tuple[ColumnElement[bool], int]] = [(latency.is_(None), -1)]
    whens += [(latency <= bound, i) for i, bound in enumerate(BUCKETS_MS)]
    return case(*whens, else_=len(BUCKETS_MS))


def user_models(
    engine: Engine, org_id: str, user_id: str, since_ms: int, until_ms: int
) -> dict[str | None, Stats]:
    """One user's LLM calls in ``[since, until)`` per model, with latency histograms (so
    p50/p95 per model and overall are exact to the bucket), from raw rows."""
    if holds_nul(user_id):
        return {}
    c = requests.c
    bucket = _bucket().label("bucket")
    query = (
        select(
            c.model,
            bucket,
            func.count().label("n"),
            func.sum(case((c.state.in_(FAILED), 1), else_=0)).label("errors"),
            func.sum(func.coalesce(c.prompt_tokens, 0)).label("prompt"),
            func.sum(func.coalesce(c.completion_tokens, 0)).label("completion"),
            func.sum(case((c.cost_known.is_(True), func.coalesce(c.cost_nusd, 0)), else_=0)).label(
                "cost"
            ),
            func.sum(case((c.cost_known.is_(True), 0), else_=1)).label("unpriced"),
            func.sum(c.latency_ms).label("latency_sum"),
        )
        .where(
            c.org_id == org_id,
            c.user_id == user_id,
            c.created_at >= since_ms,
            c.created_at < until_ms,
            c.kind == "llm",
        )
        .group_by(c.model, bucket)
    )
    out: dict[str | None, Stats] = {}
    with engine.connect() as conn:
        for r in conn.execute(query):
            stats = out.setdefault(r.model, Stats())
            n = int(r.n)
            stats.requests += n
            stats.errors += int(r.errors or 0)
            stats.prompt_tokens += int(r.prompt or 0)
            stats.completion_tokens += int(r.completion or 0)
            stats.cost_nusd += int(r.cost or 0)
            stats.unpriced += int(r.unpriced or 0)
            if r.bucket >= 0:
                stats.latency_sum += float(r.latency_sum or 0.0)
                stats.latency_n += n
                stats.latency_hist[int(r.bucket)] += n
    return out
