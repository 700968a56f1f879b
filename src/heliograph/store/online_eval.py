"""Online evaluation rules: their rows, scoped to an organization, and what each has done.

A rule copies its evaluator spec and keeps its filter as the Requests page's URL parameters
(``{"model": "gpt-4o", "property.team": "red"}``), both checked by the caller before they get
here (``evals.online.check_rule``), so this module stores and reads them as they are.

A rule evaluates traffic from the moment it is created, and from the moment it is enabled
again after a pause: its ``cursor`` (the last record the sampler considered, as
``<created_at ms>:<request id>``) starts there, so turning a rule on never replays months of
history through a judge. Sampling and scoring are ``store.eval_queue``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from heliograph.store.filters import holds_nul
from heliograph.store.schema import eval_queue, online_eval_rules

RULE_COLUMNS = (
    online_eval_rules.c.id,
    online_eval_rules.c.name,
    online_eval_rules.c.evaluator,
    online_eval_rules.c["filter"],
    online_eval_rules.c.sample_rate,
    online_eval_rules.c.enabled,
    online_eval_rules.c.cursor,
    online_eval_rules.c.created_at,
    online_eval_rules.c.created_by,
    online_eval_rules.c.updated_at,
    online_eval_rules.c.last_run_at,
)
STATUSES = ("pending", "done", "error")
RECENT_ERRORS = 5
EDITABLE = ("name", "evaluator", "filter", "sample_rate", "enabled")


class DuplicateName(Exception):
    """Another rule of the organization already has this name."""


def now_ms() -> int:
    return int(time.time() * 1000)


def start_cursor(at_ms: int) -> str:
    """The cursor of a rule that starts looking at records created from ``at_ms`` on."""
    return f"{at_ms}:"


def split_cursor(cursor: str | None) -> tuple[int, str]:
    """``(created_at, id)`` of a stored cursor; a missing one means the epoch."""
    if not cursor:
        return 0, ""
    at, _, rid = cursor.partition(":")
    return int(at), rid


def create_rule(
    engine: Engine,
    org_id: str,
    *,
    name: str,
    evaluator: dict[str, Any],
    filter_params: dict[str, str],
    sample_rate: float,
    enabled: bool,
    created_by: str | None,
) -> dict[str, Any]:
    """A new rule; raises DuplicateName when the organization has one with ``name``."""
    now = now_ms()
    rule_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        "id": rule_id,
        "org_id": org_id,
        "name": name,
        "evaluator": evaluator,
        "filter": filter_params,
        "sample_rate": sample_rate,
        "enabled": enabled,
        "cursor": start_cursor(now),
        "created_at": now,
        "created_by": created_by,
        "updated_at": now,
    }
    with engine.begin() as conn:
        if _name_taken(conn, org_id, name, None):
            raise DuplicateName(name)
        conn.execute(insert(online_eval_rules).values(row))
    got = get_rule(engine, org_id, rule_id)
    assert got is not None
    return got


def list_rules(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    query = (
        select(*RULE_COLUMNS)
        .where(online_eval_rules.c.org_id == org_id)
        .order_by(online_eval_rules.c.name, online_eval_rules.c.id)
    )
    with engine.connect() as conn:
        return [_rule(r._mapping) for r in conn.execute(query)]


def get_rule(engine: Engine, org_id: str, rule_id: str) -> dict[str, Any] | None:
    if holds_nul(rule_id):
        return None
    query = select(*RULE_COLUMNS).where(
        online_eval_rules.c.org_id == org_id, online_eval_rules.c.id == rule_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _rule(row._mapping)


def update_rule(
    engine: Engine, org_id: str, rule_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    """Apply ``changes`` (keys among EDITABLE; ``filter`` as parameters); None if no such
    rule. Enabling a paused rule moves its cursor to now: the pause is not evaluated later."""
    if holds_nul(rule_id):
        return None
    values = {k: v for k, v in changes.items() if k in EDITABLE}
    now = now_ms()
    with engine.begin() as conn:
        where = (online_eval_rules.c.org_id == org_id, online_eval_rules.c.id == rule_id)
        current = conn.execute(select(online_eval_rules.c.enabled).where(*where)).first()
        if current is None:
            return None
        if "name" in values and _name_taken(conn, org_id, values["name"], rule_id):
            raise DuplicateName(values["name"])
        if values.get("enabled") is True and not current.enabled:
            values["cursor"] = start_cursor(now)
        conn.execute(update(online_eval_rules).where(*where).values(**values, updated_at=now))
    return get_rule(engine, org_id, rule_id)


def delete_rule(engine: Engine, org_id: str, rule_id: str) -> bool:
    """Remove a rule and its queue; the scores it stored on records stay."""
    if holds_nul(rule_id):
        return False
    with engine.begin() as conn:
        gone = conn.execute(
            delete(online_eval_rules).where(
                online_eval_rules.c.org_id == org_id, online_eval_rules.c.id == rule_id
            )
        )
        if not gone.rowcount:
            return False
        conn.execute(delete(eval_queue).where(eval_queue.c.rule_id == rule_id))
    return True


def rule_status(engine: Engine, org_id: str, rule_id: str) -> dict[str, Any] | None:
    """Queue counts by status, when the sampler last ran, how far it has read, and the most
    recent errors (request id and message); None if no such rule."""
    rule = get_rule(engine, org_id, rule_id)
    if rule is None:
        return None
    counts = (
        select(eval_queue.c.status, func.count())
        .where(eval_queue.c.rule_id == rule_id)
        .group_by(eval_queue.c.status)
    )
    errors = (
        select(eval_queue.c.request_id, eval_queue.c.error, eval_queue.c.done_at)
        .where(eval_queue.c.rule_id == rule_id, eval_queue.c.status == "error")
        .order_by(eval_queue.c.done_at.desc())
        .limit(RECENT_ERRORS)
    )
    with engine.connect() as conn:
        found = {str(s): int(n) for s, n in conn.execute(counts)}
        recent = [dict(r._mapping) for r in conn.execute(errors)]
    read_to, _ = split_cursor(rule["cursor"])
    return {
        "rule_id": rule_id,
        "enabled": rule["enabled"],
        "queued": found.get("pending", 0),
        "done": found.get("done", 0),
        "errors": found.get("error", 0),
        "last_run_at": rule["last_run_at"],
        "read_to": read_to,
        "recent_errors": recent,
    }


def status_counts(engine: Engine, org_id: str) -> dict[str, dict[str, int]]:
    """``{rule_id: {status: count}}`` for every rule of the organization (the settings page)."""
    query = (
        select(eval_queue.c.rule_id, eval_queue.c.status, func.count())
        .where(eval_queue.c.org_id == org_id)
        .group_by(eval_queue.c.rule_id, eval_queue.c.status)
    )
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for rule_id, status, n in conn.execute(query):
            out.setdefault(str(rule_id), {})[str(status)] = int(n)
    return out


def _name_taken(conn: Any, org_id: str, name: str, other_than: str | None) -> bool:
    query = select(online_eval_rules.c.id).where(
        online_eval_rules.c.org_id == org_id, online_eval_rules.c.name == name
    )
    if other_than is not None:
        query = query.where(online_eval_rules.c.id != other_than)
    return conn.execute(query.limit(1)).first() is not None


def _rule(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["enabled"] = bool(out["enabled"])
    out["sample_rate"] = float(out["sample_rate"])
    return out
