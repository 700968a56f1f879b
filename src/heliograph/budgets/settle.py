"""Settling budgets in the writer: a stored record's real usage replaces its reservation.

With the store as the ledger, settlements are written in the same transaction that inserts
the records, so each record is settled exactly once, even when the writer is killed and its
spool replayed (a replayed record is not new, so it is not settled again). With Redis they are
sent right after the commit, retried a few times; one that still fails is logged, and its
reservation expires on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection

from heliograph.budgets.ledger import RedisLedger
from heliograph.capture.record import RecordRows
from heliograph.store import budgets as budget_store
from heliograph.store.budgets import Settlement

log = logging.getLogger(__name__)
REDIS_TRIES = 3


class Pending(NamedTuple):
    request_id: str
    settlement: Settlement


def settlements_of(rec: RecordRows) -> list[Pending]:
    """What one record settles: per budget, its estimate out and its real usage in."""
    if not rec.budgets:
        return []
    row = rec.request
    out = []
    for entry in rec.budgets:
        try:
            budget_id, hold_id, wk, estimate, unit, bucket = entry
            actual = _actual(row, unit, int(estimate))
            item = Settlement(str(budget_id), hold_id, int(wk), int(estimate), int(bucket), actual)
        except (TypeError, ValueError):
            continue  # a malformed entry settles nothing; its reservation expires
        out.append(Pending(row["id"], item))
    return out


def _actual(row: dict[str, Any], unit: str, estimate: int) -> int:
    if unit == "requests":
        return 1
    if unit == "tokens":
        total = row.get("total_tokens")
        if total is None:
            parts = (row.get("prompt_tokens"), row.get("completion_tokens"))
            total = sum(p or 0 for p in parts) if any(p is not None for p in parts) else None
        return estimate if total is None else int(total)
    if row.get("cost_known"):
        return int(row.get("cost_nusd") or 0)
    return estimate  # no price after all: the reservation is the best count there is


class BudgetSettler:
    def __init__(self, redis_url: str | None) -> None:
        self.redis = RedisLedger(redis_url) if redis_url else None

    def in_transaction(self, conn: Connection, items: Sequence[Settlement]) -> None:
        if self.redis is None and items:
            budget_store.settle_with(conn, items)

    def after_commit(self, items: Sequence[Settlement]) -> None:
        if self.redis is None or not items:
            return
        for attempt in range(REDIS_TRIES):
            try:
                self.redis.settle(items)
                return
            except Exception as exc:
                if attempt == REDIS_TRIES - 1:
                    log.warning("could not settle %d budget usages in Redis: %s", len(items), exc)
                else:
                    time.sleep(0.2 * (attempt + 1))
