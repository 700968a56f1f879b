"""One retention pass: for each organization, what its policy says is due goes, in batches.

Shared by the job process's periodic tick and ``heliograph retention run``. Each batch is its
own short transaction (``store.retention``); between two batches the pass sleeps a moment so
the writer, which on SQLite needs the one write lock, keeps storing records. Order per
organization: records (with everything keyed by their ids), then the bodies of the younger
records past the bodies limit, then ingested spans, finished online-evaluation queue entries,
and rollups. On SQLite the freed pages then go back to the OS when the file allows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from heliograph.config import Settings
from heliograph.retention.policy import DAY_MS, Policy, effective
from heliograph.store import orgs, partitions
from heliograph.store import retention as store
from heliograph.store.retention import Cursor, Deleted

log = logging.getLogger("heliograph.retention")

PAUSE_S = 0.02  # between batches: the writer's turn
VACUUM_STEP_PAGES = 2048  # 8 MiB of 4 KiB pages per incremental step


@dataclass
class OrgResult:
    """What one organization's pass deleted (or, dry, would delete)."""

    org_id: str
    name: str
    policy: Policy
    records: int = 0
    bodies: int = 0
    deleted: Deleted = field(default_factory=Deleted)


@dataclass
class VacuumResult:
    freed_bytes: int = 0
    note: str = ""
    advice: str = ""  # what a person should know: space kept by the file


def summary(result: OrgResult) -> str:
    """What a pass deleted for one organization, in words (logs and the CLI)."""
    rows = result.deleted.rows
    parts = [f"{n} {table}" for table, n in sorted(rows.items())] or ["nothing"]
    return f"{result.name}: " + ", ".join(parts)


def policies(engine: Engine, settings: Settings) -> list[tuple[str, str, Policy]]:
    """(org id, name, effective policy) of every organization."""
    overrides = store.list_overrides(engine)
    return [
        (str(o["id"]), str(o["name"]), effective(settings, overrides.get(str(o["id"]))))
        for o in orgs.list_orgs(engine)
    ]


def due(engine: Engine, policy: Policy, org_id: str, now_ms: int) -> tuple[int, int]:
    """(records, bodies) the policy would delete now; bodies counts those of records that go
    too (a body goes either with its record or alone)."""
    records_before = policy.cutoff_ms("records_days", now_ms)
    bodies_before = policy.cutoff_ms("bodies_days", now_ms)
    records = 0 if records_before is None else store.count_records(engine, org_id, records_before)
    limits = [c for c in (records_before, bodies_before) if c is not None]
    bodies = store.count_bodies(engine, org_id, max(limits)) if limits else 0
    return records, bodies


def whole_month_cutoffs(
    found: list[tuple[str, str, Policy]], now_ms: int
) -> tuple[int | None, int | None]:
    """Before which time every organization's records (first) and bodies (second) are due:
    a month that ends by then can go whole. None when some organization keeps them for ever
    (or there is none)."""
    records: list[int | None] = []
    bodies: list[int | None] = []
    for _, _, policy in found:
        rec = policy.cutoff_ms("records_days", now_ms)
        body = policy.cutoff_ms("bodies_days", now_ms)
        records.append(rec)
        either = [c for c in (rec, body) if c is not None]  # a body goes with its record too
        bodies.append(max(either) if either else None)

    def least(values: list[int | None]) -> int | None:
        if not values or any(v is None for v in values):
            return None
        return min(v for v in values if v is not None)

    return least(records), least(bodies)


class Pass:
    """One pass over the organizations; ``keep_going`` lets the job process stop it between
    two batches (it answers False when the process is stopping or lost its lease).

    On a partitioned store (PostgreSQL) the pass first drops whole months that every
    organization's policy has passed (``store.partitions``): the month is detached, what
    hangs off its records is deleted by id in batches, and the month's table is dropped, its
    bodies' month with it. What is left over (younger months, organizations with shorter
    limits than others) goes in batches as on SQLite.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        keep_going: Callable[[], bool] = lambda: True,
        pause_s: float = PAUSE_S,
    ) -> None:
        self.engine = engine
        self.batch = settings.retention_batch_size
        self.settings = settings
        self.keep_going = keep_going
        self.pause_s = pause_s
        self.dropped: list[str] = []  # the months dropped whole, as table names
        self.months = Deleted()  # rows that went with them, all organizations together

    def run(self, only_org: str | None = None, dry_run: bool = False) -> list[OrgResult]:
        now = store.now_ms()
        found = policies(self.engine, self.settings)
        results = {org_id: OrgResult(org_id, name, policy) for org_id, name, policy in found}
        if only_org is None and not dry_run and partitions.is_partitioned(self.engine):
            self._months(results, *whole_month_cutoffs(found, now))
        out = []
        for org_id, name, policy in found:
            if only_org is not None and only_org not in (org_id, name):
                continue
            result = results[org_id]
            if dry_run:
                result.records, result.bodies = due(self.engine, policy, org_id, now)
            else:
                self._org(result, now)
            out.append(result)
        return out

    def _months(
        self, results: dict[str, OrgResult], records: int | None, bodies: int | None
    ) -> None:
        """Drop the months every organization is done with: records (with what hangs off
        them, by id), then bodies whose records stay."""
        for table, cutoff in (("requests", records), ("request_bodies", bodies)):
            leftovers = partitions.detached(self.engine, table)  # a stopped pass's months
            due_months = [
                p
                for p in partitions.list_partitions(self.engine, table)
                if cutoff is not None and p.month.end_ms <= cutoff
            ]
            for month in [*leftovers, *due_months]:
                if not self.keep_going():
                    return
                if month not in leftovers:
                    partitions.detach(self.engine, month)
                if table == "requests" and not self._dependents(results, month):
                    return  # detached, not dropped: the next pass goes on from here
                self.months.add(table, partitions.count_rows(self.engine, month))
                partitions.drop_detached(self.engine, month)
                self.dropped.append(month.name)
                log.info("retention: dropped %s (%s)", month.name, month.month)

    def _dependents(self, results: dict[str, OrgResult], month: partitions.Partition) -> bool:
        """Delete what hangs off a detached month's records; False if told to stop first."""
        for org_id, n in partitions.org_counts(self.engine, month).items():
            if org_id in results:
                results[org_id].deleted.add("requests", n)
        after: str | None = ""
        while after is not None:
            if not self.keep_going():
                return False
            gone, after = store.delete_month_dependents(self.engine, month, after, self.batch)
            self.months.merge(gone)
            time.sleep(self.pause_s if gone.rows else 0)
        return True

    def _org(self, result: OrgResult, now: int) -> None:
        policy, org_id = result.policy, result.org_id
        records_before = policy.cutoff_ms("records_days", now)
        if records_before is not None:
            self._records(result, records_before)
            for table, step in (
                ("spans", store.delete_spans_batch),
                ("eval_queue", store.delete_eval_queue),
            ):
                self._loop(table, step, result, records_before)
        bodies_before = policy.cutoff_ms("bodies_days", now)
        if bodies_before is not None:
            self._bodies(result, bodies_before)
        rollups_before = policy.cutoff_ms("rollups_days", now)
        if rollups_before is not None and self.keep_going():
            whole_days = rollups_before - rollups_before % DAY_MS  # hourly and daily agree
            result.deleted.merge(store.delete_rollups(self.engine, org_id, whole_days))
        result.bodies = result.deleted.rows.get("request_bodies", 0)
        result.records = result.deleted.rows.get("requests", 0)

    def _records(self, result: OrgResult, before: int) -> None:
        while self.keep_going():
            batch = store.delete_records_batch(self.engine, result.org_id, before, self.batch)
            result.deleted.merge(batch)
            if batch.rows.get("requests", 0) == 0:
                return
            time.sleep(self.pause_s)

    def _bodies(self, result: OrgResult, before: int) -> None:
        cursor: Cursor | None = Cursor()
        while cursor is not None and self.keep_going():
            gone, cursor = store.delete_bodies_batch(
                self.engine, result.org_id, before, cursor, self.batch
            )
            result.deleted.add("request_bodies", gone)
            time.sleep(self.pause_s if gone else 0)

    def _loop(
        self,
        table: str,
        step: Callable[[Engine, str, int, int], int],
        result: OrgResult,
        before: int,
    ) -> None:
        while self.keep_going():
            gone = step(self.engine, result.org_id, before, self.batch)
            result.deleted.add(table, gone)
            if gone < self.batch:
                return
            time.sleep(self.pause_s)


def reclaim(engine: Engine, full: bool = False) -> VacuumResult:
    """After a pass on SQLite: free pages back to the OS when the file is in incremental
    mode; ``full`` first rewrites a file that is not (one VACUUM, holding the store)."""
    space = store.sqlite_space(engine)
    if space is None:
        return VacuumResult(note="PostgreSQL: autovacuum reuses the space")
    size = space.pages * space.page_size
    if full and space.auto_vacuum != 2:
        store.full_vacuum(engine)
        store.checkpoint(engine)
        after = store.sqlite_space(engine)
        assert after is not None
        freed = size - after.pages * after.page_size
        return VacuumResult(freed, "rewrote the file with VACUUM (auto_vacuum now incremental)")
    if space.auto_vacuum != 2:
        note = (
            "SQLite file not in incremental auto_vacuum mode: freed space is reused for new "
            "records but not returned to the OS; run `heliograph retention run --vacuum` "
            "once to switch (it rewrites the file)"
        )
        log.info(note)
        return VacuumResult(note=note, advice=note)
    freed = 0
    while True:
        gone = store.incremental_vacuum(engine, VACUUM_STEP_PAGES)
        freed += gone * space.page_size
        if gone < VACUUM_STEP_PAGES:
            break
        time.sleep(PAUSE_S)
    store.checkpoint(engine)
    return VacuumResult(freed, "incremental vacuum")
