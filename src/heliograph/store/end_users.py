"""The end-user directory: the name, email, role and groups behind each user id.

Records carry a user id (and, from Open WebUI, what it said of that user at the time); pages
and group figures need the *current* name and groups of each user, so the writer keeps one
row per (organization, user), latest values winning, from records whose identity we trust
(a verified token or Open WebUI's plain headers; never unverified claims).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, select

from heliograph.store.schema import end_users

if TYPE_CHECKING:
    from heliograph.capture.people import Person

COLUMNS = (
    "org_id",
    "user_id",
    "name",
    "email",
    "role",
    "groups",
    "group_ids",
    "identity",
    "first_seen",
    "last_seen",
)
MAX_LOOKUP = 500


def people_rows(people: Iterable[Person | None]) -> list[tuple[Any, ...]]:
    """One upsert row per (org, user) of a batch, the latest record's values (JSON as text)."""
    latest: dict[tuple[str, str], Person] = {}
    first: dict[tuple[str, str], int] = {}
    for p in people:
        if p is None:
            continue
        key = (p.org_id, p.user_id)
        first[key] = min(first.get(key, p.seen_ms), p.seen_ms)
        if key not in latest or p.seen_ms >= latest[key].seen_ms:
            latest[key] = p
    return [
        (
            p.org_id,
            p.user_id,
            p.name,
            p.email,
            p.role,
            None if p.groups is None else orjson.dumps(p.groups).decode(),
            None if p.group_ids is None else orjson.dumps(p.group_ids).decode(),
            p.identity,
            first[key],
            p.seen_ms,
        )
        for key, p in latest.items()
    ]


@functools.cache
def _upsert_sql(dialect: str) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    low, high = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
    newer = 'excluded."last_seen" >= "end_users"."last_seen"'
    updates = [
        f'"{c}" = CASE WHEN {newer} THEN COALESCE(excluded."{c}", "end_users"."{c}") '
        f'ELSE COALESCE("end_users"."{c}", excluded."{c}") END'
        for c in ("name", "email", "role", "groups", "group_ids", "identity")
    ]
    updates += [
        f'"first_seen" = {low}("end_users"."first_seen", excluded."first_seen")',
        f'"last_seen" = {high}("end_users"."last_seen", excluded."last_seen")',
    ]
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    marks = ", ".join([mark] * len(COLUMNS))
    return (
        f'INSERT INTO "end_users" ({columns}) VALUES ({marks})'  # noqa: S608
        f' ON CONFLICT ("org_id", "user_id") DO UPDATE SET {", ".join(updates)}'
    )


def upsert(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge directory rows (from :func:`people_rows`) inside the caller's transaction."""
    # JSON columns get their text: the server casts it (PostgreSQL) or keeps it (SQLite)
    conn.exec_driver_sql(_upsert_sql(conn.dialect.name), list(rows))


def lookup(
    engine: Engine, org_id: str, user_ids: Iterable[str | None]
) -> dict[str, dict[str, Any]]:
    """The directory entries of these users (those it has), by user id."""
    wanted = sorted({u for u in user_ids if u})[:MAX_LOOKUP]
    if not wanted:
        return {}
    query = select(end_users).where(end_users.c.org_id == org_id, end_users.c.user_id.in_(wanted))
    with engine.connect() as conn:
        return {row.user_id: dict(row._mapping) for row in conn.execute(query)}


def get(engine: Engine, org_id: str, user_id: str) -> dict[str, Any] | None:
    """One user's directory entry, if any."""
    return lookup(engine, org_id, [user_id]).get(user_id)


def group_members(engine: Engine, org_id: str) -> dict[str, list[str]]:
    """Each group's current members (user ids), from the users' latest groups."""
    query = select(end_users.c.user_id, end_users.c.groups).where(
        end_users.c.org_id == org_id, end_users.c.groups.is_not(None)
    )
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for user_id, groups in conn.execute(query):
            for name in groups or ():
                out.setdefault(str(name), []).append(user_id)
    return out
