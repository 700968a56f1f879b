"""Experiments built row by row, as the engine's contract (migration 0015) says they look.

The results code only reads these tables, so its tests (store, API, pages, browser, bench)
insert the rows directly: a dataset with items, an experiment, its variants, one cell per
item x variant and scores per cell and evaluator, some of them evaluator errors.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert

from heliograph.evals.dataset_items import check_item
from heliograph.store import datasets as dataset_store
from heliograph.store.schema import (
    experiment_cells,
    experiment_scores,
    experiment_variants,
    experiments,
)

# (item index, variant position) -> (value, passed, reason, error) or None (no score)
Scorer = Callable[[int, int], tuple[float | None, bool | None, str | None, str | None] | None]
Outputs = Callable[[int, int], str]


@dataclass
class Built:
    experiment_id: str
    dataset: str
    item_ids: list[str]
    variant_ids: list[str]
    cells: dict[tuple[int, int], str] = field(default_factory=dict)  # (item, variant) -> id
    request_ids: dict[tuple[int, int], str] = field(default_factory=dict)


def default_score(
    item: int, variant: int
) -> tuple[float | None, bool | None, str | None, str | None]:
    passed = (item + variant) % 3 != 0
    return (1.0 if passed else 0.0), passed, f"item {item} variant {variant}", None


def build(
    engine: Engine,
    org_id: str,
    *,
    name: str = "exp",
    dataset: str | None = None,
    items: int = 5,
    variants: Sequence[dict[str, Any]] = (
        {"kind": "model", "upstream": "openai", "model": "gpt-4o-mini"},
        {"kind": "model", "upstream": "openai", "model": "gpt-4o"},
    ),
    evaluators: dict[str, Scorer] | None = None,
    output: Outputs = lambda i, v: f"answer {i} from {v}",
    status: Callable[[int, int], str] = lambda i, v: "done",
    latency: Callable[[int, int], float] = lambda i, v: 100.0 + 10 * i + v,
    cost: Callable[[int, int], int] = lambda i, v: 1000 * (v + 1),
    request_ids: Callable[[int, int], str] | None = None,
    exp_status: str = "completed",
    created_at: int | None = None,
) -> Built:
    now = created_at or int(time.time() * 1000)
    dataset = dataset or f"ds-{uuid.uuid4().hex[:8]}"
    dataset_store.create_dataset(engine, org_id, dataset, "", None)
    added = dataset_store.add_items(
        engine,
        org_id,
        dataset,
        [
            check_item({"inputs": {"q": f"question {i}"}, "expected": f"expected {i}"})
            for i in range(items)
        ],
        None,
    )
    assert added is not None and len(added.ids) == items
    ds = dataset_store.get_dataset(engine, org_id, dataset)
    assert ds is not None
    exp_id = str(uuid.uuid4())
    scorers = {"correct": default_score} if evaluators is None else evaluators
    built = Built(exp_id, dataset, list(added.ids), [str(uuid.uuid4()) for _ in variants])
    cells: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    done = failed = 0
    for i, item_id in enumerate(built.item_ids):
        for v, variant_id in enumerate(built.variant_ids):
            cell_id = str(uuid.uuid4())
            rid = request_ids(i, v) if request_ids else str(uuid.uuid4())
            built.cells[(i, v)] = cell_id
            built.request_ids[(i, v)] = rid
            state = status(i, v)
            ok = state == "done"
            done += ok
            failed += state == "error"
            cells.append(
                {
                    "id": cell_id,
                    "experiment_id": exp_id,
                    "org_id": org_id,
                    "variant_id": variant_id,
                    "item_id": item_id,
                    "item_position": i,
                    "status": state,
                    "request_id": rid,
                    "output": output(i, v) if ok else None,
                    "error": None if ok or state != "error" else f"upstream 500 on {i}",
                    "prompt_tokens": 10 + i if ok else None,
                    "completion_tokens": 5 + v if ok else None,
                    "cost_nusd": cost(i, v) if ok else None,
                    "latency_ms": latency(i, v) if ok else None,
                    "attempts": 1,
                    "started_at": now,
                    "finished_at": now if state in ("done", "error") else None,
                }
            )
            if not ok:
                continue
            for evaluator, scorer in scorers.items():
                got = scorer(i, v)
                if got is None:
                    continue
                value, passed, reason, error = got
                scores.append(
                    {
                        "id": str(uuid.uuid4()),
                        "experiment_id": exp_id,
                        "org_id": org_id,
                        "cell_id": cell_id,
                        "evaluator": evaluator,
                        "value": value,
                        "label": None,
                        "passed": passed,
                        "reason": reason,
                        "error": error,
                        "judge_request_id": None,
                        "created_at": now,
                    }
                )
    with engine.begin() as conn:
        conn.execute(
            insert(experiments).values(
                id=exp_id,
                org_id=org_id,
                name=name,
                description="",
                dataset_id=ds["id"],
                source={"dataset": dataset},
                evaluators=[{"name": n, "kind": "exact"} for n in scorers],
                status=exp_status,
                concurrency=4,
                spent_nusd=sum(c["cost_nusd"] or 0 for c in cells),
                cells_total=len(cells),
                cells_done=done,
                cells_failed=failed,
                created_at=now,
                updated_at=now,
                started_at=now,
            )
        )
        conn.execute(
            insert(experiment_variants),
            [
                {
                    "id": variant_id,
                    "experiment_id": exp_id,
                    "org_id": org_id,
                    "position": v,
                    "name": _variant_name(variants[v]),
                    "spec": dict(variants[v]),
                }
                for v, variant_id in enumerate(built.variant_ids)
            ],
        )
        for start in range(0, len(cells), 500):
            conn.execute(insert(experiment_cells), cells[start : start + 500])
        for start in range(0, len(scores), 500):
            conn.execute(insert(experiment_scores), scores[start : start + 500])
    return built


def _variant_name(spec: dict[str, Any]) -> str:
    if spec.get("kind") == "prompt":
        return f"prompt:{spec['prompt']}:{spec['version']}"
    return f"model:{spec.get('upstream')}/{spec.get('model')}"
