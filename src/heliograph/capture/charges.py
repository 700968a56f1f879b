"""Charging recorded cost to cents-based rate limits (``u=cents`` policies).

The gateway checks these counters before calling the upstream; only the writer knows what a
request cost, so it adds the cost here once the record is stored (once per record id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Engine

from heliograph.capture.record import RecordRows
from heliograph.gateway.features import FeatureError, parse_rate_limit
from heliograph.gateway.ratelimit import counter_key, window_of
from heliograph.store import shared as shared_store

log = logging.getLogger(__name__)


class Charge(NamedTuple):
    """What charging one record needs (small, so helper processes can send it cheaply)."""

    request_id: str
    policy: str
    org_id: str
    user_id: str | None
    properties: dict[str, str]
    created_at: int
    cost_nusd: int
    counter_key: str | None = None  # the counter the gateway checked (set since 0.1)


def charge_of(rec: RecordRows) -> Charge | None:
    """The charge of a record with a cents policy and a known cost, else None."""
    row = rec.request
    cost = row.get("cost_nusd")
    if not rec.rate_limit_policy or not cost or not row.get("cost_known"):
        return None
    return Charge(
        row["id"],
        rec.rate_limit_policy,
        row["org_id"],
        row.get("user_id"),
        row.get("properties") or {},
        row["created_at"],
        cost,
        rec.rate_limit_key,
    )


class CentsCharger:
    """Adds each new record's cost in cents to the counters of its cents policy."""

    def __init__(self, engine: Engine, redis_url: str | None = None) -> None:
        self.engine = engine
        self.redis: Any = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=2)

    def charge(self, charges: Iterable[Charge]) -> None:
        for item in charges:
            try:
                policy = parse_rate_limit(item.policy)
            except FeatureError:
                continue
            if policy.unit != "cents":
                continue
            key = item.counter_key or counter_key(
                item.org_id, policy, item.user_id, item.properties
            )
            window = window_of(item.created_at / 1000, policy.window_s)
            cents = item.cost_nusd / 1e7  # nano-USD to cents
            try:
                self._add(key, window, cents, 2 * policy.window_s + 60)
            except Exception as exc:
                log.warning("could not charge %s cents to a rate limit: %s", cents, exc)

    def _add(self, key: str, window: int, amount: float, ttl: int) -> None:
        if self.redis is not None:
            name = f"hg:rl:{key}:{window}"
            pipe = self.redis.pipeline(transaction=True)
            pipe.incrbyfloat(name, amount)
            pipe.expire(name, ttl)
            pipe.execute()
        else:
            shared_store.add_to_counter(self.engine, key, window, amount, ttl)
