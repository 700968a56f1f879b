"""An experiment's summary per variant, read in two passes over the store.

The page and the results API show it, and the page has 300 ms for 3,000 cells and 6,000
scores: so the cells are aggregated in SQL (counts, cost, tokens) with their latencies read
once, and every score is read in **one** query and aggregated here, which gives the mean, pass
rate and evaluator errors per variant and evaluator, the evaluators' names and the paired
values the bootstrap intervals need, instead of one query for each.

Exact: latency percentiles come from the cells' own latencies (at most a few thousand per
variant), not from histogram buckets; a mean score averages the values that were scored, and
an evaluator that could not score (``error``) is counted apart, never as a zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select

from heliograph.store.schema import experiment_cells, experiment_scores


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (an observed value): the smallest value with at least
    ``q`` of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def cell_summary(conn: Connection, org_id: str, exp_id: str) -> dict[str, dict[str, Any]]:
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


@dataclass
class _Tally:
    values: list[float] = field(default_factory=list)
    errors: int = 0
    passed: int = 0
    judged: int = 0

    def stats(self) -> dict[str, Any]:
        return {
            "mean": math.fsum(self.values) / len(self.values) if self.values else None,
            "scored": len(self.values),
            "errors": self.errors,
            "passed": self.passed,
            "pass_rate": self.passed / self.judged if self.judged else None,
        }


@dataclass
class Scores:
    """Every score of an experiment, read once."""

    # {variant id: {evaluator: {mean, scored, errors, passed, pass_rate}}}
    summary: dict[str, dict[str, dict[str, Any]]]
    # {evaluator: {variant id: {item id: value}}}: scored values only (no errors)
    paired: dict[str, dict[str, dict[str, float]]]
    names: list[str]  # evaluators with at least one score, errors included


def read_scores(engine: Engine, org_id: str, exp_id: str) -> Scores:
    """One query over the experiment's scores (with their cells' variant and item)."""
    s, grid = experiment_scores.c, experiment_cells.c
    query = (
        select(s.evaluator, grid.variant_id, grid.item_id, s.value, s.passed, s.error)
        .select_from(experiment_scores.join(experiment_cells, experiment_cells.c.id == s.cell_id))
        .where(s.experiment_id == exp_id, s.org_id == org_id, grid.org_id == org_id)
    )
    tallies: dict[tuple[str, str], _Tally] = {}
    paired: dict[str, dict[str, dict[str, float]]] = {}
    with engine.connect() as conn:
        for name, variant_id, item_id, value, passed, error in conn.execute(query):
            tally = tallies.get((variant_id, name))
            if tally is None:
                tally = tallies[(variant_id, name)] = _Tally()
            if error is not None:
                tally.errors += 1
                continue
            if value is not None:
                tally.values.append(float(value))
                paired.setdefault(name, {}).setdefault(variant_id, {})[item_id] = float(value)
            if passed is not None:
                tally.judged += 1
                tally.passed += bool(passed)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (variant_id, name), tally in sorted(tallies.items()):
        out.setdefault(variant_id, {})[name] = tally.stats()
    return Scores(out, paired, sorted({name for _, name in tallies}))


def summary(
    engine: Engine, org_id: str, exp_id: str, scores: Scores | None = None
) -> dict[str, dict[str, Any]]:
    """Per variant id: cell counts by status, cost, tokens, p50/p95 latency of done cells,
    and ``evaluators``: {name: mean, scored, errors, passed, pass_rate} (from ``scores`` when
    the caller has read them already)."""
    with engine.connect() as conn:
        cells = cell_summary(conn, org_id, exp_id)
    by_variant = (scores or read_scores(engine, org_id, exp_id)).summary
    for variant_id, entry in cells.items():
        entry["evaluators"] = by_variant.get(variant_id, {})
    return cells
