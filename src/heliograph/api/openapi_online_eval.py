"""The online evaluation part of the OpenAPI document: rules and their status.

Kept apart from ``openapi`` like the prompts and datasets parts; ``openapi.document`` merges
it. The filter's parameter names come from the one list the Requests page reads.
"""

from __future__ import annotations

from typing import Any

from heliograph.api.openapi import error, op, path_param
from heliograph.api.openapi_schemas import BOOL, INT, NUM, STR, nullable, obj, ref
from heliograph.evals import online
from heliograph.evals.specs import KINDS

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NO_RULE = {"404": error("No such rule in this organization.")}
RATE: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
EVALUATOR: dict[str, Any] = {
    "type": "object",
    "description": "An evaluator spec {name, kind, config, description?}; kinds: "
    + ", ".join(KINDS)
    + ". Its name is the score's name on the records. An llm_judge rule's judge is called "
    "through the gateway, recorded with properties judge=1 and online_eval=<rule id>.",
    "properties": {
        "name": STR,
        "kind": {"enum": list(KINDS)},
        "config": {"type": "object"},
        "description": STR,
    },
    "required": ["name", "kind"],
}
FILTER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": STR,
    "maxProperties": online.MAX_FILTER_PARAMS,
    "description": "The Requests page's filter parameters as an object, e.g. "
    '{"model": "gpt-4o", "property.team": "red", "prompt_name": "support"}; an unknown '
    "name or a bad value is a 400 naming it.",
}


def schemas() -> dict[str, Any]:
    return {
        "OnlineEvalRule": obj(
            {
                "id": STR,
                "name": STR,
                "evaluator": {"type": "object"},
                "filter": {"type": "object", "additionalProperties": STR},
                "sample_rate": NUM,
                "enabled": BOOL,
                "created_at": TIME,
                "created_by": nullable(STR),
                "updated_at": TIME,
                "last_run_at": nullable(TIME),
            }
        ),
        "OnlineEvalStatus": obj(
            {
                "rule_id": STR,
                "enabled": BOOL,
                "queued": INT,
                "done": INT,
                "errors": INT,
                "last_run_at": nullable(TIME),
                "read_to": nullable(TIME),
                "recent_errors": {
                    "type": "array",
                    "items": obj({"request_id": STR, "error": nullable(STR), "at": nullable(TIME)}),
                },
            }
        ),
    }


def paths() -> dict[str, Any]:
    rule = path_param("rule_id")
    fields = {
        "name": {"type": "string", "description": "Default: the evaluator's name."},
        "evaluator": EVALUATOR,
        "filter": FILTER,
        "sample_rate": RATE,
        "enabled": BOOL,
    }
    conflict = {"409": error("Another rule has this name.")}
    return {
        "/api/v1/online-evals": {
            "get": op(
                "List the organization's online evaluation rules.",
                "read",
                obj({"data": {"type": "array", "items": ref("OnlineEvalRule")}}),
            ),
            "post": op(
                "Create a rule: records matching the filter (from now on) are sampled at "
                "sample_rate by the job process and scored off the request path.",
                "admin",
                ref("OnlineEvalRule"),
                status="201",
                body=obj(fields, "evaluator", "sample_rate", additionalProperties=False),
                errors=conflict,
            ),
        },
        "/api/v1/online-evals/{rule_id}": {
            "get": op("One rule.", "read", ref("OnlineEvalRule"), params=[rule], errors=NO_RULE),
            "patch": op(
                "Change a rule (only the fields given); enabling a paused rule starts from "
                "now (the pause is not evaluated later).",
                "admin",
                ref("OnlineEvalRule"),
                params=[rule],
                body=obj(fields, additionalProperties=False),
                errors={**NO_RULE, **conflict},
            ),
            "delete": op(
                "Delete a rule and its queue; the scores it stored stay on the records.",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[rule],
                errors=NO_RULE,
            ),
        },
        "/api/v1/online-evals/{rule_id}/status": {
            "get": op(
                "Queue counts (queued, done, errors), when the sampler last ran, how far it "
                "has read, and the most recent errors.",
                "read",
                ref("OnlineEvalStatus"),
                params=[rule],
                errors=NO_RULE,
            )
        },
    }
