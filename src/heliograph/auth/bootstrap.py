"""First start: a default organization with an admin key and a write key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from heliograph.auth.keys import create_key
from heliograph.store import orgs


@dataclass(frozen=True)
class Bootstrap:
    org_id: str
    admin_key: str
    write_key: str


def bootstrap(engine: Engine) -> Bootstrap | None:
    """Create the default organization and its first keys, unless an organization exists."""
    if orgs.count_orgs(engine):
        return None
    org_id = orgs.create_org(engine, "default")
    _, admin_key = create_key(engine, org_id=org_id, name="admin (first start)", scope="admin")
    _, write_key = create_key(engine, org_id=org_id, name="write (first start)", scope="write")
    return Bootstrap(org_id, admin_key, write_key)
