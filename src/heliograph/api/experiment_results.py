"""Experiment results API: the summary with its intervals, the matrix, exports, promotion.

Read keys read (``results``, ``cells``, ``export``); promotion moves a prompt label, which
changes what production runs, so it takes an admin key and is recorded as ``key:<id>``.
Another organization's experiment is answered as absent (404), as everywhere.

Creating, listing and cancelling experiments is ``api.experiments`` (the engine); this module
only reads what the runner wrote, through ``store.experiment_results`` and
``evals.results`` (the document the dashboard page shows too).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.prompts import LABEL
from heliograph.api.query import read_json
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.evals import results as results_doc
from heliograph.store import experiment_results as results_store
from heliograph.store import prompts as prompt_store
from heliograph.store.export import MEDIA_TYPES, csv_cell
from heliograph.store.requests import iso_ms

EXP_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
DEFAULT_PAGE = 50
MAX_PAGE = 500
CELL_FIELDS = (
    "status",
    "request_id",
    "output",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "cost_nusd",
    "latency_ms",
)
SCORE_FIELDS = ("value", "label", "passed", "reason", "error", "judge_request_id")


class PromoteError(ValueError):
    """Why a variant cannot be promoted (not a prompt variant, no such variant...)."""


def missing(exp_id: str) -> ApiError:
    return ApiError(404, f"No experiment {exp_id[:100]!r} in this organization.", "not_found")


def exp_id_of(request: Request) -> str:
    value: str = request.path_params["exp_id"]
    if not EXP_ID.fullmatch(value):
        raise missing(value)
    return value


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


def experiment_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "dataset": row.get("dataset_name"),
        "status": row["status"],
        "stop_reason": row["stop_reason"],
        "cells_total": row["cells_total"],
        "cells_done": row["cells_done"],
        "cells_failed": row["cells_failed"],
        "spent_nusd": row["spent_nusd"],
        "cost_cap_nusd": row["cost_cap_nusd"],
        "estimated_cost_nusd": row["estimated_cost_nusd"],
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


def results_api(doc: dict[str, Any]) -> dict[str, Any]:
    experiment = doc["experiment"]
    return {
        "experiment": experiment_api(experiment),
        "evaluators": doc["evaluators"],
        "variants": [
            {
                "id": v["id"],
                "position": v["position"],
                "name": v["name"],
                "spec": v["spec"],
                "summary": v["summary"],
            }
            for v in experiment["variants"]
        ],
        "comparisons": doc["comparisons"],
    }


def cell_api(cell: dict[str, Any]) -> dict[str, Any]:
    out = {"id": cell["id"], "variant_id": cell["variant_id"]}
    out |= {k: cell[k] for k in CELL_FIELDS}
    out["scores"] = {
        name: {k: score[k] for k in SCORE_FIELDS} for name, score in cell["scores"].items()
    }
    return out


async def results(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    exp_id = exp_id_of(request)
    cache = results_doc.cache_of(request.app.state)
    engine = request.app.state.engine
    doc = await run_in_threadpool(results_doc.load, engine, info.org_id, exp_id, cache)
    if doc is None:
        raise missing(exp_id)
    return JSONResponse(results_api(doc))


def _int_param(request: Request, name: str, low: int, high: int, default: int | None) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}", "invalid_parameter")
    return int(raw)


async def cells(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("after", "limit"))
    exp_id = exp_id_of(request)
    after = _int_param(request, "after", -1, 2**31 - 1, None)
    limit = _int_param(request, "limit", 1, MAX_PAGE, DEFAULT_PAGE)
    engine = request.app.state.engine
    if await run_in_threadpool(results_store.get_experiment, engine, info.org_id, exp_id) is None:
        raise missing(exp_id)
    rows, next_after = await run_in_threadpool(
        results_store.matrix, engine, info.org_id, exp_id, after, limit
    )
    data = [
        {
            "item_position": r["item_position"],
            "item_id": r["item_id"],
            "cells": [cell_api(c) for c in r["cells"].values()],
        }
        for r in rows
    ]
    return JSONResponse({"data": data, "next_after": next_after})


def export_columns(evaluators: list[str]) -> list[str]:
    base = ["item_position", "item_id", "variant_position", "variant", "cell_id"]
    per_score = [f"{name}.{k}" for name in evaluators for k in SCORE_FIELDS]
    return base + list(CELL_FIELDS) + per_score


def export_line(
    cell: dict[str, Any], variants: dict[str, dict[str, Any]], evaluators: list[str]
) -> dict[str, Any]:
    variant = variants.get(cell["variant_id"], {})
    line: dict[str, Any] = {
        "item_position": cell["item_position"],
        "item_id": cell["item_id"],
        "variant_position": variant.get("position"),
        "variant": variant.get("name"),
        "cell_id": cell["id"],
    }
    line |= {k: cell[k] for k in CELL_FIELDS}
    for name in evaluators:
        score = cell["scores"].get(name) or {}
        line |= {f"{name}.{k}": score.get(k) for k in SCORE_FIELDS}
    return line


async def export_csv(request: Request) -> Response:
    return await export(request, "csv")


async def export_jsonl(request: Request) -> Response:
    return await export(request, "jsonl")


async def export(request: Request, fmt: str) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    exp_id = exp_id_of(request)
    response = await export_response(request.app.state.engine, info.org_id, exp_id, fmt)
    if response is None:
        raise missing(exp_id)
    return response


async def export_response(
    engine: Engine, org_id: str, exp_id: str, fmt: str
) -> StreamingResponse | None:
    """Every cell as a CSV row or a JSONL line, streamed a batch of items at a time (the
    dashboard's export links answer the same); None if the experiment is not in ``org_id``."""
    experiment = await run_in_threadpool(results_store.get_experiment, engine, org_id, exp_id)
    if experiment is None:
        return None
    evaluators = await run_in_threadpool(results_store.evaluator_names, engine, org_id, exp_id)
    variants = {v["id"]: v for v in experiment["variants"]}
    columns = export_columns(evaluators)
    lines = results_store.iter_export(engine, org_id, exp_id)

    def next_chunk() -> bytes | None:
        batch = []
        for cell in lines:
            batch.append(export_line(cell, variants, evaluators))
            if len(batch) >= results_store.EXPORT_BATCH:
                break
        if not batch:
            return None
        if fmt == "jsonl":
            return b"".join(orjson.dumps(line) + b"\n" for line in batch)
        return _csv([[csv_cell(line[c]) for c in columns] for line in batch])

    async def chunks() -> AsyncIterator[bytes]:
        if fmt == "csv":
            yield _csv([columns])
        while (chunk := await run_in_threadpool(next_chunk)) is not None:
            yield chunk

    filename = f"experiment-{exp_id}.{fmt}"
    return StreamingResponse(
        chunks(),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


def promotion_target(experiment: dict[str, Any], ref: object) -> tuple[dict[str, Any], str, int]:
    """The variant ``ref`` names (its id, or its position as a number) and the prompt name
    and version it ran; ``PromoteError`` when it names none or is not a prompt version."""
    variants = experiment["variants"]
    found = None
    if isinstance(ref, int) and not isinstance(ref, bool):
        found = next((v for v in variants if v["position"] == ref), None)
    elif isinstance(ref, str):
        found = next((v for v in variants if v["id"] == ref), None)
        if found is None and ref.isascii() and ref.isdigit():
            found = next((v for v in variants if v["position"] == int(ref)), None)
    if found is None:
        raise PromoteError("variant must be a variant id or position of this experiment")
    spec = found["spec"] or {}
    version = spec.get("version")
    if spec.get("kind") != "prompt" or not isinstance(spec.get("prompt"), str):
        raise PromoteError(f"variant {found['name']!r} is not a prompt version: nothing to promote")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PromoteError(f"variant {found['name']!r} has no resolved prompt version")
    return found, spec["prompt"], version


async def promote(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    exp_id = exp_id_of(request)
    doc = await read_json(request)
    if not isinstance(doc, dict) or "variant" not in doc or set(doc) - {"variant", "label"}:
        raise ApiError(
            400, 'body must be {"variant": <id or position>, "label": "..."}', "invalid_parameter"
        )
    label = doc.get("label", "production")
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise ApiError(400, "label must be 1 to 64 of a-z 0-9 _ -", "invalid_parameter")
    engine = request.app.state.engine
    experiment = await run_in_threadpool(results_store.get_experiment, engine, info.org_id, exp_id)
    if experiment is None:
        raise missing(exp_id)
    try:
        variant, name, version = promotion_target(experiment, doc["variant"])
    except PromoteError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    moved = await run_in_threadpool(
        prompt_store.move_label, engine, info.org_id, name, label, version, f"key:{info.id}"
    )
    if moved is None:
        raise ApiError(409, f"Prompt {name!r} version {version} no longer exists.", "conflict")
    return JSONResponse(
        {
            "prompt": name,
            "label": label,
            "from_version": moved[0],
            "to_version": moved[1],
            "variant": {"id": variant["id"], "position": variant["position"]},
        }
    )


PREFIX = "/api/v1/experiments/{exp_id}"
routes = [
    Route(f"{PREFIX}/results", results, methods=["GET"]),
    Route(f"{PREFIX}/cells", cells, methods=["GET"]),
    Route(f"{PREFIX}/export.csv", export_csv, methods=["GET"]),
    Route(f"{PREFIX}/export.jsonl", export_jsonl, methods=["GET"]),
    Route(f"{PREFIX}/promote", promote, methods=["POST"]),
]
