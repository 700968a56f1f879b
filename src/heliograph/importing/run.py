"""An import run: files in, records stored in batches, and an account of what happened.

Each batch is one transaction through the store's own insert path (``insert_batch``: new ids
only, rollups summed once per new record), followed by the feedback and scores of the records
that were new. A dry run does the same work and rolls each transaction back, so its counts are
the real ones. Memory is bounded by the batch, plus (dry run only) the ids seen so far.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from heliograph.importing.helicone import Mapped, Skip, map_request
from heliograph.importing.helicone_files import Unreadable, read_file
from heliograph.pricing import PriceBook
from heliograph.store.bodies import BodyPacker
from heliograph.store.feedback import add_annotations
from heliograph.store.inserts import insert_batch, pack_records

BATCH = 500
EXAMPLES = 3


@dataclass
class Summary:
    """What an import read, stored and could not map (reasons with counts and examples)."""

    read: int = 0
    stored: int = 0
    present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # rows not stored, by reason
    bad_input: Counter[str] = field(default_factory=Counter)  # lines with no request
    partial: Counter[str] = field(default_factory=Counter)  # stored, a field lost
    ignored: Counter[str] = field(default_factory=Counter)  # fields with no column
    examples: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def note(self, bucket: Counter[str], reason: str, where: str) -> None:
        bucket[reason] += 1
        seen = self.examples.setdefault(reason, [])
        if len(seen) < EXAMPLES:
            seen.append(where)

    def text(self, dry_run: bool) -> str:
        verb = "would be stored" if dry_run else "stored"
        lines = [
            f"Read {self.read} Helicone requests: {self.stored} {verb}, "
            f"{self.present} already present (skipped), "
            f"{sum(self.skipped.values())} not mapped."
        ]
        if self.bad_input:
            lines[0] += f" {sum(self.bad_input.values())} pieces of input held no request."
        for title, bucket in (
            ("Input that held no request", self.bad_input),
            ("Not imported", self.skipped),
            ("Imported without a field", self.partial),
        ):
            if bucket:
                lines.append(f"{title}:")
                for reason, count in bucket.most_common():
                    where = ", ".join(self.examples.get(reason, []))
                    lines.append(f"  {reason}: {count} (e.g. {where})")
        if self.ignored:
            fields = ", ".join(f"{k} ({n})" for k, n in self.ignored.most_common())
            lines.append(f"Fields ignored (no Heliograph column): {fields}")
        lines += [f"Unreadable: {u}" for u in self.unreadable]
        return "\n".join(lines)


@dataclass
class Importer:
    """Maps and stores Helicone requests into one organization, a batch at a time."""

    engine: Engine
    org_id: str
    pricebook: PriceBook | None
    body_cap: int
    dry_run: bool = False
    batch_size: int = BATCH
    summary: Summary = field(default_factory=Summary)
    _pending: list[Mapped] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)  # dry run: ids a rollback forgot
    _packer: BodyPacker = field(default_factory=BodyPacker)

    def run(self, paths: Iterable[Path], progress: Callable[[int], None] = lambda n: None) -> None:
        """Import every file in turn; ``progress`` is told the bytes read."""
        now_ms = int(time.time() * 1000)
        for path in paths:
            try:
                for item in read_file(path, progress):
                    if item.row is None:
                        self.summary.note(self.summary.bad_input, str(item.problem), item.where)
                        continue
                    self.summary.read += 1
                    self._take(item.row, item.where, now_ms)
            except Unreadable as exc:
                self.summary.unreadable.append(str(exc))
        self.flush()

    def _take(self, row: dict[str, object], where: str, now_ms: int) -> None:
        try:
            mapped = map_request(
                row,
                org_id=self.org_id,
                now_ms=now_ms,
                pricebook=self.pricebook,
                packer=self._packer,
                body_cap=self.body_cap,
            )
        except Skip as exc:
            self.summary.note(self.summary.skipped, str(exc), where)
            return
        for reason in dict.fromkeys(mapped.notes):
            self.summary.note(self.summary.partial, reason, where)
        self.summary.ignored.update(mapped.ignored)
        self._pending.append(mapped)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Store the pending records in one transaction (rolled back in a dry run)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        batch = pack_records(
            [m.request for m in pending],
            [m.body for m in pending],
            [p for m in pending for p in m.properties],
        )
        with self.engine.connect() as conn, conn.begin() as tx:
            new = insert_batch(conn, batch)
            if self.dry_run:
                new -= self._seen
                self._seen |= new
            feedback, scores = _annotations(pending, new, self.org_id)
            add_annotations(conn, feedback, scores)
            if self.dry_run:
                tx.rollback()
        self.summary.stored += len(new)
        self.summary.present += len(pending) - len(new)


def _annotations(
    pending: list[Mapped], new: set[str], org_id: str
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Feedback and score rows of the records that went in (once each, first wins)."""
    feedback: dict[str, dict[str, object]] = {}
    scores: dict[tuple[str, str], dict[str, object]] = {}
    for m in pending:
        rid = m.request["id"]
        if rid not in new:
            continue
        created = m.request["created_at"]
        if m.feedback is not None and rid not in feedback:
            rating, when = m.feedback
            feedback[rid] = {
                "request_id": rid,
                "org_id": org_id,
                "rating": rating,
                "created_at": when,
            }
        for name, value in m.scores.items():
            scores.setdefault(
                (rid, name),
                {
                    "request_id": rid,
                    "name": name,
                    "org_id": org_id,
                    "value": value,
                    "created_at": created,
                },
            )
    return list(feedback.values()), list(scores.values())
