"""The budgets part of the OpenAPI document; ``openapi.document`` merges it."""

from __future__ import annotations

from typing import Any

from heliograph.api.openapi import error, op, path_param
from heliograph.api.openapi_schemas import INT, NUM, STR, nullable, obj, ref
from heliograph.budgets.rules import MAX_NAME, MAX_ROLLING_HOURS

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NO_BUDGET = {"404": error("No such budget in this organization.")}
CONFLICT = {"409": error("Another budget has this name, or the budget is kept in config.toml.")}
SCOPE: dict[str, Any] = obj(
    {
        "user_id": STR,
        "key_id": {"type": "string", "description": "A key's id (not the key itself)."},
        "property": {
            "type": "object",
            "additionalProperties": STR,
            "minProperties": 1,
            "maxProperties": 1,
            "description": 'One {"name": "value"} pair, e.g. an Open WebUI group.',
        },
        "model": {"type": "string", "description": "A glob, case-insensitive: gpt-4o*"},
        "upstream": {"type": "string", "description": "A glob over upstream names."},
    },
    additionalProperties=False,
)
WINDOW: dict[str, Any] = {
    "type": "string",
    "description": f"Rolling '<N>h' (1 to {MAX_ROLLING_HOURS}), or calendar day, week "
    "(from Monday) or month in the budget's time zone.",
    "examples": ["1h", "24h", "day", "week", "month"],
}
DEFINITION: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
    "scope": SCOPE,
    "window": WINDOW,
    "timezone": {"type": "string", "description": "IANA name; default HELIOGRAPH_BUDGET_TIMEZONE."},
    "limit_usd": {"type": "number", "minimum": 0},
    "limit_tokens": {"type": "integer", "minimum": 0},
    "limit_requests": {"type": "integer", "minimum": 0},
    "action": {"enum": ["block", "alert"]},
    "thresholds": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 1000}},
}
USAGE: dict[str, Any] = {
    "id": STR,
    "name": STR,
    "scope": SCOPE,
    "window": STR,
    "timezone": STR,
    "limit_usd": nullable(NUM),
    "limit_tokens": nullable(INT),
    "limit_requests": nullable(INT),
    "action": {"enum": ["block", "alert"]},
    "thresholds": {"type": "array", "items": INT},
    "source": {"enum": ["api", "config"]},
    "resets_at": TIME,
    "window_start": TIME,
    "spent": nullable(NUM),
    "reserved": nullable(NUM),
    "remaining": nullable(NUM),
    "used_percent": nullable(NUM),
    "crossed": {"type": "array", "items": INT},
}


def schemas() -> dict[str, Any]:
    return {"Budget": obj(USAGE)}


def paths() -> dict[str, Any]:
    budget = path_param("budget_id")
    body = obj(DEFINITION, "name", "window", additionalProperties=False)
    return {
        "/api/v1/budgets": {
            "get": op(
                "The organization's budgets with their usage now: spent (settled), reserved "
                "(in flight), remaining, when the window resets, thresholds crossed. Amounts "
                "are in the budget's unit (USD, tokens or requests).",
                "read",
                obj({"data": {"type": "array", "items": ref("Budget")}}),
            ),
            "post": op(
                "Create a budget: exactly one of limit_usd, limit_tokens, limit_requests. "
                "Blocking budgets are enforced before requests are forwarded (429 in the "
                "calling protocol's error shape); alert budgets only count.",
                "admin",
                ref("Budget"),
                status="201",
                body=body,
                errors=CONFLICT,
            ),
        },
        "/api/v1/budgets/{budget_id}": {
            "get": op(
                "One budget with its usage.",
                "read",
                ref("Budget"),
                params=[budget],
                errors=NO_BUDGET,
            ),
            "put": op(
                "Replace a budget's definition (its usage is kept); budgets from config.toml "
                "answer 409.",
                "admin",
                ref("Budget"),
                params=[budget],
                body=body,
                errors={**NO_BUDGET, **CONFLICT},
            ),
            "delete": op(
                "Delete a budget and its usage; budgets from config.toml answer 409.",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[budget],
                errors={**NO_BUDGET, **CONFLICT},
            ),
        },
    }
