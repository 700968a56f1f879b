"""Experiments in the store: created whole (variants, one cell per item x variant, the job
that runs it) in one transaction, then advanced by the runner in batches.

A cell is ``pending`` until the runner takes it, ``running`` from just before its gateway
call (``attempts`` counts the calls; its ``request_id`` was chosen at creation), then ``done``
(output, tokens, cost, latency from the stored record, and its scores) or ``error``, or
``skipped`` when the experiment stopped before it ran. The
runner saves finished cells a batch per transaction together with their scores and the
experiment's counters (``cells_done``, ``cells_failed``, ``spent_nusd``), so progress and
results never disagree. An experiment is ``queued``, ``running``, then ``completed``,
``stopped`` (cancelled, or its cost cap reached: ``stop_reason`` says which) or ``failed``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from heliograph.store.jobs import QUEUED
from heliograph.store.schema import (
    experiment_cells,
    experiment_scores,
    experiment_variants,
    experiments,
    jobs,
)

JOB_KIND = "experiment"
CHUNK = 500
ACTIVE = ("queued", "running")
# Cell statuses; "error" is a cell whose call failed (the results pages count it as errors).
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "error", "skipped"


def now_ms() -> int:
    return int(time.time() * 1000)


def create_experiment(
    engine: Engine,
    experiment: dict[str, Any],
    variants: Sequence[dict[str, Any]],
    cells: Sequence[dict[str, Any]],
    job_id: str,
) -> None:
    """Store an experiment, its variants and cells, and queue the job that runs it."""
    now = experiment["created_at"]
    with engine.begin() as conn:
        conn.execute(insert(experiments).values(experiment))
        if variants:
            conn.execute(insert(experiment_variants), list(variants))
        for start in range(0, len(cells), CHUNK):
            conn.execute(insert(experiment_cells), list(cells[start : start + CHUNK]))
        conn.execute(
            insert(jobs).values(
                id=job_id,
                org_id=experiment["org_id"],
                kind=JOB_KIND,
                ref_id=experiment["id"],
                payload={"experiment_id": experiment["id"]},
                status=QUEUED,
                created_at=now,
                updated_at=now,
            )
        )


def get_experiment(engine: Engine, experiment_id: str, org_id: str | None = None) -> Any:
    """The experiment's row as a dict (None if absent, or another organization's)."""
    query = select(experiments).where(experiments.c.id == experiment_id)
    if org_id is not None:
        query = query.where(experiments.c.org_id == org_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def list_experiments(engine: Engine, org_id: str, limit: int = 100) -> list[dict[str, Any]]:
    query = (
        select(experiments)
        .where(experiments.c.org_id == org_id)
        .order_by(experiments.c.created_at.desc(), experiments.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def list_variants(engine: Engine, experiment_id: str) -> list[dict[str, Any]]:
    query = (
        select(experiment_variants)
        .where(experiment_variants.c.experiment_id == experiment_id)
        .order_by(experiment_variants.c.position)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def unfinished_cells(engine: Engine, experiment_id: str) -> list[dict[str, Any]]:
    """Cells still pending or running, in grid order (item, then variant)."""
    query = (
        select(experiment_cells)
        .where(
            experiment_cells.c.experiment_id == experiment_id,
            experiment_cells.c.status.in_((PENDING, RUNNING)),
        )
        .order_by(experiment_cells.c.item_position, experiment_cells.c.variant_id)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def mark_started(engine: Engine, cell_ids: Sequence[str]) -> None:
    """Cells about to be called: running, one more attempt (before the call, so a restart
    knows to look for their records first)."""
    if not cell_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(experiment_cells)
            .where(experiment_cells.c.id.in_(list(cell_ids)))
            .values(
                status=RUNNING,
                attempts=experiment_cells.c.attempts + 1,
                started_at=func.coalesce(experiment_cells.c.started_at, now_ms()),
            )
        )


def set_request_id(engine: Engine, cell_id: str, request_id: str) -> None:
    """A new request id for a cell whose earlier call was interrupted (its record stays)."""
    with engine.begin() as conn:
        conn.execute(
            update(experiment_cells)
            .where(experiment_cells.c.id == cell_id)
            .values(request_id=request_id)
        )


def save_cells(
    engine: Engine,
    experiment_id: str,
    cells: Sequence[dict[str, Any]],
    scores: Sequence[dict[str, Any]],
    extra_spent_nusd: int = 0,
) -> None:
    """Finished cells (each ``id``, ``status`` and results) with their scores, and the
    experiment's counters advanced to match, in one transaction."""
    if not cells and not scores and not extra_spent_nusd:
        return
    done = sum(1 for c in cells if c["status"] == DONE)
    failed = sum(1 for c in cells if c["status"] == FAILED)
    spent = sum(c.get("cost_nusd") or 0 for c in cells) + extra_spent_nusd
    now = now_ms()
    with engine.begin() as conn:
        for cell in cells:
            values = {k: v for k, v in cell.items() if k != "id"}
            conn.execute(
                update(experiment_cells)
                .where(experiment_cells.c.id == cell["id"])
                .values(**values, finished_at=now)
            )
        if scores:
            conn.execute(insert(experiment_scores), list(scores))
        conn.execute(
            update(experiments)
            .where(experiments.c.id == experiment_id)
            .values(
                cells_done=experiments.c.cells_done + done,
                cells_failed=experiments.c.cells_failed + failed,
                spent_nusd=experiments.c.spent_nusd + spent,
                updated_at=now,
            )
        )


def set_status(
    engine: Engine,
    experiment_id: str,
    status: str,
    reason: str | None = None,
    *,
    only_from: Sequence[str] = ACTIVE,
) -> bool:
    """Move the experiment to ``status`` if it is in one of ``only_from``."""
    now = now_ms()
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "running":
        values["started_at"] = func.coalesce(experiments.c.started_at, now)
    else:
        values["finished_at"] = now
        values["stop_reason"] = reason
    stmt = (
        update(experiments)
        .where(experiments.c.id == experiment_id, experiments.c.status.in_(list(only_from)))
        .values(**values)
    )
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def stored_scores(engine: Engine, cell_ids: Sequence[str]) -> set[tuple[str, str]]:
    """(cell id, evaluator) of the scores already stored for these cells."""
    if not cell_ids:
        return set()
    query = select(experiment_scores.c.cell_id, experiment_scores.c.evaluator).where(
        experiment_scores.c.cell_id.in_(list(cell_ids))
    )
    with engine.connect() as conn:
        return {(r[0], r[1]) for r in conn.execute(query)}


def skip_unfinished(engine: Engine, experiment_id: str) -> int:
    """Cells a stopped experiment will not run: ``skipped``."""
    with engine.begin() as conn:
        done = conn.execute(
            update(experiment_cells)
            .where(
                experiment_cells.c.experiment_id == experiment_id,
                experiment_cells.c.status.in_((PENDING, RUNNING)),
            )
            .values(status=SKIPPED)
        )
    return int(done.rowcount)
