"""Alert rule transitions and the notification outbox.

**Transitions.** A rule's state changes with one UPDATE guarded by its ``version`` (the
version the evaluator read): the row count says whether this evaluator won. Only the winner
stores the event and queues the notifications, in the same transaction, so evaluating twice,
or in two job processes (replicas) at once, records and notifies a transition exactly once.

**Outbox.** A queued notification is a row (``pending``) until it is sent: a job process that
dies between the transition and the send leaves it there for the next one. A sender claims a
row with a guarded UPDATE (still pending, due, no live lease) that sets its lease and counts the
attempt, and ends it with another guarded on its own lease: sent, failed for good, or pending
again at a later ``next_attempt_at`` (exponential backoff). A send that completed just before
its sender died is sent again (at least once); receivers get the notification id to dedupe.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from heliograph.store.schema_ops import (
    alert_channels,
    alert_events,
    alert_notifications,
    alert_rules,
)

CANDIDATES = 50


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change the evaluator wants: stored only if the rule is still at ``version``."""

    rule: dict[str, Any]  # the row as read
    state: str  # ok firing resolved
    event_kind: str | None  # firing resolved, or None (a silent change: resolved -> ok)
    value: float | None
    count: int | None
    at: int
    notified: bool
    fired_at: int | None  # the new last_fired_at


def record_reading(
    engine: Engine, rule_id: str, value: float | None, count: int | None, at: int, error: str | None
) -> None:
    """The rule's latest figure (shown on the alerts page); not a transition."""
    with engine.begin() as conn:
        conn.execute(
            update(alert_rules)
            .where(alert_rules.c.id == rule_id)
            .values(last_value=value, last_count=count, last_evaluated_at=at, last_error=error)
        )


def transition(
    engine: Engine, change: Transition, payloads: dict[str, dict[str, Any]], event_id: str
) -> bool:
    """Apply ``change`` if the rule is still at the version read; store its event and one
    pending notification per ``payloads`` channel. False: another evaluator got there first."""
    rule = change.rule
    with engine.begin() as conn:
        won = conn.execute(
            update(alert_rules)
            .where(alert_rules.c.id == rule["id"], alert_rules.c.version == rule["version"])
            .values(
                state=change.state,
                state_since=change.at,
                version=rule["version"] + 1,
                last_value=change.value,
                last_count=change.count,
                last_evaluated_at=change.at,
                last_fired_at=change.fired_at,
                last_error=None,
            )
        ).rowcount
        if not won:
            return False
        if change.event_kind is None:
            return True
        conn.execute(
            insert(alert_events).values(
                id=event_id,
                org_id=rule["org_id"],
                rule_id=rule["id"],
                rule_name=rule["name"],
                kind=change.event_kind,
                metric=rule["metric"],
                comparison=rule["comparison"],
                threshold=rule["threshold"],
                value=change.value,
                request_count=change.count,
                notified=change.notified,
                at=change.at,
            )
        )
        if change.notified and payloads:
            conn.execute(
                insert(alert_notifications),
                [
                    {
                        "id": str(uuid.uuid4()),
                        "org_id": rule["org_id"],
                        "event_id": event_id,
                        "channel_id": channel_id,
                        "payload": payload,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": change.at,
                        "created_at": change.at,
                    }
                    for channel_id, payload in payloads.items()
                ],
            )
    return True


def claim(engine: Engine, owner: str, now: int, lease_ms: int, limit: int) -> list[dict[str, Any]]:
    """Due pending notifications this sender now holds, each with its channel row."""
    free = or_(alert_notifications.c.lease_until.is_(None), alert_notifications.c.lease_until < now)
    due = and_(
        alert_notifications.c.status == "pending",
        alert_notifications.c.next_attempt_at <= now,
        free,
    )
    query = (
        select(alert_notifications.c.id)
        .where(due)
        .order_by(alert_notifications.c.next_attempt_at)
        .limit(min(limit, CANDIDATES))
    )
    won: list[str] = []
    with engine.begin() as conn:
        for (nid,) in conn.execute(query).all():
            done = conn.execute(
                update(alert_notifications)
                .where(alert_notifications.c.id == nid, due)
                .values(
                    lease_owner=owner,
                    lease_until=now + lease_ms,
                    attempts=alert_notifications.c.attempts + 1,
                )
            ).rowcount
            if done:
                won.append(nid)
    if not won:
        return []
    joined = (
        select(
            alert_notifications,
            alert_channels.c.kind,
            alert_channels.c.name.label("channel_name"),
            alert_channels.c.config,
            alert_channels.c.secrets,
            alert_channels.c.enabled,
        )
        .select_from(
            alert_notifications.outerjoin(
                alert_channels, alert_channels.c.id == alert_notifications.c.channel_id
            )
        )
        .where(alert_notifications.c.id.in_(won))
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(joined)]


def finish(
    engine: Engine,
    notification_id: str,
    owner: str,
    now: int,
    *,
    error: str | None = None,
    retry_at: int | None = None,
) -> bool:
    """End an attempt this sender holds: sent (no error), pending again at ``retry_at``, or
    failed for good. False if the lease was lost (another sender took the row over)."""
    if error is None:
        values: dict[str, Any] = {"status": "sent", "sent_at": now, "last_error": None}
    elif retry_at is not None:
        values = {"status": "pending", "next_attempt_at": retry_at, "last_error": error[:2000]}
    else:
        values = {"status": "failed", "last_error": error[:2000]}
    with engine.begin() as conn:
        done = conn.execute(
            update(alert_notifications)
            .where(
                alert_notifications.c.id == notification_id,
                alert_notifications.c.lease_owner == owner,
                alert_notifications.c.status == "pending",
            )
            .values(**values, lease_owner=None, lease_until=None)
        ).rowcount
    return bool(done)


def deliveries(
    engine: Engine, org_id: str, event_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per event, how its notifications went (channel, status, attempts, last error)."""
    if not event_ids:
        return {}
    query = (
        select(
            alert_notifications.c.event_id,
            alert_notifications.c.channel_id,
            alert_channels.c.name.label("channel_name"),
            alert_notifications.c.status,
            alert_notifications.c.attempts,
            alert_notifications.c.last_error,
            alert_notifications.c.sent_at,
        )
        .select_from(
            alert_notifications.outerjoin(
                alert_channels, alert_channels.c.id == alert_notifications.c.channel_id
            )
        )
        .where(
            alert_notifications.c.org_id == org_id,
            alert_notifications.c.event_id.in_(event_ids),
        )
    )
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            out.setdefault(row.event_id, []).append(dict(row._mapping))
    return out
