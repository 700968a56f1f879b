"""What an experiment's results are read from: its matrix, its summary, its paired scores.

The runner writes cells and scores (``store.experiments``); this module only reads them, plus
the one write a person makes: a ``human`` score on a cell from the review queue. Every query
is scoped to an organization, so another organization's experiment reads as absent.

The summary per variant (exact, from the cells and every score) is
``store.experiment_summary``; this module re-exports ``summary`` and ``read_scores``.
The matrix pages by ``item_position``, so a page holds whole rows (every variant of an item).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from heliograph.store.experiment_summary import read_scores as read_scores
from heliograph.store.experiment_summary import summary as summary
from heliograph.store.filters import holds_nul
from heliograph.store.schema import (
    dataset_items,
    datasets,
    experiment_cells,
    experiment_scores,
    experiment_variants,
    experiments,
)

HUMAN = "human"  # the evaluator name of scores given in the review queue
EXPORT_BATCH = 200
CELL_COLUMNS = (
    experiment_cells.c.id,
    experiment_cells.c.variant_id,
    experiment_cells.c.item_id,
    experiment_cells.c.item_position,
    experiment_cells.c.status,
    experiment_cells.c.request_id,
    experiment_cells.c.output,
    experiment_cells.c.error,
    experiment_cells.c.prompt_tokens,
    experiment_cells.c.completion_tokens,
    experiment_cells.c.cost_nusd,
    experiment_cells.c.latency_ms,
)
SCORE_COLUMNS = (
    experiment_scores.c.cell_id,
    experiment_scores.c.evaluator,
    experiment_scores.c.value,
    experiment_scores.c.label,
    experiment_scores.c.passed,
    experiment_scores.c.reason,
    experiment_scores.c.error,
    experiment_scores.c.judge_request_id,
)


def _now() -> int:
    return int(time.time() * 1000)


def _header() -> Any:
    return select(*experiments.c, datasets.c.name.label("dataset_name")).select_from(
        experiments.outerjoin(datasets, datasets.c.id == experiments.c.dataset_id)
    )


def list_experiments(engine: Engine, org_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The organization's experiments, newest first, with their dataset's name."""
    query = (
        _header()
        .where(experiments.c.org_id == org_id)
        .order_by(experiments.c.created_at.desc(), experiments.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_experiment(engine: Engine, org_id: str, exp_id: str) -> dict[str, Any] | None:
    """The experiment with its variants (by position), or None if not in ``org_id``."""
    if holds_nul(exp_id):
        return None
    with engine.connect() as conn:
        found = conn.execute(
            _header().where(experiments.c.org_id == org_id, experiments.c.id == exp_id)
        ).first()
        if found is None:
            return None
        row = dict(found._mapping)
        variants = conn.execute(
            select(experiment_variants)
            .where(experiment_variants.c.experiment_id == exp_id)
            .order_by(experiment_variants.c.position)
        )
        row["variants"] = [dict(v._mapping) for v in variants]
    return row


def _scores_for(conn: Connection, cell_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not cell_ids:
        return out
    query = select(*SCORE_COLUMNS).where(experiment_scores.c.cell_id.in_(list(cell_ids)))
    for r in conn.execute(query.order_by(experiment_scores.c.evaluator)):
        out.setdefault(r.cell_id, {})[r.evaluator] = dict(r._mapping)
    return out


def matrix(
    engine: Engine, org_id: str, exp_id: str, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Rows of the matrix after item position ``after``: ``{"item_position", "item_id",
    "cells": {variant_id: cell with "scores": {evaluator: score}}}``; and the next cursor
    (the last position shown), None on the last page."""
    grid = experiment_cells.c
    mine = and_(grid.experiment_id == exp_id, grid.org_id == org_id)
    positions_q = select(grid.item_position).where(mine).distinct()
    if after is not None:
        positions_q = positions_q.where(grid.item_position > after)
    positions_q = positions_q.order_by(grid.item_position).limit(limit + 1)
    with engine.connect() as conn:
        positions = list(conn.execute(positions_q).scalars())
        more = len(positions) > limit
        positions = positions[:limit]
        if not positions:
            return [], None
        cells = conn.execute(
            select(*CELL_COLUMNS)
            .select_from(
                experiment_cells.join(
                    experiment_variants, experiment_variants.c.id == grid.variant_id
                )
            )
            .where(mine, grid.item_position.between(positions[0], positions[-1]))
            .order_by(grid.item_position, experiment_variants.c.position)
        ).all()
        scores = _scores_for(conn, [c.id for c in cells])
    rows: dict[int, dict[str, Any]] = {}
    for c in cells:
        row = rows.setdefault(
            c.item_position, {"item_position": c.item_position, "item_id": c.item_id, "cells": {}}
        )
        row["cells"][c.variant_id] = dict(c._mapping) | {"scores": scores.get(c.id, {})}
    return list(rows.values()), (positions[-1] if more else None)


def evaluator_names(engine: Engine, org_id: str, exp_id: str) -> list[str]:
    """The evaluators with at least one score in the experiment (``human`` included)."""
    query = (
        select(experiment_scores.c.evaluator)
        .where(experiment_scores.c.experiment_id == exp_id, experiment_scores.c.org_id == org_id)
        .distinct()
        .order_by(experiment_scores.c.evaluator)
    )
    with engine.connect() as conn:
        return [str(n) for n in conn.execute(query).scalars()]


def paired_scores(
    engine: Engine, org_id: str, exp_id: str, evaluator: str
) -> dict[str, dict[str, float]]:
    """{variant id: {item id: value}} of the scores ``evaluator`` gave (errors left out), so
    two variants pair up on the items both were scored on."""
    return read_scores(engine, org_id, exp_id).paired.get(evaluator, {})


def item_cells(engine: Engine, org_id: str, exp_id: str, position: int) -> list[dict[str, Any]]:
    """Every variant's cell for the item at ``position`` (with scores), for the diff view."""
    rows, _ = matrix(engine, org_id, exp_id, position - 1, 1)
    if not rows or rows[0]["item_position"] != position:
        return []
    return list(rows[0]["cells"].values())


def get_cell(engine: Engine, org_id: str, exp_id: str, cell_id: str) -> dict[str, Any] | None:
    if holds_nul(cell_id):
        return None
    grid = experiment_cells.c
    query = select(*CELL_COLUMNS).where(
        grid.id == cell_id, grid.experiment_id == exp_id, grid.org_id == org_id
    )
    with engine.connect() as conn:
        found = conn.execute(query).first()
        if found is None:
            return None
        row = dict(found._mapping)
        row["scores"] = _scores_for(conn, [cell_id]).get(cell_id, {})
    return row


def review_cells(
    engine: Engine, org_id: str, exp_id: str, after: int | None, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """Done cells in matrix order (item position, then variant position) with their item's
    inputs and expected output: what the review queue steps through."""
    grid, v, it = experiment_cells.c, experiment_variants.c, dataset_items.c
    order = grid.item_position * 1000 + v.position
    query = (
        select(
            *CELL_COLUMNS,
            v.name.label("variant_name"),
            v.position.label("variant_position"),
            it.inputs,
            it.expected,
            order.label("seq"),
        )
        .select_from(
            experiment_cells.join(
                experiment_variants, experiment_variants.c.id == grid.variant_id
            ).outerjoin(dataset_items, and_(it.id == grid.item_id, it.org_id == org_id))
        )
        .where(grid.experiment_id == exp_id, grid.org_id == org_id, grid.status == "done")
        .order_by(order)
        .limit(limit)
        .offset(offset)
    )
    if after is not None:
        query = query.where(order > after)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        scores = _scores_for(conn, [r["id"] for r in rows])
    for row in rows:
        row["scores"] = scores.get(row["id"], {})
    return rows


def set_human_score(
    engine: Engine,
    org_id: str,
    exp_id: str,
    cell_id: str,
    value: float,
    passed: bool | None,
    reason: str,
) -> dict[str, Any] | None:
    """Record (or replace) the ``human`` score of a cell; its cell (for the request id), or
    None if the cell is not in this organization's experiment."""
    cell = get_cell(engine, org_id, exp_id, cell_id)
    if cell is None:
        return None
    values = {
        "value": value,
        "label": None,
        "passed": passed,
        "reason": reason or None,
        "error": None,
        "judge_request_id": None,
        "created_at": _now(),
    }
    key = and_(experiment_scores.c.cell_id == cell_id, experiment_scores.c.evaluator == HUMAN)
    for _ in range(2):  # two reviewers saving at once: the loser of the insert updates
        try:
            with engine.begin() as conn:
                if conn.execute(update(experiment_scores).where(key).values(values)).rowcount:
                    return cell
                conn.execute(
                    insert(experiment_scores).values(
                        id=str(uuid.uuid4()),
                        experiment_id=exp_id,
                        org_id=org_id,
                        cell_id=cell_id,
                        evaluator=HUMAN,
                        **values,
                    )
                )
            return cell
        except IntegrityError:
            continue
    return cell


def iter_export(engine: Engine, org_id: str, exp_id: str) -> Iterator[dict[str, Any]]:
    """Every cell in matrix order with its scores, a batch of items at a time (the export
    streams it without holding the experiment in memory)."""
    after: int | None = None
    while True:
        rows, after = matrix(engine, org_id, exp_id, after, EXPORT_BATCH)
        for row in rows:
            yield from row["cells"].values()
        if after is None:
            return
