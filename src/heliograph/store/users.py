"""Queries on dashboard users and their login sessions (only token hashes are stored)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from heliograph.store.schema import organizations, users, web_sessions

USER_COLUMNS = (
    users.c.id,
    users.c.org_id,
    users.c.email,
    users.c.role,
    users.c.created_at,
    users.c.disabled_at,
    users.c.last_login_at,
)


def now_ms() -> int:
    return int(time.time() * 1000)


def insert_user(engine: Engine, *, org_id: str, email: str, role: str, password_hash: str) -> str:
    user_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(users).values(
                id=user_id,
                org_id=org_id,
                email=email,
                role=role,
                password_hash=password_hash,
                created_at=now_ms(),
            )
        )
    return user_id


def count_users(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def find_by_email(engine: Engine, email: str) -> dict[str, Any] | None:
    """The user (with its password hash) or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(*USER_COLUMNS, users.c.password_hash).where(users.c.email == email)
        ).first()
    return dict(row._mapping) if row else None


def get_user(engine: Engine, user_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def list_users(engine: Engine, org_id: str | None = None) -> list[dict[str, Any]]:
    query = (
        select(*USER_COLUMNS, organizations.c.name.label("org_name"))
        .select_from(users.join(organizations, organizations.c.id == users.c.org_id))
        .order_by(users.c.created_at, users.c.email)
    )
    if org_id is not None:
        query = query.where(users.c.org_id == org_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def update_password(engine: Engine, user_id: str, password_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def disable_user(engine: Engine, user_id: str) -> bool:
    """Disable an account and end all its sessions; False when it was not active."""
    with engine.begin() as conn:
        done = conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.disabled_at.is_(None))
            .values(disabled_at=now_ms())
        ).rowcount
        conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
    return bool(done)


def touch_login(engine: Engine, user_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now_ms()))


def insert_session(
    engine: Engine, *, token_hash: str, user_id: str, csrf_token: str, max_age_ms: int
) -> None:
    now = now_ms()
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
        conn.execute(
            insert(web_sessions).values(
                token_hash=token_hash,
                user_id=user_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=now + max_age_ms,
            )
        )


def session_user(engine: Engine, token_hash: str) -> dict[str, Any] | None:
    """The live session's user (active, not expired) with the session's CSRF token."""
    query = (
        select(*USER_COLUMNS, users.c.password_hash, web_sessions.c.csrf_token)
        .select_from(web_sessions.join(users, users.c.id == web_sessions.c.user_id))
        .where(
            web_sessions.c.token_hash == token_hash,
            web_sessions.c.expires_at > now_ms(),
            users.c.disabled_at.is_(None),
        )
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def delete_session(engine: Engine, token_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))


def delete_other_sessions(engine: Engine, user_id: str, keep_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(web_sessions).where(
                web_sessions.c.user_id == user_id, web_sessions.c.token_hash != keep_hash
            )
        )
