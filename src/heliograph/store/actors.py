"""Who changed something, as stored (``user:<id>`` or ``key:<id>``), named for people.

Prompt versions and label moves record their author as ``user:<id>`` (a dashboard account)
or ``key:<id>`` (an API key). Pages show the account's email and the key's name instead; a
page looks all its authors up at once, two queries at most, never one per row. Only this
organization's users and keys are named: an id from elsewhere stays as stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select

from heliograph.store.filters import holds_nul
from heliograph.store.schema import api_keys, users


def names(engine: Engine, org_id: str, refs: Iterable[str | None]) -> dict[str, str]:
    """``{ref: "email" or "key <name>"}`` for the refs that name a known user or key."""
    wanted: dict[str, set[str]] = {"user": set(), "key": set()}
    for ref in refs:
        kind, _, ident = (ref or "").partition(":")
        if kind in wanted and ident and not holds_nul(ident):
            wanted[kind].add(ident)
    out: dict[str, str] = {}
    with engine.connect() as conn:
        if wanted["user"]:
            query = select(users.c.id, users.c.email).where(
                users.c.org_id == org_id, users.c.id.in_(sorted(wanted["user"]))
            )
            out |= {f"user:{uid}": email for uid, email in conn.execute(query)}
        if wanted["key"]:
            query = select(api_keys.c.id, api_keys.c.name).where(
                api_keys.c.org_id == org_id, api_keys.c.id.in_(sorted(wanted["key"]))
            )
            out |= {f"key:{kid}": f"key {name}" for kid, name in conn.execute(query)}
    return out
