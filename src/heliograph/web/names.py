"""Who a user id is, as the dashboard shows it: "Name <email>" from the end-user directory.

Records name users by id; Open WebUI also says who they are, and the directory
(``store.end_users``) keeps each user's latest name, email, role and groups from records whose
identity can be trusted. A page looks all its users up at once (one query, never one per
row) and shows ``label``; an id the directory does not know is shown as itself. Labels are
plain text, escaped by the templates like any stored text. Links always use the id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from heliograph.store import end_users
from heliograph.store.filters import holds_nul

People = dict[str, dict[str, Any]]
# How a record's or a user's identity came: badge text, CSS class, what it means.
IDENTITY = {
    "jwt": ("verified", "ok", "Named by Open WebUI's signed token, checked with the shared secret"),
    "headers": (
        "from headers",
        "",
        "Named by Open WebUI's plain headers: anyone holding a write key could send them",
    ),
    "unverified": (
        "unverified",
        "warn",
        "Claims from an Open WebUI token that was not verified: they may be false",
    ),
}


def lookup(engine: Engine, org_id: str, user_ids: Iterable[str | None]) -> People:
    """The directory entries of these users, in one query (an id with a NUL, which no stored
    text holds, is nobody: PostgreSQL would refuse it)."""
    return end_users.lookup(engine, org_id, [u for u in user_ids if u and not holds_nul(u)])


def label(user_id: str | None, people: People | None = None) -> str:
    """``Name <email>``, the name or the email alone, or the id when the directory has none."""
    if not user_id:
        return ""
    entry = (people or {}).get(user_id)
    if entry is None:
        return user_id
    return person_text(entry.get("name"), entry.get("email")) or user_id


def person_text(name: str | None, email: str | None) -> str:
    """``Name <email>`` from whichever of the two is known ("" when neither)."""
    name, email = (name or "").strip(), (email or "").strip()
    if name and email:
        return f"{name} <{email}>"
    return name or email


def identity(kind: str | None) -> dict[str, str] | None:
    """The badge of an identity source (jwt, headers, unverified), or None."""
    if kind not in IDENTITY:
        return None
    text, css, title = IDENTITY[kind]
    return {"text": text, "css": css, "title": title}
