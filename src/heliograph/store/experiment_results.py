"""What an experiment's results are read from: its matrix, its summary, its paired scores.

The runner writes cells and scores (``store.experiments``); this module only reads them, plus
the one write a person makes: a ``human`` score on a cell from the review queue. Every query
is scoped to an organization, so another organization's experiment reads as absent.

The summary is exact: latency percentiles come from the cells' own latencies (at most a few
thousand per variant), not from histogram buckets; a mean score averages the values that were
scored, and an evaluator that could not score (``error``) is counted apart, never as a zero.
The matrix pages by ``item_position``, so a page holds whole rows (every variant of an item).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

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


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (an observed value): the smallest value with at least
    ``q`` of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def _cell_summary(conn: Connection, org_id: str, exp_id: str) -> dict[str, dict[str, Any]]:
    grid = experiment_cells.c

    def count(status: str) -> Any:
        return func.sum(case((grid.status == status, 1), else_=0))

    query = (
        select(
            grid.variant_id,
            func.count().label("cells"),
            count("done").label("done"),
            count("error").label("errors"),
            count("pending").label("pending"),
            count("running").label("running"),
            count("skipped").label("skipped"),
            func.coalesce(func.sum(grid.cost_nusd), 0).label("cost_nusd"),
            func.coalesce(func.sum(grid.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(grid.completion_tokens), 0).label("completion_tokens"),
        )
        .where(grid.experiment_id == exp_id, grid.org_id == org_id)
        .group_by(grid.variant_id)
    )
    out: dict[str, dict[str, Any]] = {
        r.variant_id: {k: int(v or 0) for k, v in r._mapping.items() if k != "variant_id"}
        for r in conn.execute(query)
    }
    latencies = conn.execute(
        select(grid.variant_id, grid.latency_ms)
        .where(
            grid.experiment_id == exp_id,
            grid.org_id == org_id,
            grid.status == "done",
            grid.latency_ms.is_not(None),
        )
        .order_by(grid.variant_id, grid.latency_ms)
    )
    by_variant: dict[str, list[float]] = {}
    for variant_id, latency in latencies:
        by_variant.setdefault(variant_id, []).append(float(latency))
    for variant_id, entry in out.items():
        values = by_variant.get(variant_id, [])
        entry["p50_latency_ms"] = percentile(values, 0.5)
        entry["p95_latency_ms"] = percentile(values, 0.95)
    return out


def _score_summary(
    conn: Connection, org_id: str, exp_id: str
) -> dict[str, dict[str, dict[str, Any]]]:
    s, grid = experiment_scores.c, experiment_cells.c
    scored = and_(s.error.is_(None), s.value.is_not(None))
    query = (
        select(
            grid.variant_id,
            s.evaluator,
            func.avg(case((scored, s.value))).label("mean"),
            func.count(case((scored, 1))).label("scored"),
            func.count(case((s.error.is_not(None), 1))).label("errors"),
            func.sum(case((and_(s.error.is_(None), s.passed.is_(True)), 1), else_=0)).label(
                "passed"
            ),
            func.count(case((and_(s.error.is_(None), s.passed.is_not(None)), 1))).label("judged"),
        )
        .select_from(experiment_scores.join(experiment_cells, experiment_cells.c.id == s.cell_id))
        .where(s.experiment_id == exp_id, s.org_id == org_id, grid.org_id == org_id)
        .group_by(grid.variant_id, s.evaluator)
    )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in conn.execute(query):
        judged = int(r.judged or 0)
        out.setdefault(r.variant_id, {})[r.evaluator] = {
            "mean": None if r.mean is None else float(r.mean),
            "scored": int(r.scored or 0),
            "errors": int(r.errors or 0),
            "passed": int(r.passed or 0),
            "pass_rate": (int(r.passed or 0) / judged) if judged else None,
        }
    return out


def summary(engine: Engine, org_id: str, exp_id: str) -> dict[str, dict[str, Any]]:
    """Per variant id: cell counts by status, cost, tokens, p50/p95 latency of done cells,
    and ``evaluators``: {name: mean, scored, errors, passed, pass_rate}."""
    with engine.connect() as conn:
        cells = _cell_summary(conn, org_id, exp_id)
        scores = _score_summary(conn, org_id, exp_id)
    for variant_id, entry in cells.items():
        entry["evaluators"] = scores.get(variant_id, {})
    return cells


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
    return all_paired_scores(engine, org_id, exp_id, evaluator).get(evaluator, {})


def all_paired_scores(
    engine: Engine, org_id: str, exp_id: str, evaluator: str | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """{evaluator: {variant id: {item id: value}}} for every evaluator (or only
    ``evaluator``): one query for the page's intervals, not one per evaluator."""
    s, grid = experiment_scores.c, experiment_cells.c
    query = (
        select(s.evaluator, grid.variant_id, grid.item_id, s.value)
        .select_from(experiment_scores.join(experiment_cells, experiment_cells.c.id == s.cell_id))
        .where(
            s.experiment_id == exp_id,
            s.org_id == org_id,
            s.error.is_(None),
            s.value.is_not(None),
        )
    )
    if evaluator is not None:
        query = query.where(s.evaluator == evaluator)
    out: dict[str, dict[str, dict[str, float]]] = {}
    with engine.connect() as conn:
        for name, variant_id, item_id, value in conn.execute(query):
            out.setdefault(name, {}).setdefault(variant_id, {})[item_id] = float(value)
    return out


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
