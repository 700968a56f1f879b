"""Settling budgets in the writer: a stored record's real usage replaces its reservation.

With the store as the ledger, settlements are written in the same transaction that inserts
the records, so each record is settled exactly once, even when the writer is killed and its
spool replayed (a replayed record is not new, so it is not settled again). With Redis they are
sent right after the commit, each batch under a once-marker so a batch re-sent after a lost
reply counts once. While Redis is unreachable they wait in the writer (bounded, oldest dropped
past ``MAX_PENDING``) and are re-sent with backoff, without holding up the records; only a
writer killed during an outage loses what was waiting, and those reservations expire.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Container, Sequence
from typing import Any

from sqlalchemy import Connection

from heliograph.budgets.ledger import RedisLedger
from heliograph.capture.record import RecordRows
from heliograph.store import budgets as budget_store
from heliograph.store.budgets import Settlement

log = logging.getLogger(__name__)
MAX_PENDING = 200_000  # settlements waiting for Redis (about 200 bytes each)
CHUNK = 500  # settlements per script call
MAX_BACKOFF_S = 30.0


Contribution = tuple[str, str | None, int, int, int, int]
"""One record's part of a settlement: budget id, hold id, window key, bucket, estimate and
real usage."""


def settlements_of(rec: RecordRows) -> tuple[Contribution, ...]:
    """What one record settles: per budget, its estimate out and its real usage in."""
    if not rec.budgets:
        return ()
    row = rec.request
    out = []
    for entry in rec.budgets:
        try:
            budget_id, hold_id, wk, estimate, unit, bucket = entry
            estimate = int(estimate)
            actual = _actual(row, unit, estimate)
            out.append((str(budget_id), hold_id, int(wk), int(bucket), estimate, actual))
        except (TypeError, ValueError):
            continue  # a malformed entry settles nothing; its reservation expires
    return tuple(out)


Records = Sequence[tuple[str, tuple[Contribution, ...]]]
"""Each record with budgets: its id and what it settles."""


def totals(records: Records, inserted: Container[str]) -> list[Settlement]:
    """The settlements of the records stored for the first time, summed per reservation: the
    requests a slab admitted share one, so a batch settles a handful of sums, not one item
    per record and budget."""
    sums: dict[tuple[str, str | None, int, int], list[int]] = {}
    for request_id, parts in records:
        if request_id not in inserted:
            continue
        for budget_id, hold_id, wk, bucket, estimate, actual in parts:
            key = (budget_id, hold_id, wk, bucket)
            found = sums.get(key)
            if found is None:
                sums[key] = [estimate, actual]
            else:
                found[0] += estimate
                found[1] += actual
    return [
        Settlement(budget_id, hold_id, wk, estimate, bucket, actual)
        for (budget_id, hold_id, wk, bucket), (estimate, actual) in sums.items()
    ]


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
    """Settles in the store's transaction, or in Redis after the commit (see the module)."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis = RedisLedger(redis_url) if redis_url else None
        self.pending: deque[tuple[str, list[Settlement]]] = deque()  # (once-marker, chunk)
        self.waiting = 0  # settlements in ``pending``
        self.failures = 0
        self.next_try = 0.0
        self.dropped = 0

    def in_transaction(self, conn: Connection, records: Records, inserted: Container[str]) -> None:
        """With the store as the ledger: settle the newly stored ``records`` in ``conn``."""
        if self.redis is None and records and (items := totals(records, inserted)):
            budget_store.settle_with(conn, items)

    def after_commit(self, records: Records, inserted: Container[str]) -> None:
        """With Redis as the ledger: send the newly stored ``records``' settlements."""
        if self.redis is None or not records:
            return
        items = totals(records, inserted)
        for i in range(0, len(items), CHUNK):
            chunk = list(items[i : i + CHUNK])
            self.pending.append((uuid.uuid4().hex, chunk))
            self.waiting += len(chunk)
        while self.waiting > MAX_PENDING and len(self.pending) > 1:
            _, chunk = self.pending.popleft()
            self.waiting -= len(chunk)
            self.dropped += len(chunk)
            log.error(
                "budget settlements waiting for Redis passed %d: dropped the oldest %d "
                "(%d so far); their reservations expire",
                MAX_PENDING,
                len(chunk),
                self.dropped,
            )
        self.retry()

    def retry(self) -> None:
        """Send what waits, oldest first; on failure, back off (the writer calls this after
        every batch and when idle, so nothing waits for new traffic)."""
        if self.redis is None or not self.pending or time.monotonic() < self.next_try:
            return
        while self.pending:
            once, chunk = self.pending[0]
            try:
                self.redis.settle(chunk, once)
            except Exception as exc:
                self.failures += 1
                delay = min(0.2 * 2 ** min(self.failures, 8), MAX_BACKOFF_S)
                self.next_try = time.monotonic() + delay
                if self.failures == 1 or self.failures % 50 == 0:
                    log.warning(
                        "budget settlements wait for Redis (%d waiting): %s", self.waiting, exc
                    )
                return
            self.pending.popleft()
            self.waiting -= len(chunk)
        if self.failures:
            log.info("budget settlements sent to Redis again after %d failures", self.failures)
        self.failures = 0
