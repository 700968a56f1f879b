"""Alert rules and notification channels of an organization: their rows, and the history.

Definitions are checked by ``alerts.definitions`` before they get here. A rule names its
channels by id; deleting a channel takes it off every rule. Rows synced from ``config.toml``
are marked ``source = "config"`` (the sync replaces them by name at each start). The state
machine and the notification outbox are ``store.alert_state``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from heliograph.store.filters import holds_nul
from heliograph.store.schema_ops import alert_channels, alert_events, alert_rules

EVENTS_PAGE = 100


class DuplicateName(Exception):
    """Another rule (or channel) of the organization already has this name."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _bad_id(value: str) -> bool:
    return holds_nul(value) or len(value) > 36


# ---- channels -----------------------------------------------------------------------------


def create_channel(
    engine: Engine, org_id: str, channel: dict[str, Any], source: str = "api"
) -> dict[str, Any]:
    now, channel_id = now_ms(), str(uuid.uuid4())
    row = {"id": channel_id, "org_id": org_id, "source": source, "created_at": now}
    try:
        with engine.begin() as conn:
            conn.execute(insert(alert_channels).values(**row, **channel, updated_at=now))
    except IntegrityError as exc:
        raise DuplicateName(channel["name"]) from exc
    got = get_channel(engine, org_id, channel_id)
    assert got is not None
    return got


def list_channels(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    query = (
        select(alert_channels)
        .where(alert_channels.c.org_id == org_id)
        .order_by(alert_channels.c.name)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_channel(engine: Engine, org_id: str, channel_id: str) -> dict[str, Any] | None:
    if _bad_id(channel_id):
        return None
    query = select(alert_channels).where(
        alert_channels.c.org_id == org_id, alert_channels.c.id == channel_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def update_channel(
    engine: Engine, org_id: str, channel_id: str, channel: dict[str, Any]
) -> dict[str, Any] | None:
    where = (alert_channels.c.org_id == org_id, alert_channels.c.id == channel_id)
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(alert_channels).where(*where).values(**channel, updated_at=now_ms())
            )
    except IntegrityError as exc:
        raise DuplicateName(channel["name"]) from exc
    return get_channel(engine, org_id, channel_id) if done.rowcount else None


def delete_channel(engine: Engine, org_id: str, channel_id: str) -> bool:
    """Remove a channel, and take it off the rules that named it."""
    if _bad_id(channel_id):
        return False
    with engine.begin() as conn:
        gone = conn.execute(
            delete(alert_channels).where(
                alert_channels.c.org_id == org_id, alert_channels.c.id == channel_id
            )
        ).rowcount
        if gone:
            _drop_channel_from_rules(conn, org_id, channel_id)
    return bool(gone)


def _drop_channel_from_rules(conn: Connection, org_id: str, channel_id: str) -> None:
    query = select(alert_rules.c.id, alert_rules.c.channels).where(alert_rules.c.org_id == org_id)
    for rule_id, channels in conn.execute(query).all():
        if channel_id in (channels or []):
            kept = [c for c in channels if c != channel_id]
            conn.execute(
                update(alert_rules).where(alert_rules.c.id == rule_id).values(channels=kept)
            )


def channel_refs(engine: Engine, org_id: str) -> dict[str, str]:
    """Name or id -> id of every channel of the organization (what a rule may name)."""
    refs: dict[str, str] = {}
    for channel in list_channels(engine, org_id):
        refs[channel["name"]] = channel["id"]
        refs[channel["id"]] = channel["id"]
    return refs


# ---- rules ---------------------------------------------------------------------------------


def create_rule(
    engine: Engine, org_id: str, rule: dict[str, Any], created_by: str | None, source: str = "api"
) -> dict[str, Any]:
    now, rule_id = now_ms(), str(uuid.uuid4())
    row = {
        "id": rule_id,
        "org_id": org_id,
        "source": source,
        "state": "ok",
        "state_since": now,
        "version": 0,
        "created_at": now,
        "created_by": created_by,
        "updated_at": now,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(alert_rules).values(**row, **rule))
    except IntegrityError as exc:
        raise DuplicateName(rule["name"]) from exc
    got = get_rule(engine, org_id, rule_id)
    assert got is not None
    return got


def list_rules(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    query = select(alert_rules).where(alert_rules.c.org_id == org_id).order_by(alert_rules.c.name)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_rule(engine: Engine, org_id: str, rule_id: str) -> dict[str, Any] | None:
    if _bad_id(rule_id):
        return None
    query = select(alert_rules).where(alert_rules.c.org_id == org_id, alert_rules.c.id == rule_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def update_rule(
    engine: Engine, org_id: str, rule_id: str, rule: dict[str, Any]
) -> dict[str, Any] | None:
    """Replace a rule's definition; its state stays (the next evaluation re-judges it)."""
    where = (alert_rules.c.org_id == org_id, alert_rules.c.id == rule_id)
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(alert_rules).where(*where).values(**rule, updated_at=now_ms())
            )
    except IntegrityError as exc:
        raise DuplicateName(rule["name"]) from exc
    return get_rule(engine, org_id, rule_id) if done.rowcount else None


def delete_rule(engine: Engine, org_id: str, rule_id: str) -> bool:
    """Remove a rule; its events stay in the history (they carry the rule's name)."""
    if _bad_id(rule_id):
        return False
    with engine.begin() as conn:
        gone = conn.execute(
            delete(alert_rules).where(alert_rules.c.org_id == org_id, alert_rules.c.id == rule_id)
        ).rowcount
    return bool(gone)


def enabled_rules(engine: Engine) -> list[dict[str, Any]]:
    """Every enabled rule of every organization (an evaluation's round)."""
    query = select(alert_rules).where(alert_rules.c.enabled.is_(True)).order_by(alert_rules.c.id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# ---- history -------------------------------------------------------------------------------


def list_events(
    engine: Engine,
    org_id: str,
    *,
    rule_id: str | None = None,
    before_ms: int | None = None,
    limit: int = EVENTS_PAGE,
) -> list[dict[str, Any]]:
    """Newest first; ``before_ms`` pages back."""
    query = select(alert_events).where(alert_events.c.org_id == org_id)
    if rule_id is not None:
        if _bad_id(rule_id):
            return []
        query = query.where(alert_events.c.rule_id == rule_id)
    if before_ms is not None:
        query = query.where(alert_events.c.at < before_ms)
    query = query.order_by(alert_events.c.at.desc(), alert_events.c.id).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# ---- config.toml ---------------------------------------------------------------------------


def sync_config(
    engine: Engine,
    org_id: str,
    channels: list[dict[str, Any]],
    rules: list[tuple[dict[str, Any], list[str]]],
) -> None:
    """Make the organization's config rows exactly ``channels`` and ``rules`` (checked; a
    rule with its channel *names*), by name: a row that is in the file is created or updated
    (a rule keeps its state), one no longer in the file is deleted. Rows made through the API
    or the dashboard are left alone; a config row never replaces one of theirs."""
    now = now_ms()
    with engine.begin() as conn:
        ids = _sync_channels(conn, org_id, channels, now)
        existing = {
            r.name: r
            for r in conn.execute(
                select(alert_rules.c.id, alert_rules.c.name, alert_rules.c.source).where(
                    alert_rules.c.org_id == org_id
                )
            )
        }
        wanted = set()
        for rule, names in rules:
            rule = {**rule, "channels": [ids[n] for n in names if n in ids]}
            wanted.add(rule["name"])
            found = existing.get(rule["name"])
            if found is None:
                conn.execute(
                    insert(alert_rules).values(
                        id=str(uuid.uuid4()),
                        org_id=org_id,
                        source="config",
                        state="ok",
                        state_since=now,
                        version=0,
                        created_at=now,
                        created_by="config",
                        updated_at=now,
                        **rule,
                    )
                )
            elif found.source == "config":
                conn.execute(
                    update(alert_rules)
                    .where(alert_rules.c.id == found.id)
                    .values(**rule, updated_at=now)
                )
        for name, found in existing.items():
            if found.source == "config" and name not in wanted:
                conn.execute(delete(alert_rules).where(alert_rules.c.id == found.id))


def _sync_channels(
    conn: Connection, org_id: str, channels: list[dict[str, Any]], now: int
) -> dict[str, str]:
    rows = conn.execute(
        select(alert_channels.c.id, alert_channels.c.name, alert_channels.c.source).where(
            alert_channels.c.org_id == org_id
        )
    ).all()
    existing = {r.name: r for r in rows}
    ids = {r.name: r.id for r in rows}
    for channel in channels:
        found = existing.get(channel["name"])
        if found is None:
            channel_id = str(uuid.uuid4())
            conn.execute(
                insert(alert_channels).values(
                    id=channel_id,
                    org_id=org_id,
                    source="config",
                    created_at=now,
                    updated_at=now,
                    **channel,
                )
            )
            ids[channel["name"]] = channel_id
        elif found.source == "config":
            conn.execute(
                update(alert_channels)
                .where(alert_channels.c.id == found.id)
                .values(**channel, updated_at=now)
            )
    wanted = {c["name"] for c in channels}
    for name, found in existing.items():
        if found.source == "config" and name not in wanted:
            conn.execute(delete(alert_channels).where(alert_channels.c.id == found.id))
            _drop_channel_from_rules(conn, org_id, found.id)
            ids.pop(name, None)
    return ids
