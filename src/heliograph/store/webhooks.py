"""Record webhook endpoints: their rows, scoped to an organization, and the writer's outbox.

Endpoints are checked before they get here (``alerts.webhook_specs``). Those from config.toml
(``source = "config"``) are synced at start by name and cannot be changed through the API or
the dashboard: the file is their source of truth. Delivery (fan-out, leases, the log) is
``store.webhook_queue``.

The writer calls ``add_to_outbox`` inside the transaction that inserts a batch, with the new
records' (id, org) pairs and the organizations that have an enabled endpoint (``enabled_orgs``,
which it caches): one multi-row INSERT per batch, nothing per record, and nothing at all for an
organization without webhooks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from heliograph.store.schema_ops import webhook_deliveries, webhook_endpoints, webhook_outbox

log = logging.getLogger("heliograph.webhooks")
EDITABLE = ("name", "url", "filter", "secret", "enabled", "include_bodies")
PUBLIC = tuple(c for c in webhook_endpoints.c if c.name != "secret")


class DuplicateName(Exception):
    """Another endpoint of the organization already has this name."""


class FromConfig(Exception):
    """The endpoint is kept in config.toml; change it there."""


def now_ms() -> int:
    return int(time.time() * 1000)


def enabled_orgs(conn: Connection) -> frozenset[str]:
    """Organizations with at least one enabled endpoint. The writer asks in each batch's
    transaction: one small indexed query per batch (not per record), and an endpoint gets
    every record stored after it was created (a cached answer lost those of its first
    seconds)."""
    query = select(webhook_endpoints.c.org_id).where(webhook_endpoints.c.enabled.is_(True))
    return frozenset(conn.execute(query.distinct()).scalars())


def add_to_outbox(
    conn: Connection, records: Iterable[tuple[str, str]], orgs: frozenset[str]
) -> int:
    """Queue the new records ``(id, org_id)`` of organizations in ``orgs``, in the caller's
    transaction (the one that inserted them); returns how many."""
    if not orgs:
        return 0
    now = now_ms()
    rows = [{"request_id": r, "org_id": o, "created_at": now} for r, o in records if o in orgs]
    if rows:  # a record is new once, but a conflict must never fail the writer's batch
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(webhook_outbox).on_conflict_do_nothing(), rows)
    return len(rows)


def _name_taken(conn: Connection, org_id: str, name: str, other_than: str | None) -> bool:
    query = select(webhook_endpoints.c.id).where(
        webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.name == name
    )
    if other_than is not None:
        query = query.where(webhook_endpoints.c.id != other_than)
    return conn.execute(query).first() is not None


def create_endpoint(
    engine: Engine, org_id: str, spec: dict[str, Any], source: str = "api"
) -> dict[str, Any]:
    """A new endpoint from a checked spec (secret included); its public row."""
    now = now_ms()
    row = {
        "id": str(uuid.uuid4()),
        "org_id": org_id,
        **{k: spec[k] for k in EDITABLE},
        "source": source,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        if _name_taken(conn, org_id, spec["name"], None):
            raise DuplicateName(spec["name"])
        conn.execute(insert(webhook_endpoints).values(row))
    found = get_endpoint(engine, org_id, row["id"])
    assert found is not None
    return found


def list_endpoints(
    engine: Engine, org_id: str, *, with_secret: bool = False
) -> list[dict[str, Any]]:
    query = (
        select(*(webhook_endpoints.c if with_secret else PUBLIC))
        .where(webhook_endpoints.c.org_id == org_id)
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_endpoint(
    engine: Engine, org_id: str, endpoint_id: str, *, with_secret: bool = False
) -> dict[str, Any] | None:
    columns = webhook_endpoints.c if with_secret else PUBLIC
    query = select(*columns).where(
        webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.id == endpoint_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def update_endpoint(
    engine: Engine, org_id: str, endpoint_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    """Apply checked ``changes``; None when absent, FromConfig for a config endpoint."""
    with engine.begin() as conn:
        source = conn.execute(
            select(webhook_endpoints.c.source).where(
                webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.id == endpoint_id
            )
        ).scalar()
        if source is None:
            return None
        if source == "config":
            raise FromConfig(endpoint_id)
        if "name" in changes and _name_taken(conn, org_id, changes["name"], endpoint_id):
            raise DuplicateName(changes["name"])
        values = {k: v for k, v in changes.items() if k in EDITABLE}
        conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(**values, updated_at=now_ms())
        )
    return get_endpoint(engine, org_id, endpoint_id)


def delete_endpoint(engine: Engine, org_id: str, endpoint_id: str) -> bool:
    """Delete an endpoint and its delivery log; False when absent, FromConfig for config."""
    with engine.begin() as conn:
        source = conn.execute(
            select(webhook_endpoints.c.source).where(
                webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.id == endpoint_id
            )
        ).scalar()
        if source is None:
            return False
        if source == "config":
            raise FromConfig(endpoint_id)
        _drop(conn, [endpoint_id])
    return True


def _drop(conn: Connection, ids: list[str]) -> None:
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id.in_(ids)))
    conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id.in_(ids)))


def sync_config(engine: Engine, org_id: str, entries: list[dict[str, Any]]) -> None:
    """Make the organization's config endpoints exactly ``entries`` (checked specs), matched
    by name: new ones created, changed ones updated, ones no longer in the file deleted. An
    API endpoint with a name the file now uses becomes the config one."""
    now = now_ms()
    wanted = {e["name"]: e for e in entries}
    with engine.begin() as conn:
        existing = {
            r.name: (r.id, r.source)
            for r in conn.execute(
                select(
                    webhook_endpoints.c.name, webhook_endpoints.c.id, webhook_endpoints.c.source
                ).where(webhook_endpoints.c.org_id == org_id)
            )
        }
        gone = [i for name, (i, src) in existing.items() if src == "config" and name not in wanted]
        if gone:
            _drop(conn, gone)
        for name, spec in wanted.items():
            values = {k: spec[k] for k in EDITABLE}
            if name in existing:
                conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == existing[name][0])
                    .values(**values, source="config", updated_at=now)
                )
            else:
                conn.execute(
                    insert(webhook_endpoints).values(
                        id=str(uuid.uuid4()),
                        org_id=org_id,
                        **values,
                        source="config",
                        created_at=now,
                        updated_at=now,
                    )
                )
