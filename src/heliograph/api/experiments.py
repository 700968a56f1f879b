"""Experiments API: create (or estimate), list, read progress, cancel.

Admin keys create and cancel, read keys read; another organization's experiment is absent
(404). ``POST /api/v1/experiments`` resolves everything (``evals.experiments``) and queues the
run for the job process; ``dry_run`` answers only the estimate. Results, cells, exports and
promotion are ``api.experiment_results``.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.datasets import by, name_problem
from heliograph.api.experiment_results import EXP_ID
from heliograph.api.params import check_params
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.evals import experiments as engine_
from heliograph.evals.experiment_specs import MAX_EVALUATORS, MAX_VARIANTS, VariantError
from heliograph.store import experiments as store
from heliograph.store import jobs as job_store
from heliograph.store.requests import iso_ms, usd

FIELDS = {
    "name",
    "description",
    "dataset",
    "sample",
    "variants",
    "evaluators",
    "concurrency",
    "cost_cap_usd",
    "dry_run",
}
MAX_NAME = 200
MAX_LIST = 500


def missing(exp_id: str) -> ApiError:
    return ApiError(404, f"No experiment {exp_id[:100]!r} in this organization.", "not_found")


def _bad(message: str) -> ApiError:
    return ApiError(400, message, "invalid_parameter")


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


def experiment_api(row: dict[str, Any]) -> dict[str, Any]:
    total = int(row["cells_total"] or 0)
    finished = int(row["cells_done"] or 0) + int(row["cells_failed"] or 0)
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "stop_reason": row["stop_reason"],
        "source": row["source"],
        "evaluators": row["evaluators"],
        "concurrency": row["concurrency"],
        "cells_total": total,
        "cells_done": row["cells_done"],
        "cells_failed": row["cells_failed"],
        "progress": finished / total if total else 1.0,
        "spent_usd": usd(row["spent_nusd"]),
        "cost_cap_usd": usd(row["cost_cap_nusd"]),
        "estimated_cost_usd": usd(row["estimated_cost_nusd"]),
        "created_at": _iso(row["created_at"]),
        "created_by": row["created_by"],
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "results_url": f"/api/v1/experiments/{row['id']}/results",
    }


def check_body(doc: dict[str, Any]) -> dict[str, Any]:
    """The creation body checked for shape (what it names is resolved later)."""
    unknown = set(doc) - FIELDS
    if unknown:
        raise _bad(f"unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(FIELDS))}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or "\x00" in name:
        raise _bad(f"name must be 1 to {MAX_NAME} characters")
    if not isinstance(doc.get("description", ""), str):
        raise _bad("description must be text")
    if ("dataset" in doc) == ("sample" in doc):
        raise _bad('give exactly one of dataset (a name) and sample ({"filter", "sample"})')
    if "dataset" in doc and name_problem(doc["dataset"]):
        raise _bad("dataset must be a dataset's name")
    if "sample" in doc:
        sample = doc["sample"]
        ok = isinstance(sample, dict) and set(sample) <= {"filter", "sample"}
        size = sample.get("sample") if ok else None
        filt = sample.get("filter", {}) if ok else None
        if (
            not ok
            or not isinstance(size, int)
            or isinstance(size, bool)
            or not 1 <= size <= engine_.MAX_SAMPLE
            or not isinstance(filt, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in filt.items())
        ):
            raise _bad(
                'sample must be {"filter": {<Requests-page parameters as text>}, "sample": N} '
                f"with N from 1 to {engine_.MAX_SAMPLE}"
            )
        doc["sample"] = {"filter": filt, "sample": size}
    variants, evaluators = doc.get("variants"), doc.get("evaluators", [])
    if not isinstance(variants, list) or not 1 <= len(variants) <= MAX_VARIANTS:
        raise _bad(f"variants must be a list of 1 to {MAX_VARIANTS} variants")
    if not isinstance(evaluators, list) or len(evaluators) > MAX_EVALUATORS:
        raise _bad(f"evaluators must be a list of at most {MAX_EVALUATORS}")
    doc["evaluators"] = evaluators
    concurrency = doc.get("concurrency", engine_.DEFAULT_CONCURRENCY)
    if (
        not isinstance(concurrency, int)
        or isinstance(concurrency, bool)
        or not 1 <= concurrency <= engine_.MAX_CONCURRENCY
    ):
        raise _bad(f"concurrency must be from 1 to {engine_.MAX_CONCURRENCY}")
    doc["concurrency"] = concurrency
    cap = doc.get("cost_cap_usd")
    if cap is not None and (
        isinstance(cap, bool)
        or not isinstance(cap, int | float)
        or not math.isfinite(cap)
        or not 0 < cap <= 1_000_000
    ):
        raise _bad("cost_cap_usd must be a number of US dollars above 0 (at most 1,000,000)")
    if not isinstance(doc.get("dry_run", False), bool):
        raise _bad("dry_run must be true or false")
    return doc


async def create_experiment(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    doc = check_body(await read_json_object(request))
    state = request.app.state
    try:
        if doc.get("dry_run"):
            plan, _ = await run_in_threadpool(
                engine_.plan_experiment,
                state.engine,
                info.org_id,
                doc,
                state.settings,
                state.pricebook,
            )
            return JSONResponse({"dry_run": True, "estimate": plan.estimate_api()})
        row = await run_in_threadpool(
            engine_.create,
            state.engine,
            info.org_id,
            doc,
            state.settings,
            state.pricebook,
            by(info),
        )
    except engine_.ExperimentError as exc:
        raise ApiError(
            exc.status, str(exc), "not_found" if exc.status == 404 else "invalid_parameter"
        ) from exc
    except VariantError as exc:
        raise _bad(str(exc)) from exc
    return JSONResponse(experiment_api(row), 201)


async def list_experiments(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("limit",))
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise _bad(f"limit must be from 1 to {MAX_LIST}")
    rows = await run_in_threadpool(
        store.list_experiments, request.app.state.engine, info.org_id, int(raw)
    )
    return JSONResponse({"data": [experiment_api(r) for r in rows]})


def _exp_id(request: Request) -> str:
    value: str = request.path_params["exp_id"]
    if not EXP_ID.fullmatch(value):
        raise missing(value)
    return value


async def get_experiment(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    exp_id = _exp_id(request)
    engine = request.app.state.engine
    row = await run_in_threadpool(store.get_experiment, engine, exp_id, info.org_id)
    if row is None:
        raise missing(exp_id)
    variants = await run_in_threadpool(store.list_variants, engine, exp_id)
    out = experiment_api(row)
    out["variants"] = [{"id": v["id"], "name": v["name"], "spec": v["spec"]} for v in variants]
    return JSONResponse(out)


async def cancel_experiment(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    exp_id = _exp_id(request)
    engine = request.app.state.engine
    row = await run_in_threadpool(store.get_experiment, engine, exp_id, info.org_id)
    if row is None:
        raise missing(exp_id)
    await run_in_threadpool(cancel, engine, row)
    row = await run_in_threadpool(store.get_experiment, engine, exp_id, info.org_id)
    return JSONResponse(experiment_api(row))


def cancel(engine: Engine, row: dict[str, Any]) -> bool:
    """Stop an experiment (its row, already found in the caller's organization): its job
    cancelled, a queued one's cells skipped. False if it had already finished. The API and
    the dashboard's Cancel button both stop a run through here."""
    exp_id = row["id"]
    if not store.set_status(engine, exp_id, "stopped", "cancelled"):
        return False
    job_store.cancel_ref(engine, store.JOB_KIND, exp_id)
    if row["status"] == "queued":
        store.skip_unfinished(engine, exp_id)
    return True


routes = [
    Route("/api/v1/experiments", create_experiment, methods=["POST"]),
    Route("/api/v1/experiments", list_experiments, methods=["GET"]),
    Route("/api/v1/experiments/{exp_id}", get_experiment, methods=["GET"]),
    Route("/api/v1/experiments/{exp_id}/cancel", cancel_experiment, methods=["POST"]),
]
