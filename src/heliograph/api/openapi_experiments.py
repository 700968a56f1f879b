"""The experiments engine part of the OpenAPI document: create (or estimate), list, read,
cancel experiments, and saved evaluators. ``openapi.document`` merges it; limits come from
the code that enforces them."""

from __future__ import annotations

from typing import Any

from heliograph.api import experiments as api
from heliograph.api.openapi import error, op, path_param, q
from heliograph.api.openapi_schemas import BOOL, INT, NUM, STR, nullable, obj, ref
from heliograph.evals import experiment_specs, experiments
from heliograph.evals.specs import KINDS, NAME

TIME = nullable({"type": "string", "format": "date-time"})
NO_EXPERIMENT = {"404": error("No such experiment in this organization.")}
NO_EVALUATOR = {"404": error("No such evaluator in this organization.")}
TOO_LARGE = {"413": error("Body too large.")}
SPEC: dict[str, Any] = {"type": "object"}


def schemas() -> dict[str, Any]:
    variant = {
        "oneOf": [
            {
                "type": "string",
                "description": "prompt:<name>@<label>, prompt:<name>:<version> or "
                "model:<upstream>/<model>",
            },
            obj(
                {
                    "kind": {"enum": ["prompt", "model"]},
                    "name": STR,
                    "prompt": STR,
                    "version": INT,
                    "label": STR,
                    "model": STR,
                    "upstream": STR,
                    "params": {"type": "object"},
                },
                "kind",
                additionalProperties=False,
            ),
        ]
    }
    evaluator = {
        "oneOf": [
            {
                "type": "string",
                "description": "exact, contains:<text>, regex:<pattern>, json, "
                "similarity:<min>, judge:<prompt>@<label>, judge:<prompt>:<version>, or a "
                "saved evaluator's name",
            },
            ref("EvaluatorBody"),
        ]
    }
    return {
        "ExperimentRun": obj(
            {
                "id": STR,
                "name": STR,
                "description": STR,
                "status": {"enum": ["queued", "running", "completed", "stopped", "failed"]},
                "stop_reason": nullable(STR),
                "source": {"type": "object"},
                "evaluators": {"type": "array", "items": {"type": "object"}},
                "concurrency": INT,
                "cells_total": INT,
                "cells_done": INT,
                "cells_failed": INT,
                "progress": NUM,
                "spent_usd": nullable(NUM),
                "cost_cap_usd": nullable(NUM),
                "estimated_cost_usd": nullable(NUM),
                "created_at": TIME,
                "created_by": nullable(STR),
                "started_at": TIME,
                "finished_at": TIME,
                "results_url": STR,
                "variants": {"type": "array", "items": {"type": "object"}},
            }
        ),
        "ExperimentEstimate": obj(
            {
                "dry_run": BOOL,
                "estimate": obj(
                    {
                        "items": INT,
                        "variants": {"type": "array", "items": STR},
                        "cells": INT,
                        "evaluators": {"type": "array", "items": STR},
                        "estimated_cost_usd": NUM,
                        "unpriced": {"type": "array", "items": STR},
                        "unrenderable_cells": INT,
                    }
                ),
            }
        ),
        "ExperimentBody": obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": api.MAX_NAME},
                "description": STR,
                "dataset": STR,
                "sample": obj(
                    {
                        "filter": {"type": "object", "additionalProperties": STR},
                        "sample": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": experiments.MAX_SAMPLE,
                        },
                    },
                    "sample",
                    additionalProperties=False,
                ),
                "variants": {
                    "type": "array",
                    "items": variant,
                    "minItems": 1,
                    "maxItems": experiment_specs.MAX_VARIANTS,
                },
                "evaluators": {
                    "type": "array",
                    "items": evaluator,
                    "maxItems": experiment_specs.MAX_EVALUATORS,
                },
                "concurrency": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": experiments.MAX_CONCURRENCY,
                },
                "cost_cap_usd": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000},
                "dry_run": BOOL,
            },
            "name",
            "variants",
            additionalProperties=False,
            description="Give dataset or sample (the N newest requests matching the filter).",
        ),
        "Evaluator": obj(
            {
                "name": STR,
                "kind": {"enum": list(KINDS)},
                "description": STR,
                "config": {"type": "object"},
                "created_at": TIME,
                "created_by": nullable(STR),
                "updated_at": TIME,
            }
        ),
        "EvaluatorBody": obj(
            {
                "name": {"type": "string", "pattern": "^" + NAME.pattern + "$"},
                "kind": {"enum": list(KINDS)},
                "description": STR,
                "config": {"type": "object"},
            },
            "name",
            "kind",
            additionalProperties=False,
        ),
    }


def paths() -> dict[str, Any]:
    exp_id, name = path_param("exp_id"), path_param("name")
    estimate = {
        "description": "The estimate (dry_run).",
        "content": {"application/json": {"schema": ref("ExperimentEstimate")}},
    }
    return {
        "/api/v1/experiments": {
            "get": op(
                "List experiments, newest first.",
                "read",
                obj({"data": {"type": "array", "items": ref("ExperimentRun")}}),
                params=[q("limit", {"type": "integer", "minimum": 1, "maximum": api.MAX_LIST})],
            ),
            "post": op(
                "Create an experiment (queued for the job process), or with dry_run only "
                "estimate its cost.",
                "admin",
                ref("ExperimentRun"),
                status="201",
                body=ref("ExperimentBody"),
                errors={
                    "200": estimate,
                    "404": error("No such dataset in this organization."),
                    **TOO_LARGE,
                },
            ),
        },
        "/api/v1/experiments/{exp_id}": {
            "get": op(
                "One experiment: status, progress, spent, estimate, variants; its results "
                "are at results_url.",
                "read",
                ref("ExperimentRun"),
                params=[exp_id],
                errors=NO_EXPERIMENT,
            ),
        },
        "/api/v1/experiments/{exp_id}/cancel": {
            "post": op(
                "Stop the experiment (calls in flight finish; the rest are skipped).",
                "admin",
                ref("ExperimentRun"),
                params=[exp_id],
                errors=NO_EXPERIMENT,
            ),
        },
        "/api/v1/evaluators": {
            "get": op(
                "List saved evaluators.",
                "read",
                obj({"data": {"type": "array", "items": ref("Evaluator")}}),
            ),
            "post": op(
                "Save an evaluator (its spec checked and completed with defaults).",
                "admin",
                ref("Evaluator"),
                status="201",
                body=ref("EvaluatorBody"),
                errors={"409": error("An evaluator with this name exists."), **TOO_LARGE},
            ),
        },
        "/api/v1/evaluators/{name}": {
            "get": op(
                "One evaluator.", "read", ref("Evaluator"), params=[name], errors=NO_EVALUATOR
            ),
            "put": op(
                "Replace the evaluator's spec (experiments keep the copy they ran).",
                "admin",
                ref("Evaluator"),
                params=[name],
                body=ref("EvaluatorBody"),
                errors={**NO_EVALUATOR, **TOO_LARGE},
            ),
            "delete": op(
                "Delete the evaluator (its name is free again).",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[name],
                errors=NO_EVALUATOR,
            ),
        },
    }
