"""Retention in the job process: a pass every ``retention_interval_s``.

Several job processes (replicas) may tick at once. The pass is guarded by a lease in the
store (``retention_leases``): the process that takes it runs the pass and renews it between
batches; the others skip their tick. If the holder dies its lease runs out and the next tick
elsewhere takes over. Even without the lease two passes would be safe, only wasteful: every
batch deletes by id in its own transaction, so the second finds the rows gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from heliograph.retention.run import Pass, reclaim, summary
from heliograph.store import partitions
from heliograph.store import retention as store

log = logging.getLogger("heliograph.retention")

LEASE = "retention"
LEASE_MS = 120_000
TICK_S = 5.0  # how often a job process looks whether a pass is due (one cheap read)
PARTITIONS_TICK_S = 3600.0  # partitions are made two months ahead: hourly is plenty


def run_once(context: Any, stop: asyncio.Event | None = None) -> int:
    """One leased pass (in a worker thread); answers the records deleted, or -1 when another
    process holds the lease."""
    engine, owner = context.engine, context.owner
    if not store.take_lease(engine, LEASE, owner, LEASE_MS):
        return -1

    def keep_going() -> bool:  # renewing between batches; a lost lease stops the pass
        if stop is not None and stop.is_set():
            return False
        return store.take_lease(engine, LEASE, owner, LEASE_MS)

    try:
        results = Pass(engine, context.settings, keep_going=keep_going).run()
        records = sum(r.records for r in results)
        if any(r.deleted.rows for r in results):
            log.info("retention: %s", "; ".join(summary(r) for r in results if r.deleted.rows))
            reclaim(engine)
        return records
    finally:
        store.end_lease(engine, LEASE, owner)


def is_due(context: Any) -> bool:
    """Whether ``retention_interval_s`` has passed since the last pass of any process (the
    time is kept in the store, so a restart or a second replica does not run one early)."""
    last = store.last_run(context.engine, LEASE)
    interval_ms = context.settings.retention_interval_s * 1000
    return last is None or store.now_ms() - last >= interval_ms


async def retention_tick(context: Any) -> None:
    """``context`` is a ``jobs.runner.JobContext``."""
    if await asyncio.to_thread(is_due, context):
        await asyncio.to_thread(run_once, context)


def maintain_partitions(context: Any) -> None:
    """PostgreSQL: this month's and the next two months' partitions, and a partition for
    every month with rows in the default one (``store.partitions.maintain``)."""
    made = partitions.maintain(context.engine, store.now_ms())
    if made.created:
        log.info("partitions made: %s (%d rows moved)", ", ".join(made.created), made.moved)
    if made.skipped:
        log.warning("partitions not made (lock busy, next tick): %s", ", ".join(made.skipped))


async def partitions_tick(context: Any) -> None:
    await asyncio.to_thread(maintain_partitions, context)


def register(registry: Any) -> None:
    """Add the ticks to the job process (``jobs.kinds.register_all``)."""
    registry.run_periodic("retention", retention_tick, TICK_S)
    registry.run_periodic("partitions", partitions_tick, PARTITIONS_TICK_S)
