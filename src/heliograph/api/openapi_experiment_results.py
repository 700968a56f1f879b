"""The experiment results part of the OpenAPI document: results, cells, exports, promote.

Kept apart like the datasets part; ``openapi.document`` merges it. Page sizes, the bootstrap's
resamples, level and minimum come from the code that uses them.
"""

from __future__ import annotations

from typing import Any

from heliograph.api import experiment_results as api
from heliograph.api.openapi import error, op, path_param, q
from heliograph.api.openapi_schemas import BOOL, INT, NUM, STR, nullable, obj, ref
from heliograph.api.prompts import LABEL
from heliograph.evals import compare

NO_EXPERIMENT = {"404": error("No such experiment in this organization.")}
TIME = nullable({"type": "string", "format": "date-time"})
ANY_JSON: dict[str, Any] = {}


def schemas() -> dict[str, Any]:
    counts = {
        name: INT
        for name in (
            "cells",
            "done",
            "errors",
            "pending",
            "running",
            "skipped",
            "cost_nusd",
            "prompt_tokens",
            "completion_tokens",
        )
    }
    evaluator = obj(
        {
            "mean": nullable(NUM),
            "scored": INT,
            "errors": INT,
            "passed": INT,
            "pass_rate": nullable(NUM),
        },
        title="Mean of the scored values; errors are cells the evaluator could not score "
        "(never counted as zeros); pass_rate over pass/fail scores only.",
    )
    score = obj(
        {
            "value": nullable(NUM),
            "label": nullable(STR),
            "passed": nullable(BOOL),
            "reason": nullable(STR),
            "error": nullable(STR),
            "judge_request_id": nullable(STR),
        }
    )
    return {
        "ExperimentSummary": obj(
            counts
            | {
                "p50_latency_ms": nullable(NUM),
                "p95_latency_ms": nullable(NUM),
                "evaluators": {"type": "object", "additionalProperties": evaluator},
            },
            title="Exact figures from the cells: latency percentiles are nearest-rank over "
            "the done cells.",
        ),
        "ExperimentComparison": obj(
            {
                "evaluator": STR,
                "a": STR,
                "b": STR,
                "a_position": INT,
                "b_position": INT,
                "label": STR,
                "n": INT,
                "mean_a": nullable(NUM),
                "mean_b": nullable(NUM),
                "diff": nullable(NUM),
                "ci_low": nullable(NUM),
                "ci_high": nullable(NUM),
                "level": NUM,
                "significant": BOOL,
                "verdict": STR,
            },
            title=f"B - A over the items both were scored on: a paired bootstrap "
            f"({compare.RESAMPLES} resamples of items, seeded) {compare.LEVEL:.0%} percentile "
            f"interval; ci_low and ci_high are null under {compare.MIN_PAIRS} paired items.",
        ),
        "ExperimentCell": obj(
            {
                "id": STR,
                "variant_id": STR,
                "status": STR,
                "request_id": STR,
                "output": nullable(STR),
                "error": nullable(STR),
                "prompt_tokens": nullable(INT),
                "completion_tokens": nullable(INT),
                "cost_nusd": nullable(INT),
                "latency_ms": nullable(NUM),
                "scores": {"type": "object", "additionalProperties": score},
            }
        ),
    }


def _experiment() -> dict[str, Any]:
    return obj(
        {
            "id": STR,
            "name": STR,
            "dataset": nullable(STR),
            "status": STR,
            "stop_reason": nullable(STR),
            "cells_total": INT,
            "cells_done": INT,
            "cells_failed": INT,
            "spent_nusd": INT,
            "cost_cap_nusd": nullable(INT),
            "estimated_cost_nusd": nullable(INT),
            "created_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
        }
    )


def paths() -> dict[str, Any]:
    exp = path_param("exp_id")
    prefix = "/api/v1/experiments/{exp_id}"
    variant = obj(
        {
            "id": STR,
            "position": INT,
            "name": STR,
            "spec": {"type": "object"},
            "summary": ref("ExperimentSummary"),
        }
    )
    exports = {
        fmt: {
            "get": op(
                f"Every cell as {fmt.upper()} (item, variant, status, request id, output, "
                "error, tokens, cost, latency, then <evaluator>.value, .label, .passed, "
                ".reason, .error, .judge_request_id per evaluator), streamed in matrix order.",
                "read",
                {
                    "description": "The export.",
                    "content": {media: {"schema": STR}},
                },
                params=[exp],
                errors=NO_EXPERIMENT,
            )
        }
        for fmt, media in (("csv", "text/csv"), ("jsonl", "application/x-ndjson"))
    }
    return {
        f"{prefix}/results": {
            "get": op(
                "An experiment's summary per variant and, per evaluator, the difference in "
                "mean score between every two variants with its bootstrap interval.",
                "read",
                obj(
                    {
                        "experiment": _experiment(),
                        "evaluators": {"type": "array", "items": STR},
                        "variants": {"type": "array", "items": variant},
                        "comparisons": {
                            "type": "array",
                            "items": ref("ExperimentComparison"),
                        },
                    }
                ),
                params=[exp],
                errors=NO_EXPERIMENT,
            )
        },
        f"{prefix}/cells": {
            "get": op(
                "The matrix, a page of items at a time (in item order), each with every "
                "variant's cell and its scores. Pass next_after as after for the next page.",
                "read",
                obj(
                    {
                        "data": {
                            "type": "array",
                            "items": obj(
                                {
                                    "item_position": INT,
                                    "item_id": STR,
                                    "cells": {
                                        "type": "array",
                                        "items": ref("ExperimentCell"),
                                    },
                                }
                            ),
                        },
                        "next_after": nullable(INT),
                    }
                ),
                params=[
                    exp,
                    q("after", {"type": "integer", "minimum": -1, "maximum": 2**31 - 1}),
                    q(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": api.MAX_PAGE,
                            "default": api.DEFAULT_PAGE,
                        },
                    ),
                ],
                errors=NO_EXPERIMENT,
            )
        },
        f"{prefix}/export.csv": exports["csv"],
        f"{prefix}/export.jsonl": exports["jsonl"],
        f"{prefix}/promote": {
            "post": op(
                "Move a prompt label (production by default) to the prompt version a "
                "variant ran: the winner goes live. Only for prompt variants; recorded as "
                "key:<id> in the label's history.",
                "admin",
                obj(
                    {
                        "prompt": STR,
                        "label": STR,
                        "from_version": nullable(INT),
                        "to_version": INT,
                        "variant": obj({"id": STR, "position": INT}),
                    }
                ),
                params=[exp],
                body={
                    "type": "object",
                    "properties": {
                        "variant": {"oneOf": [STR, INT]},
                        "label": {"type": "string", "pattern": "^" + LABEL.pattern + "$"},
                    },
                    "required": ["variant"],
                    "additionalProperties": False,
                },
                errors={
                    **NO_EXPERIMENT,
                    "409": error("The prompt version no longer exists."),
                },
            )
        },
    }
